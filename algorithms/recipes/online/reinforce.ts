/**
 * REINFORCE with the leave-one-out baseline (Williams 1992; Ahmadian et al. 2024, RLOO, eq. 6),
 * as NeMo-Aligner trains it (`gpt_reinforce_actor.yaml`): 4 rollouts per prompt, the reward
 * penalised by β·mean_t |ℓ_old − ℓ_ref| (β = 0.01), a baseline over the prompt's other samples
 * that ended, and the loss −ℓ·(r̃ − b) on the ended samples' tokens. No critic, no clipping.
 */
import { z } from 'zod';
import { mean, rlooBaselines, tokenKl } from '../../rollouts/advantages.js';
import { reinforceLoss } from '../../losses/policy-gradient.js';
import { checkOnline, onlineBaseSchema } from './config.js';
import { ONLINE_EXAMPLE, ONLINE_FILES, onTokens, POLICY_ROLE, promptDataset, REFERENCE_ROLE, REWARD_ROLE, ROLLOUT_METRICS, rolloutMetrics, stagesOf, trains } from './common.js';
import type { OnlineRecipe } from '../types.js';

export const reinforceSection = z.object({
  klBeta: z.number().nonnegative().default(0.01).describe('β of the sequence-level KL penalty (NeMo-Aligner initial_policy_kl_penalty 0.01).'),
  absoluteKl: z.boolean().default(true).describe('Penalise mean_t |ℓ_old − ℓ_ref| (NeMo-Aligner use_absolute_kl).'),
}).strict();

export const reinforceConfigSchema = onlineBaseSchema.extend({
  reinforce: reinforceSection.default(reinforceSection.parse({})).describe('REINFORCE options.'),
}).strict();

export type ReinforceConfig = z.infer<typeof reinforceConfigSchema>;

const samples = (c: ReinforceConfig) => c.rollout.samplesPerPrompt ?? 4;

export const reinforce: OnlineRecipe<ReinforceConfig> = {
  name: 'reinforce',
  kind: 'online',
  summary: 'REINFORCE with the RLOO leave-one-out baseline and a sequence KL penalty (no critic)',
  paper: 'Ahmadian et al. 2024, Back to Basics: Revisiting REINFORCE Style Optimization for Learning from Human Feedback, eq. 6 — https://arxiv.org/abs/2402.14740',
  schema: reinforceConfigSchema,
  check: (c) => {
    checkOnline(c, samples(c));
  },
  example: { ...ONLINE_EXAMPLE, rollout: { ...ONLINE_EXAMPLE.rollout, promptsPerIteration: 4, samplesPerPrompt: 4 } },
  roles: { policy: POLICY_ROLE, reference: REFERENCE_ROLE, reward: REWARD_ROLE },
  metrics: { ...ROLLOUT_METRICS, penalisedReward: { description: 'mean of R − β·KL_seq' } },
  headline: () => ({ metric: 'reward', better: 'higher' }),
  ...promptDataset,
  files: ONLINE_FILES,
  stages: stagesOf('generate', 'score', 'logprobs', 'advantages', 'train'),
  samplesPerPrompt: samples,
  epochs: () => 1,
  initialState: (c) => ({ klBeta: c.reinforce.klBeta }),

  advantages(rollouts, c, state) {
    const penalised = rollouts.map((r) => {
      const kl = tokenKl(r.old!, r.ref!, c.reinforce.absoluteKl);
      return r.reward - state.klBeta * mean(kl);
    });
    const use = rollouts.map((r) => trains(c, r));
    const b = rlooBaselines(penalised, use, rollouts.map((r) => r.prompt));
    const rows = rollouts.map((r, i) => ({ advantages: onTokens(penalised[i] - b[i], r.old!.length), returns: null, trains: use[i] }));
    return { rows, metrics: { ...rolloutMetrics(rollouts), penalisedReward: mean(penalised) }, state };
  },

  actorLoss: (g) => reinforceLoss(g.logp, g.advantages, g.mask, g.denominator),
};
