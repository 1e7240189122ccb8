/**
 * GRPO (Shao et al. 2024, DeepSeekMath, eq. 3): G samples per prompt, advantages normalised within
 * each group (no critic), the clipped surrogate (ε = 0.2) plus β·k3 KL to the reference in the loss,
 * averaged over tokens (NeMo-RL's and DAPO's normalisation). Defaults: TRL's 8 generations, NeMo-RL's
 * β = 0.01 (β = 0 skips the reference altogether, as TRL's default does).
 */
import { z } from 'zod';
import { groupNormalized } from '../../rollouts/advantages.js';
import { grpoLoss } from '../../losses/policy-gradient.js';
import { checkOnline, onlineBaseSchema } from './config.js';
import { ONLINE_EXAMPLE, ONLINE_FILES, onTokens, POLICY_ROLE, promptDataset, REFERENCE_ROLE, REWARD_ROLE, ROLLOUT_METRICS, rolloutMetrics, stagesOf, trains } from './common.js';
import type { OnlineRecipe } from '../types.js';

export const grpoSection = z.object({
  klBeta: z.number().nonnegative().default(0.01).describe('β of the k3 KL term in the loss (NeMo-RL 0.01; TRL 0).'),
  clip: z.number().positive().default(0.2).describe('ε of the clipped surrogate (TRL, NeMo-RL 0.2).'),
  epochs: z.number().int().positive().default(1).describe('Passes over each rollout batch (TRL num_iterations 1).'),
}).strict();

export const grpoConfigSchema = onlineBaseSchema.extend({
  grpo: grpoSection.default(grpoSection.parse({})).describe('GRPO options.'),
}).strict();

export type GrpoConfig = z.infer<typeof grpoConfigSchema>;

const samples = (c: GrpoConfig) => c.rollout.samplesPerPrompt ?? 8;

export const grpo: OnlineRecipe<GrpoConfig> = {
  name: 'grpo',
  kind: 'online',
  summary: 'GRPO: group-normalised advantages, clipped surrogate and k3 KL in the loss (no critic)',
  paper: 'Shao et al. 2024, DeepSeekMath, eq. 3 and §4.1.2 — https://arxiv.org/abs/2402.03300',
  schema: grpoConfigSchema,
  check: (c) => checkOnline(c, samples(c)),
  example: { ...ONLINE_EXAMPLE, rollout: { ...ONLINE_EXAMPLE.rollout, promptsPerIteration: 4, samplesPerPrompt: 4 } },
  roles: { policy: POLICY_ROLE, reference: REFERENCE_ROLE, reward: REWARD_ROLE },
  metrics: { ...ROLLOUT_METRICS },
  headline: () => ({ metric: 'reward', better: 'higher' }),
  ...promptDataset,
  files: ONLINE_FILES,
  stages: stagesOf('generate', 'score', 'logprobs', 'advantages', 'train'),
  samplesPerPrompt: samples,
  epochs: (c) => c.grpo.epochs,
  initialState: (c) => ({ klBeta: c.grpo.klBeta }),

  advantages(rollouts, c, state) {
    const a = groupNormalized(rollouts.map((r) => r.reward), rollouts.map((r) => r.prompt));
    const rows = rollouts.map((r, i) => ({ advantages: onTokens(a[i], r.old!.length), returns: null, trains: trains(c, r) }));
    return { rows, metrics: rolloutMetrics(rollouts), state };
  },

  actorLoss: (g, c) => grpoLoss(g.logp, g.old, g.ref ?? g.old, g.advantages, g.mask, c.grpo.clip, g.ref ? c.grpo.klBeta : 0, g.denominator),
  policyClip: (c) => c.grpo.clip,
};
