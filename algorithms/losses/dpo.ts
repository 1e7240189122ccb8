/**
 * The DPO family, as NeMo-Aligner defines it. With ρ(y) = log π(y|x) − log π_ref(y|x) summed
 * over response tokens (averaged when `averageLogProbs`), Δ = ρ(y_c) − ρ(y_r), Δr = s·(r_c − r_r):
 *   dpo        −log σ(βΔ)                          Rafailov et al. 2023, eq. 7
 *   ipo        (Δ − 1/(2β))²                       Azar et al. 2023, eq. 17
 *   rpo_sq     (βΔ − Δr)²                          Adler et al. 2024 (Nemotron-4 340B), §3.2.3
 *   rpo_bwd_kl KL(Bern(σ(Δr)) ‖ Bern(σ(βΔ)))       same, reverse-KL variant
 *   rpo_fwd_kl KL(Bern(σ(βΔ)) ‖ Bern(σ(Δr)))       same, forward-KL variant
 * plus an optional SFT term −sftWeight·mean(log π(y_c)). Every loss is a mean over the batch.
 */
import {
  add, addScalar, exp, mean, mul, mulScalar, neg, square, sub, tensor,
} from '../../kernels/index.js';
import type { Tensor } from '../../kernels/index.js';
import { logSigmoid } from './log-sigmoid.js';

export type PreferenceLoss = 'dpo' | 'ipo' | 'rpo_sq' | 'rpo_bwd_kl' | 'rpo_fwd_kl';
export const PREFERENCE_LOSSES: readonly PreferenceLoss[] = ['dpo', 'ipo', 'rpo_sq', 'rpo_bwd_kl', 'rpo_fwd_kl'];

export interface PreferenceBatch {
  /** log π(y_c), log π(y_r): [B] tensors that carry the policy's gradient. */
  policyChosen: Tensor;
  policyRejected: Tensor;
  /** log π_ref for the same responses (constants). */
  refChosen: readonly number[];
  refRejected: readonly number[];
  /** Ground-truth rewards, used by the RPO losses. */
  chosenReward: readonly number[];
  rejectedReward: readonly number[];
}

export interface PreferenceLossOptions {
  beta: number;
  loss: PreferenceLoss;
  /** Weight of the SFT term on the chosen responses. Default 0. */
  sftWeight?: number;
  /** Scale s of the ground-truth reward difference. Default 1. */
  gtRewardScale?: number;
}

export interface PreferenceMetrics {
  /** Fraction of pairs with ρ_c > ρ_r. */
  accuracy: number;
  /** Mean implicit rewards β·ρ (TRL's convention). */
  chosenReward: number;
  rejectedReward: number;
  margin: number;
}

/** The loss tensor [], and metrics when the host-side policy values are given (else null: see preferenceMetrics). */
export function preferenceLoss(b: PreferenceBatch, o: PreferenceLossOptions, policyValues?: { chosen: ArrayLike<number>; rejected: ArrayLike<number> }): { loss: Tensor; metrics: PreferenceMetrics | null } {
  const opts = { backend: b.policyChosen.backend, dtype: b.policyChosen.dtype };
  const B = b.refChosen.length;
  const refDiff = tensor(b.refChosen.map((c, i) => c - b.refRejected[i]), [B], opts); // [B]
  const delta = sub(sub(b.policyChosen, b.policyRejected), refDiff); // Δ [B]
  const bd = mulScalar(delta, o.beta); // βΔ [B]
  const s = o.gtRewardScale ?? 1;
  const dr = b.chosenReward.map((c, i) => s * (c - b.rejectedReward[i]));
  let perPair: Tensor; // [B]
  switch (o.loss) {
    case 'dpo':
      perPair = neg(logSigmoid(bd));
      break;
    case 'ipo':
      perPair = square(addScalar(delta, -1 / (2 * o.beta)));
      break;
    case 'rpo_sq':
      perPair = square(sub(bd, tensor(dr, [B], opts)));
      break;
    case 'rpo_bwd_kl': {
      // α̂ = σ(Δr) is a constant; log β̂ = log σ(βΔ), log(1 − β̂) = log σ(−βΔ)
      const a = dr.map((x) => 1 / (1 + Math.exp(-x)));
      const logA = tensor(a.map((x) => Math.log(x)), [B], opts), log1mA = tensor(a.map((x) => Math.log1p(-x)), [B], opts);
      const A = tensor(a, [B], opts), oneMinusA = tensor(a.map((x) => 1 - x), [B], opts);
      perPair = add(mul(A, sub(logA, logSigmoid(bd))), mul(oneMinusA, sub(log1mA, logSigmoid(neg(bd)))));
      break;
    }
    case 'rpo_fwd_kl': {
      const logA = tensor(dr.map((x) => -Math.log1p(Math.exp(-x))), [B], opts);
      const log1mA = tensor(dr.map((x) => -Math.log1p(Math.exp(x))), [B], opts);
      const logB = logSigmoid(bd), log1mB = logSigmoid(neg(bd));
      perPair = add(mul(exp(logB), sub(logB, logA)), mul(exp(log1mB), sub(log1mB, log1mA)));
      break;
    }
  }
  let loss = mean(perPair); // []
  if (o.sftWeight) loss = add(loss, mulScalar(mean(b.policyChosen), -o.sftWeight));
  return { loss, metrics: policyValues ? preferenceMetrics(policyValues, b.refChosen, b.refRejected, o.beta) : null };
}

/** Accuracy and mean implicit rewards β·ρ from host-side policy log-probs and their references. */
export function preferenceMetrics(policy: { chosen: ArrayLike<number>; rejected: ArrayLike<number> }, refChosen: readonly number[], refRejected: readonly number[], beta: number): PreferenceMetrics {
  const rho = (pol: ArrayLike<number>, ref: readonly number[]) => ref.map((r, i) => pol[i] - r);
  const rc = rho(policy.chosen, refChosen), rr = rho(policy.rejected, refRejected);
  const avg = (xs: number[]) => xs.reduce((p, x) => p + x, 0) / Math.max(1, xs.length);
  return {
    accuracy: avg(rc.map((c, i) => (c > rr[i] ? 1 : 0))),
    chosenReward: beta * avg(rc),
    rejectedReward: beta * avg(rr),
    margin: beta * (avg(rc) - avg(rr)),
  };
}
