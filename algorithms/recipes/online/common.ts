/**
 * What the online recipes share: the prompt dataset, the stage descriptions, the metrics every
 * iteration reports, and per-rollout helpers. Each recipe file keeps only its own objective.
 */
import { tokenizePrompt, PROMPT_FIELDS } from '../../data/prompts.js';
import type { PromptExample } from '../../data/prompts.js';
import { mapRecords } from '../prepare.js';
import { mean } from '../../rollouts/advantages.js';
import type { DatasetSpec, ExperienceStage, MetricSpec, Metrics, RoleSpec, ScoredRollout, StageName } from '../types.js';
import type { OnlineConfig } from './config.js';

/** The module path of a programmatic reward is resolved against the config's folder, like the data. */
export const ONLINE_FILES = ['reward.function'] as const;

export const promptDataset: DatasetSpec<OnlineConfig, PromptExample> = {
  dataFormats: [
    'TRL prompt-only {"prompt": "…" | [{"role", "content"}]} (other keys are passed to a reward function)',
    'TRL conversational {"messages": [… ending with a user turn]}',
    'NeMo-Aligner RLHF prompts {"text": "…"} (template already applied, tokenized verbatim)',
  ],
  fields: () => PROMPT_FIELDS,
  prepare: (records, ctx) => mapRecords(records, (rec) => tokenizePrompt(ctx.tok, rec, ctx.source, {
    maxPromptLength: ctx.config.trainer.maxLength - ctx.config.rollout.maxNewTokens, overlong: ctx.config.data.overlong,
  })),
  minTrainExamples: (c) => c.rollout.promptsPerIteration,
  tokensOf: (e) => e.ids.length,
};

const STAGE_TEXT: Record<StageName, Omit<ExperienceStage, 'name'>> = {
  generate: { description: 'sample responses from the current policy, shard by shard, into the ledger', role: 'policy' },
  score: { description: 'the reward of each response (reward model or function)', role: 'reward' },
  logprobs: { description: 'per-token log-probs under the sampling policy (old) and the reference', role: 'policy' },
  values: { description: 'per-token values of the critic', role: 'critic' },
  advantages: { description: 'advantages, returns and which rollouts train', role: 'policy' },
  train: { description: 'optimizer steps on the rollouts, then a checkpoint (weights, optimizer, prompt cursor, loop state)', role: 'policy' },
};

export const stagesOf = (...names: StageName[]): ExperienceStage[] => names.map((name) => ({ name, ...STAGE_TEXT[name] }));

export const POLICY_ROLE: RoleSpec = { description: 'the actor: samples rollouts and is trained on them', configField: 'model', trains: true };
export const REWARD_ROLE: RoleSpec = { description: 'scores responses: a reward model (reward.model) or a function (reward.function)', configField: 'reward.model', trains: false };
export const REFERENCE_ROLE: RoleSpec = { description: 'the initial policy (frozen copy, or the actor with its LoRA adapters off) for the KL penalty', configField: 'model', trains: false };

export const ROLLOUT_METRICS: Record<string, MetricSpec> = {
  reward: { description: 'mean reward of the iteration\'s rollouts' },
  rewardStd: { description: 'standard deviation of those rewards' },
  responseLength: { description: 'mean response length in tokens' },
  ended: { description: 'fraction of responses that ended (EOS or a stop string)' },
  kl: { description: 'mean over rollouts of Σ_t (ℓ_old − ℓ_ref), the sequence KL to the reference' },
  entropy: { description: 'mean −ℓ_old per response token (a sample estimate of the policy entropy)' },
};

const std = (xs: readonly number[]) => { const m = mean(xs); return Math.sqrt(mean(xs.map((x) => (x - m) ** 2))); };

/** The metrics every iteration reports, from its scored rollouts. */
export function rolloutMetrics(rollouts: readonly ScoredRollout[]): Metrics {
  const rewards = rollouts.map((r) => r.reward);
  const m: Metrics = {
    reward: mean(rewards), rewardStd: std(rewards),
    responseLength: mean(rollouts.map((r) => r.length)),
    ended: mean(rollouts.map((r) => (r.ended ? 1 : 0))),
  };
  if (rollouts.every((r) => r.old)) {
    const tokens = rollouts.flatMap((r) => r.old!);
    m.entropy = -mean(tokens);
    if (rollouts.every((r) => r.ref)) m.kl = mean(rollouts.map((r) => r.old!.reduce((s, o, t) => s + o - r.ref![t], 0)));
  }
  return m;
}

/** Whether a rollout trains: every one, or (rollout.maskTruncated) only those that ended. */
export const trains = (c: OnlineConfig, r: ScoredRollout): boolean => !c.rollout.maskTruncated || r.ended;

/** A sequence-level advantage repeated on each of the rollout's response tokens. */
export const onTokens = (a: number, length: number): number[] => new Array<number>(length).fill(a);

/** The example config every online recipe starts from (tiny fixture model, a programmatic reward). */
export const ONLINE_EXAMPLE = {
  model: 'models/fixtures/tiny-llama',
  data: { train: 'data/demo/prompts.jsonl', validationFraction: 0.1 },
  reward: { function: 'examples/rewards/letter-e.ts' },
  trainer: { maxSteps: 14, globalBatchSize: 16, microBatchSize: 16, lr: 3e-3, minLr: 3e-3, warmupSteps: 0, maxLength: 96 },
  rollout: { promptsPerIteration: 16, maxNewTokens: 12, stopStrings: [' '], maskTruncated: false },
} as const;
