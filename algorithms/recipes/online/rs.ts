/**
 * Online rejection sampling (Touvron et al. 2023, Llama 2, §3.2.3; NeMo-Aligner `gpt_rs_actor.yaml`):
 * N samples per prompt (default 4), scored by the reward, the top one kept and trained on with the
 * NLL of its response tokens. The kept set is recorded in the ledger's advantages stage.
 */
import { z } from 'zod';
import { mean, topKPerPrompt } from '../../rollouts/advantages.js';
import { nllLoss } from '../../losses/policy-gradient.js';
import { checkOnline, onlineBaseSchema } from './config.js';
import { ONLINE_EXAMPLE, ONLINE_FILES, onTokens, POLICY_ROLE, promptDataset, REWARD_ROLE, ROLLOUT_METRICS, rolloutMetrics, stagesOf } from './common.js';
import type { OnlineRecipe } from '../types.js';
import { ConfigError } from '../../errors.js';

export const rsSection = z.object({
  topN: z.number().int().positive().default(1).describe('Samples kept per prompt (NeMo-Aligner top_n_rollouts 1).'),
}).strict();

export const rsConfigSchema = onlineBaseSchema.extend({
  rs: rsSection.default(rsSection.parse({})).describe('Rejection sampling options.'),
}).strict();

export type RsConfig = z.infer<typeof rsConfigSchema>;

const samples = (c: RsConfig) => c.rollout.samplesPerPrompt ?? 4;

export const rs: OnlineRecipe<RsConfig> = {
  name: 'rs',
  kind: 'online',
  summary: 'online rejection sampling: keep the best of N samples per prompt, train on it with NLL',
  paper: 'Touvron et al. 2023, Llama 2, §3.2.3 — https://arxiv.org/abs/2307.09288',
  schema: rsConfigSchema,
  check: (c) => {
    checkOnline(c, samples(c));
    if (c.rs.topN >= samples(c)) throw new ConfigError(`rs.topN (${c.rs.topN}) must be below rollout.samplesPerPrompt (${samples(c)}), or nothing is rejected`);
  },
  example: { ...ONLINE_EXAMPLE, rollout: { ...ONLINE_EXAMPLE.rollout, promptsPerIteration: 4, samplesPerPrompt: 4 }, trainer: { ...ONLINE_EXAMPLE.trainer, globalBatchSize: 16 } },
  roles: { policy: POLICY_ROLE, reward: REWARD_ROLE },
  metrics: { ...ROLLOUT_METRICS, keptReward: { description: 'mean reward of the kept samples' } },
  headline: () => ({ metric: 'keptReward', better: 'higher' }),
  ...promptDataset,
  files: ONLINE_FILES,
  stages: stagesOf('generate', 'score', 'advantages', 'train'),
  samplesPerPrompt: samples,
  epochs: () => 1,
  initialState: () => ({ klBeta: 0 }),

  advantages(rollouts, c, state) {
    const keep = topKPerPrompt(rollouts.map((r) => r.reward), rollouts.map((r) => r.prompt), c.rs.topN);
    const rows = rollouts.map((r, i) => ({ advantages: onTokens(0, r.length), returns: null, trains: keep[i] }));
    return { rows, metrics: { ...rolloutMetrics(rollouts), keptReward: mean(rollouts.filter((_, i) => keep[i]).map((r) => r.reward)) }, state };
  },

  actorLoss: (g) => nllLoss(g.logp, g.mask, g.denominator),
};
