/**
 * RLHF as InstructGPT runs it (Ouyang et al. 2022, §3.1): supervised fine-tuning, a
 * Bradley-Terry reward model trained from the SFT model, then PPO from the SFT model against that
 * reward model (which also initialises the critic). NeMo-Aligner chains these as three jobs by
 * hand; here they are three child runs of one parent.
 */
import { z } from 'zod';
import { modelField, modelOf, recipeSection, refuseWired } from './sections.js';
import type { PipelineDef, StageSpec } from './types.js';

const schema = z.object({
  model: modelField,
  sft: recipeSection('sft', 'model'),
  rm: recipeSection('rm', 'model'),
  ppo: recipeSection('ppo', 'model and reward.model'),
}).strict();

export type RlhfConfig = z.infer<typeof schema>;

export const rlhf: PipelineDef<RlhfConfig> = {
  name: 'rlhf',
  summary: 'SFT → reward model (from the SFT model) → PPO from the SFT model against that reward model',
  schema,
  example: {
    model: 'models/fixtures/tiny-llama',
    sft: {
      data: { train: 'data/demo/sft.jsonl', validationFraction: 0.2 },
      trainer: { maxSteps: 40, globalBatchSize: 8, microBatchSize: 8, lr: 1e-3, minLr: 1e-4, warmupSteps: 2, checkpointEvery: 10, valEvery: 10, maxLength: 96 },
    },
    rm: {
      data: { train: 'data/demo/rm.jsonl', validationFraction: 0.2 },
      trainer: { maxSteps: 60, globalBatchSize: 16, microBatchSize: 8, lr: 2e-3, minLr: 2e-4, warmupSteps: 0, checkpointEvery: 20, valEvery: 20, maxLength: 64 },
    },
    ppo: {
      data: { train: 'data/demo/prompts.jsonl' },
      trainer: { maxSteps: 12, globalBatchSize: 16, microBatchSize: 16, lr: 3e-3, minLr: 3e-3, maxLength: 96 },
      rollout: { promptsPerIteration: 16, maxNewTokens: 12, stopStrings: [' '], maskTruncated: false },
      ppo: { criticLr: 3e-3, klBeta: 0.1 },
    },
  },
  stages: () => ['sft', 'rm', 'ppo'],
  stage(name, c, outputs, start) {
    refuseWired(c.sft, 'sft', ['model']);
    refuseWired(c.rm, 'rm', ['model']);
    refuseWired(c.ppo, 'ppo', ['model', 'reward.model']);
    const reward = (c.ppo.reward as Record<string, unknown> | undefined) ?? {};
    const plans: Record<string, () => StageSpec> = {
      sft: () => ({ kind: 'run', recipe: 'sft', config: { ...c.sft, model: start.model } }),
      rm: () => ({ kind: 'run', recipe: 'rm', config: { ...c.rm, model: modelOf(outputs, 'sft') } }),
      ppo: () => ({ kind: 'run', recipe: 'ppo', config: { ...c.ppo, model: modelOf(outputs, 'sft'), reward: { ...reward, model: modelOf(outputs, 'rm') } } }),
    };
    return plans[name]();
  },
  output: (_c, outputs) => ({ model: modelOf(outputs, 'ppo') }),
};
