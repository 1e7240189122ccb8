/**
 * PPO for RLHF (Ouyang et al. 2022, §3.5; Schulman et al. 2017, eq. 7), with NeMo-Aligner's
 * defaults (`gpt_ppo_actor.yaml`, `gpt_ppo_critic.yaml`): per-token reward R·1[t=T] − β·|ℓ_old − ℓ_ref|
 * with β = 0.01 (optionally adaptive, Ziegler et al. 2019), GAE with γ = 1 and λ = 0.95, whitened
 * advantages, the clipped surrogate with ε = 0.2, and a critic trained with value clipping 0.2,
 * initialised from the reward model.
 */
import { z } from 'zod';
import { adaptKl, explainedVariance, gae, tokenKl, tokenRewards, whiten } from '../../rollouts/advantages.js';
import { clippedPolicyLoss } from '../../losses/policy-gradient.js';
import { checkOnline, onlineBaseSchema } from './config.js';
import { ONLINE_EXAMPLE, ONLINE_FILES, POLICY_ROLE, promptDataset, REFERENCE_ROLE, REWARD_ROLE, ROLLOUT_METRICS, rolloutMetrics, stagesOf, trains } from './common.js';
import type { OnlineRecipe } from '../types.js';

export const ppoSection = z.object({
  klBeta: z.number().nonnegative().default(0.01).describe('β of the per-token KL penalty (NeMo-Aligner initial_policy_kl_penalty 0.01).'),
  absoluteKl: z.boolean().default(true).describe('Penalise |ℓ_old − ℓ_ref| (NeMo-Aligner use_absolute_kl) instead of the signed k1 estimate.'),
  adaptiveKl: z.object({
    target: z.number().positive().describe('Target sequence KL.'),
    horizon: z.number().positive().default(10000).describe('Samples over which β moves by up to 20%.'),
  }).strict().optional().describe('Adapt β towards a target KL (Ziegler et al. 2019, §2.2); its β is checkpointed. Off by default, as in NeMo-Aligner.'),
  gamma: z.number().min(0).max(1).default(1).describe('GAE discount γ (NeMo-Aligner discount_factor 1.0).'),
  lambda: z.number().min(0).max(1).default(0.95).describe('GAE λ (NeMo-Aligner gae_lambda 0.95).'),
  whitenAdvantages: z.boolean().default(true).describe('Normalise advantages over the batch (NeMo-Aligner normalize_advantages).'),
  clip: z.number().positive().default(0.2).describe('ε of the clipped surrogate (NeMo-Aligner ratio_eps 0.2).'),
  valueClip: z.number().positive().default(0.2).describe('Clip of the critic\'s value change (NeMo-Aligner loss_clip_val 0.2).'),
  epochs: z.number().int().positive().default(1).describe('Passes over each rollout batch.'),
  criticModel: z.string().min(1).optional().describe('Critic initialisation: default reward.model (NeMo-Aligner initialises the critic from the RM), else model with a fresh value head.'),
  criticLr: z.number().positive().default(9e-6).describe('Critic learning rate (NeMo-Aligner 9e-6).'),
  criticWorker: z.enum(['actor', 'own']).default('actor').describe('Where the critic lives: with the actor (one worker, one slot), or on a worker of its own (a second slot; values and critic training run there, in parallel with the actor\'s training), as NeMo-Aligner\'s critic server.'),
}).strict();

export const ppoConfigSchema = onlineBaseSchema.extend({
  ppo: ppoSection.default(ppoSection.parse({})).describe('PPO options.'),
}).strict();

export type PpoConfig = z.infer<typeof ppoConfigSchema>;

const samples = (c: PpoConfig) => c.rollout.samplesPerPrompt ?? 1;

export const ppo: OnlineRecipe<PpoConfig> = {
  name: 'ppo',
  kind: 'online',
  summary: 'RLHF with PPO: actor, critic, reward model and reference in an experience loop',
  paper: 'Schulman et al. 2017, Proximal Policy Optimization, eq. 7 (https://arxiv.org/abs/1707.06347); Ouyang et al. 2022, InstructGPT, eq. 2 (https://arxiv.org/abs/2203.02155); GAE: Schulman et al. 2016, eq. 16',
  schema: ppoConfigSchema,
  check: (c) => checkOnline(c, samples(c)),
  example: { ...ONLINE_EXAMPLE, ppo: { criticLr: 3e-3, klBeta: 0.01 } },
  roles: {
    policy: POLICY_ROLE, reference: REFERENCE_ROLE, reward: REWARD_ROLE,
    critic: { description: 'estimates per-token values for GAE; initialised from the reward model', configField: 'ppo.criticModel', trains: true },
  },
  metrics: {
    ...ROLLOUT_METRICS,
    klBeta: { description: 'β in use (changes with ppo.adaptiveKl)' },
    explainedVariance: { description: 'of the critic\'s values against the returns, before training' },
    clipFraction: { description: 'fraction of trained tokens whose ratio was clipped' },
    valueLoss: { description: 'the critic\'s clipped value loss' },
  },
  headline: () => ({ metric: 'reward', better: 'higher' }),
  ...promptDataset,
  files: ONLINE_FILES,
  stages: stagesOf('generate', 'score', 'logprobs', 'values', 'advantages', 'train'),
  samplesPerPrompt: samples,
  epochs: (c) => c.ppo.epochs,
  initialState: (c) => ({ klBeta: c.ppo.klBeta }),

  advantages(rollouts, c, state) {
    const beta = state.klBeta;
    const per = rollouts.map((r) => {
      const rewards = tokenRewards(r.reward, r.old!, r.ref!, beta, c.ppo.absoluteKl);
      return gae(rewards, r.values!, c.ppo.gamma, c.ppo.lambda);
    });
    const use = rollouts.map((r) => trains(c, r));
    const advantages = c.ppo.whitenAdvantages ? whiten(per.map((p) => p.advantages), use) : per.map((p) => p.advantages);
    const metrics = {
      ...rolloutMetrics(rollouts), klBeta: beta,
      explainedVariance: explainedVariance(rollouts.flatMap((r) => r.values!), per.flatMap((p) => p.returns)),
    };
    const seqKl = rollouts.reduce((s, r) => s + tokenKl(r.old!, r.ref!, false).reduce((a, b) => a + b, 0), 0) / Math.max(1, rollouts.length);
    const next = c.ppo.adaptiveKl ? adaptKl(beta, seqKl, c.ppo.adaptiveKl.target, c.ppo.adaptiveKl.horizon, rollouts.length) : beta;
    return { rows: per.map((p, i) => ({ advantages: advantages[i], returns: p.returns, trains: use[i] })), metrics, state: { klBeta: next } };
  },

  actorLoss: (g, c) => clippedPolicyLoss(g.logp, g.old, g.advantages, g.mask, c.ppo.clip, g.denominator),
  critic: (c) => ({ modelUri: c.ppo.criticModel ?? c.reward.model ?? c.model, lr: c.ppo.criticLr, valueClip: c.ppo.valueClip }),
  policyClip: (c) => c.ppo.clip,
};
