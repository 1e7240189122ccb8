/**
 * The config sections every online recipe shares: how rollouts are sampled (`rollout`), where the
 * reward comes from (`reward`), and the trainer, whose maxSteps counts iterations of the loop.
 */
import { z } from 'zod';
import { ConfigError } from '../../errors.js';
import { baseSchema, trainerSchema } from '../../config/common.js';

const positiveInt = z.number().int().positive();

export const rolloutSchema = z.object({
  promptsPerIteration: positiveInt.default(8).describe('Prompts drawn per iteration (NeMo-Aligner num_rollout_samples / samples per prompt). The prompt cursor is the iteration: iteration k takes the k-th block of a seeded shuffle.'),
  samplesPerPrompt: positiveInt.optional().describe('Responses sampled per prompt; default the recipe\'s (ppo 1, reinforce 4, grpo 8, rs 4).'),
  maxNewTokens: positiveInt.default(32).describe('Longest response, in tokens. A response cut here did not end (see maskTruncated).'),
  temperature: z.number().positive().default(1).describe('Sampling temperature (NeMo-Aligner default 1.0).'),
  topK: z.number().int().nonnegative().default(0).describe('Top-k filter; 0 = off.'),
  topP: z.number().gt(0).lte(1).default(1).describe('Nucleus filter; 1 = off.'),
  stopStrings: z.array(z.string().min(1)).default([]).describe('Strings that end a response (besides the tokenizer\'s EOS), kept in it.'),
  maskTruncated: z.boolean().default(true).describe('Responses cut at maxNewTokens (that did not end) get zero gradient (NeMo-Aligner is_end_mask). Turn off when few responses end.'),
  shardRows: positiveInt.default(16).describe('Rollouts per ledger shard: a crash during generation redoes only the unfinished shard.'),
  microBatch: positiveInt.default(16).describe('Rows generated (and scored) together.'),
  evalPrompts: positiveInt.default(32).describe('Held-out prompts (the first N of the validation split) sampled once each, with fixed seeds, to measure the policy before the first iteration, every trainer.valEvery iterations and after the last.'),
  style: z.enum(['trl', 'nemo']).default('trl').describe('How plain-text prompts and responses are tokenized for the reward model: trl (BOS + EOS) or nemo (verbatim), as it was trained.'),
}).strict();

export const rewardSchema = z.object({
  model: z.string().min(1).optional().describe('A reward model folder: an export of an rm run or any HF *ForSequenceClassification folder (its first label is the reward).'),
  function: z.string().min(1).optional().describe('A programmatic reward: a module path, optionally #exportName (default export "reward"). Signature: (sample: {prompt, response, record, ended}) => number | Promise<number>.'),
}).strict().describe('Exactly one of model and function.');

export const onlineTrainerSchema = trainerSchema.extend({
  maxSteps: positiveInt.default(20).describe('Iterations of the experience loop (each: generate, score, …, train).'),
  globalBatchSize: positiveInt.default(8).describe('Rollouts per optimizer step; rollout.promptsPerIteration × samplesPerPrompt must be a multiple of it.'),
  microBatchSize: positiveInt.default(8).describe('Rollouts per forward/backward.'),
  lr: z.number().positive().default(1e-5).describe('Actor learning rate (NeMo-Aligner 9e-7 for 2B+ models; tiny models need far more).'),
  minLr: z.number().nonnegative().default(1e-6).describe('Learning rate at the end of the cosine decay (over all optimizer steps of the run).'),
  warmupSteps: z.number().int().nonnegative().default(0).describe('Linear warmup, in optimizer steps.'),
  checkpointEvery: z.number().int().positive().default(1).describe('Commit a checkpoint every N iterations (online runs commit after every iteration; other values are refused for now).'),
  valEvery: z.number().int().nonnegative().default(0).describe('Evaluate the policy on held-out prompts (rollout.evalPrompts) every N iterations; 0 = before the first and after the last only.'),
}).strict();

const roleLayout = (what: string) => z.object({
  dp: positiveInt.max(64).default(1).describe(`Workers the ${what} is split over, each computing its share of the iteration's rows at once.`),
}).strict();

/**
 * Each role's layout: the inference roles (rollout, reward) spread over several workers, which is
 * where an iteration's time goes, and the actor trains data parallel over its worker and its first
 * rollout replicas. The critic lives with the actor (rank 0) or on a worker of its own
 * (ppo.criticWorker). Every split follows the ledger's shards and micro-batches.
 */
