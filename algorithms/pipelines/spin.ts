/**
 * SPIN, self-play fine-tuning (Chen et al. 2024, Self-Play Fine-Tuning Converts Weak Language
 * Models to Strong Language Models, eq. 4.7): each round the current policy answers the SFT
 * prompts, and a DPO-style run trains the ground-truth response (chosen) against the policy's own
 * generation (rejected), with the round's starting policy as the reference (NeMo-Aligner
 * algorithms/spin.py: the reference is the previous iteration).
 */
import { z } from 'zod';
import { dataOf, modelField, modelOf, recipeSection, refuseWired, roundOf, roundsField, roundStages } from './sections.js';
import type { PipelineDef } from './types.js';

const positiveInt = z.number().int().positive();

const schema = z.object({
  model: modelField,
  seed: z.number().int().nonnegative().default(0).describe('Seed of the sampling.'),
  rounds: roundsField('generates the policy\'s answers, then trains ground truth over them'),
  data: z.string().min(1).describe('SFT JSONL with ground-truth responses: NeMo {"input","output"}, TRL {"prompt","completion"} or chat {"messages"} (the last assistant turn is the ground truth).'),
  maxNewTokens: positiveInt.default(32).describe('Longest generated response, in tokens.'),
  temperature: z.number().positive().default(1).describe('Sampling temperature of the generations.'),
  maxRecords: positiveInt.default(64).describe('Records used per round (the first N).'),
  shardPrompts: positiveInt.default(16).describe('Records per durable shard.'),
  dpo: recipeSection('dpo', 'model and data.train'),
}).strict();

export type SpinConfig = z.infer<typeof schema>;

export const spin: PipelineDef<SpinConfig> = {
  name: 'spin',
  summary: 'SPIN: each round, ground-truth responses (chosen) against the policy\'s own generations (rejected), DPO loss, reference = the round\'s start',
  schema,
  example: {
    model: 'models/fixtures/tiny-llama',
    rounds: 2,
    data: 'data/demo/sft.jsonl',
    maxNewTokens: 16,
    maxRecords: 32,
    dpo: {
      data: { validationFraction: 0.125 },
      dpo: { beta: 0.2 },
      trainer: { maxSteps: 8, globalBatchSize: 4, microBatchSize: 4, lr: 2e-3, minLr: 2e-3, warmupSteps: 0, checkpointEvery: 8, valEvery: 8, maxLength: 96 },
    },
  },
  stages: (c) => roundStages(c.rounds, ['generations', 'dpo']),
  stage(name, c, outputs, start) {
    refuseWired(c.dpo, 'dpo', ['model', 'data.train']);
    const round = roundOf(name);
    const policy = round === 1 ? start.model : modelOf(outputs, `dpo-${round - 1}`);
    if (name.startsWith('generations-')) {
      return {
        kind: 'data', task: 'spin-pairs', shards: Math.ceil(c.maxRecords / c.shardPrompts),
        args: { policy, data: c.data, maxNewTokens: c.maxNewTokens, temperature: c.temperature, maxRecords: c.maxRecords, shardPrompts: c.shardPrompts, seed: c.seed, round },
      };
    }
    const data = (c.dpo.data as Record<string, unknown> | undefined) ?? {};
    return { kind: 'run', recipe: 'dpo', config: { ...c.dpo, seed: c.seed, model: policy, data: { ...data, train: dataOf(outputs, `generations-${round}`) } } };
  },
  output: (c, outputs) => ({ model: modelOf(outputs, `dpo-${c.rounds}`) }),
};
