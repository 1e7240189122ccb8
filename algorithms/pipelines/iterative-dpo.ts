/**
 * Iterative (online) DPO (Xu et al. 2023, Some things are more CRINGE than others, §3; Xiong et
 * al. 2024, Iterative Preference Learning from Human Feedback, Alg. 1): each round the current
 * policy samples N responses per prompt, a reward model (or function) scores them, the best and
 * the worst form a preference pair, and a DPO run trains the policy on those pairs with the
 * reference fixed to the first round's policy π₀. A last stage measures the final policy's reward
 * on the same kind of samples, so the pipeline shows the reward of π₀, π₁, … πₖ.
 */
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { rewardSchema } from '../recipes/online/config.js';
import { dataOf, modelField, modelOf, recipeSection, refuseWired, roundOf, roundsField, roundStages } from './sections.js';
import type { PipelineDef, StageOutputs, PipelineStart } from './types.js';

const positiveInt = z.number().int().positive();

export const samplingSchema = z.object({
  prompts: z.string().min(1).describe('Prompt JSONL (the online recipes\' prompt formats: TRL prompt or messages, NeMo text): a local path or s3:// URI.'),
  promptsPerRound: positiveInt.default(32).describe('Prompts sampled each round (round r takes the r-th block of a seeded shuffle, wrapping).'),
  samplesPerPrompt: z.number().int().min(2).default(4).describe('Responses per prompt; the best and the worst under the reward form the pair.'),
  maxNewTokens: positiveInt.default(32).describe('Longest response, in tokens.'),
  temperature: z.number().positive().default(1).describe('Sampling temperature.'),
  topP: z.number().gt(0).lte(1).default(1).describe('Nucleus filter; 1 = off.'),
  stopStrings: z.array(z.string().min(1)).default([]).describe('Strings that end a response (besides EOS), kept in it.'),
  style: z.enum(['trl', 'nemo']).default('trl').describe('How plain-text prompts and responses are tokenized for a reward model (as it was trained).'),
  shardPrompts: positiveInt.default(16).describe('Prompts per durable shard: a crash redoes only the unfinished shard.'),
  maxPromptLength: positiveInt.default(448).describe('Longest prompt in tokens; longer prompts are skipped (counted in the stage\'s metrics).'),
}).strict();

const schema = z.object({
  model: modelField,
  seed: z.number().int().nonnegative().default(0).describe('Seed of the prompt order and of the sampling.'),
  rounds: roundsField('samples pairs with the current policy, then trains DPO on them'),
  sampling: samplingSchema.describe('How each round samples its responses.'),
  reward: rewardSchema,
  dpo: recipeSection('dpo', 'model, data.train and dpo.referenceModel'),
}).strict();

export type IterativeDpoConfig = z.infer<typeof schema>;
export type SamplingConfig = z.infer<typeof samplingSchema>;

/** The sampling task's arguments for round `round` (also the final measurement, round k+1). */
export function samplingArgs(c: { seed: number; sampling: SamplingConfig }, policy: string, round: number, extra: Record<string, unknown>): Record<string, unknown> {
  return { policy, ...c.sampling, seed: c.seed, round, ...extra };
}

export const shardsOf = (s: SamplingConfig): number => Math.ceil(s.promptsPerRound / s.shardPrompts);

const policyBefore = (round: number, outputs: StageOutputs, start: PipelineStart): string => (round === 1 ? start.model : modelOf(outputs, `dpo-${round - 1}`));

export const iterativeDpo: PipelineDef<IterativeDpoConfig> = {
  name: 'iterative-dpo',
  summary: 'online DPO rounds: sample N per prompt with the current policy, best vs worst under a reward → DPO (reference fixed to π₀)',
  schema,
  example: {
    model: 'models/fixtures/tiny-llama',
    rounds: 2,
    sampling: { prompts: 'data/demo/prompts.jsonl', promptsPerRound: 32, samplesPerPrompt: 4, maxNewTokens: 12, stopStrings: [' '] },
    reward: { function: 'examples/rewards/letter-e.ts' },
    dpo: {
      data: { validationFraction: 0.125 },
      dpo: { beta: 0.1 },
      trainer: { maxSteps: 12, globalBatchSize: 4, microBatchSize: 4, lr: 2e-3, minLr: 2e-3, warmupSteps: 0, checkpointEvery: 12, valEvery: 12, maxLength: 64 },
    },
  },
  stages: (c) => [...roundStages(c.rounds, ['pairs', 'dpo']), 'final-reward'],
  stage(name, c, outputs, start) {
    refuseWired(c.dpo, 'dpo', ['model', 'data.train', 'dpo.referenceModel']);
    if ((c.reward.model === undefined) === (c.reward.function === undefined)) throw new ConfigError('reward: give exactly one of reward.model and reward.function');
    if (name === 'final-reward') {
      return { kind: 'data', task: 'preference-pairs', args: samplingArgs(c, modelOf(outputs, `dpo-${c.rounds}`), c.rounds + 1, { reward: c.reward, measureOnly: true }), shards: shardsOf(c.sampling) };
    }
    const round = roundOf(name);
    if (name.startsWith('pairs-')) {
      return { kind: 'data', task: 'preference-pairs', args: samplingArgs(c, policyBefore(round, outputs, start), round + (start.round - 1) * c.rounds, { reward: c.reward }), shards: shardsOf(c.sampling) };
    }
    const data = (c.dpo.data as Record<string, unknown> | undefined) ?? {};
    const dpo = (c.dpo.dpo as Record<string, unknown> | undefined) ?? {};
    return {
      kind: 'run', recipe: 'dpo',
      config: { ...c.dpo, seed: c.seed, model: policyBefore(round, outputs, start), data: { ...data, train: dataOf(outputs, `pairs-${round}`) }, dpo: { ...dpo, referenceModel: c.model } },
    };
  },
  output: (c, outputs) => ({ model: modelOf(outputs, `dpo-${c.rounds}`) }),
};
