/**
 * Rejection-sampling rounds (Touvron et al. 2023, Llama 2, §3.2.3): each round is one run of the
 * online `rs` recipe (best of N per prompt under the reward, NLL on the kept samples) starting from
 * the model the round before trained. On a schedule, one round per scheduled action, each starting
 * from the previous round's output (found through the schedule's lineage).
 */
import { z } from 'zod';
import { modelField, modelOf, recipeSection, refuseWired, roundOf, roundsField, roundStages } from './sections.js';
import type { PipelineDef } from './types.js';

const schema = z.object({
  model: modelField,
  rounds: roundsField('runs rejection sampling', 1),
  rs: recipeSection('rs', 'model'),
}).strict();

export type RsPipelineConfig = z.infer<typeof schema>;

export const rsRounds: PipelineDef<RsPipelineConfig> = {
  name: 'rs',
  summary: 'rejection-sampling rounds: each round an rs run (best of N, NLL) from the previous round\'s model',
  schema,
  example: {
    model: 'models/fixtures/tiny-llama',
    rounds: 2,
    rs: {
      data: { train: 'data/demo/prompts.jsonl' },
      reward: { function: 'examples/rewards/letter-e.ts' },
      trainer: { maxSteps: 2, globalBatchSize: 8, microBatchSize: 8, lr: 3e-3, minLr: 3e-3, maxLength: 64 },
      rollout: { promptsPerIteration: 8, maxNewTokens: 8, evalPrompts: 8 },
    },
  },
  stages: (c) => roundStages(c.rounds, ['rs']),
  stage(name, c, outputs, start) {
    refuseWired(c.rs, 'rs', ['model']);
    const round = roundOf(name);
    const from = round === 1 ? start.model : modelOf(outputs, `rs-${round - 1}`);
    // Each round draws other prompts: the seed moves with the round (and the scheduled round).
    const seed = ((c.rs.seed as number | undefined) ?? 0) + (start.round - 1) * c.rounds + round - 1;
    return { kind: 'run', recipe: 'rs', config: { ...c.rs, model: from, seed } };
  },
  output: (c, outputs) => ({ model: modelOf(outputs, `rs-${c.rounds}`) }),
};