export const onlineParallelSchema = z.object({
  actor: roleLayout('actor\'s training').default({ dp: 1 }).describe(
    'Data-parallel ranks of the actor\'s training: its worker and the first dp − 1 rollout replicas (so parallel.rollout.dp ≥ dp), on one host (they meet over shared memory). Each trains its share of every mini-batch; gradients are summed in buckets during the backward; rank 0 commits.',
  ),
  rollout: roleLayout('rollout (generation and the old-policy and reference log-probs)').default({ dp: 1 }).describe(
    'Replicas of the policy that sample: the actor\'s worker and dp − 1 more, placed as <run>-rollout-<k> and loaded from the last checkpoint each iteration. Generation shards go round-robin over them, the log-prob micro-batches in contiguous blocks.',
  ),
  reward: roleLayout('reward scoring').default({ dp: 1 }).describe('Parts the score stage is cut into (whole micro-batches each), run at once on any compute workers, each holding the reward model.'),
}).strict();

export const onlineBaseSchema = baseSchema.omit({ parallel: true }).extend({
  trainer: onlineTrainerSchema.default(onlineTrainerSchema.parse({})).describe('Optimisation and checkpointing of the actor; maxSteps counts iterations.'),
  rollout: rolloutSchema.default(rolloutSchema.parse({})).describe('How each iteration samples its rollouts.'),
  reward: rewardSchema,
  parallel: onlineParallelSchema.optional().describe('How each role of the loop is laid out over workers (default: everything on the actor\'s worker, scoring on any one).'),
}).strict();

export type OnlineConfig = z.infer<typeof onlineBaseSchema>;
export type RolloutConfig = z.infer<typeof rolloutSchema>;
export type OnlineParallelConfig = z.infer<typeof onlineParallelSchema>;

/** Workers per role: 1 each without a parallel section. */
export const onlineLayoutOf = (c: Pick<OnlineConfig, 'parallel'>): { actor: number; rollout: number; reward: number } =>
  ({ actor: c.parallel?.actor.dp ?? 1, rollout: c.parallel?.rollout.dp ?? 1, reward: c.parallel?.reward.dp ?? 1 });

/** Rollouts per iteration. */
export const rolloutRows = (c: OnlineConfig, samplesPerPrompt: number): number => c.rollout.promptsPerIteration * samplesPerPrompt;

/** Optimizer steps one iteration takes: epochs × (rollouts / global batch). */
export const stepsPerIteration = (c: OnlineConfig, samplesPerPrompt: number, epochs: number): number =>
  epochs * Math.ceil(rolloutRows(c, samplesPerPrompt) / c.trainer.globalBatchSize);

/** Cross-field checks every online recipe shares. */
export function checkOnline(c: OnlineConfig, samplesPerPrompt: number): void {
  const r = c.reward;
  if ((r.model === undefined) === (r.function === undefined)) {
    throw new ConfigError('reward: give exactly one of reward.model (a reward-model folder) and reward.function (a module path)');
  }
  const rows = rolloutRows(c, samplesPerPrompt);
  if (rows % c.trainer.globalBatchSize !== 0) {
    throw new ConfigError(`trainer.globalBatchSize (${c.trainer.globalBatchSize}) must divide the rollouts of an iteration (rollout.promptsPerIteration ${c.rollout.promptsPerIteration} × ${samplesPerPrompt} samples = ${rows})`);
  }
  if (c.rollout.maxNewTokens >= c.trainer.maxLength) {
    throw new ConfigError(`rollout.maxNewTokens (${c.rollout.maxNewTokens}) must be below trainer.maxLength (${c.trainer.maxLength}), which bounds prompt + response`);
  }
  if (c.trainer.checkpointEvery !== 1) throw new ConfigError('trainer.checkpointEvery: online runs commit a checkpoint after every iteration; set it to 1');
  const layout = onlineLayoutOf(c);
  if (layout.actor > 1) {
    if (layout.rollout < layout.actor) throw new ConfigError(`parallel.actor.dp (${layout.actor}) trains on the actor's worker and its rollout replicas; set parallel.rollout.dp to at least ${layout.actor}`);
    if (c.trainer.globalBatchSize % (layout.actor * c.trainer.microBatchSize) !== 0) {
      throw new ConfigError(`trainer.globalBatchSize (${c.trainer.globalBatchSize}) must be a multiple of parallel.actor.dp × trainer.microBatchSize (${layout.actor} × ${c.trainer.microBatchSize})`);
    }
    if (c.lora) throw new ConfigError('parallel.actor.dp: LoRA actors train on one worker for now; remove parallel.actor or lora');
  }
}
