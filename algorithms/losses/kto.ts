/**
 * KTO, Kahneman-Tversky optimisation (Ethayarajh et al. 2024, eq. 8), as NeMo-Aligner
 * (`megatron_gpt_kto_model.py`) and TRL's KTOTrainer compute it. Dimensions: B completions.
 *
 * With r = log π(y|x) − log π_ref(y|x) (summed over completion tokens) and the reference point
 * z₀ = max(0, mean(log π(y′|x) − log π_ref(y′|x))) over mismatched "KL" pairs (x, y′), detached:
 *   desirable    λ_D·(1 − σ(β(r − z₀)))      eq. 8, v(x, y) for y ~ y_desirable
 *   undesirable  λ_U·(1 − σ(β(z₀ − r)))      eq. 8, v(x, y) for y ~ y_undesirable
 * The loss is the mean over the batch, which is NeMo-Aligner's mean over [λ_D·des, λ_U·undes].
 * 1 − σ(x) = σ(−x), so each completion contributes λ_y·σ(s_y·β(z₀ − r)) with s = +1 desirable, −1 not.
 */
import { ShapeError, mul, mulScalar, sigmoid, sub, sum, tensor } from '../../kernels/index.js';
import type { Tensor } from '../../kernels/index.js';

export interface KtoBatch {
  /** log π(y|x) of each completion, summed over its tokens: [B], carries the policy's gradient. */
  policy: Tensor;
  /** log π_ref(y|x) for the same completions (constants). */
  ref: readonly number[];
  /** true = desirable, false = undesirable. */
  labels: readonly boolean[];
  /** log π and log π_ref of the mismatched (x, y′) pairs, used only for z₀ (no gradient). */
  policyKl: readonly number[];
  refKl: readonly number[];
}

export interface KtoOptions {
  /** β, the sharpness of the value function (TRL default 0.1, NeMo-Aligner 0.2). */
  beta: number;
  /** λ_D, the weight of desirable completions. Default 1. */
  desirableWeight?: number;
  /** λ_U, the weight of undesirable completions. Default 1. */
  undesirableWeight?: number;
}

export interface KtoMetrics {
  /** z₀, the clamped KL estimate. */
  kl: number;
  /** Mean implicit reward β·r over desirable completions (0 when there are none). */
  desirableReward: number;
  /** The same over undesirable completions. */
  undesirableReward: number;
  /** desirableReward − undesirableReward. */
  margin: number;
}

/** The KTO loss [] and metrics; policyValues is the host-side copy of batch.policy. */
export function ktoLoss(b: KtoBatch, o: KtoOptions, policyValues: ArrayLike<number>): { loss: Tensor; metrics: KtoMetrics } {
  const B = b.ref.length;
  if (b.policy.rank !== 1 || b.policy.shape[0] !== B || b.labels.length !== B) {
    throw new ShapeError(`ktoLoss: policy [${b.policy.shape.join(', ')}], ${B} ref values and ${b.labels.length} labels; all must have the batch size`);
  }
  if (b.policyKl.length !== b.refKl.length) throw new ShapeError(`ktoLoss: ${b.policyKl.length} policyKl values but ${b.refKl.length} refKl values`);
  const create = { backend: b.policy.backend, dtype: b.policy.dtype };
  const klMean = b.policyKl.reduce((p, x, i) => p + (x - b.refKl[i]), 0) / Math.max(1, b.policyKl.length);
  const z0 = Math.max(0, klMean);
  const wD = o.desirableWeight ?? 1, wU = o.undesirableWeight ?? 1;

  const zPlusRef = tensor(b.ref.map((r) => z0 + r), [B], create); // z₀ + log π_ref [B]
  const zMinusR = mulScalar(sub(zPlusRef, b.policy), o.beta); // β(z₀ − r) [B]
  const sign = tensor(b.labels.map((d) => (d ? 1 : -1)), [B], create); // s [B]
  const weight = tensor(b.labels.map((d) => (d ? wD : wU)), [B], create); // λ_y [B]
  const perSample = mul(weight, sigmoid(mul(sign, zMinusR))); // λ_y·(1 − σ(s·β(r − z₀))) [B]
  const loss = mulScalar(sum(perSample), 1 / Math.max(1, B)); // []

  const rewards = b.ref.map((r, i) => o.beta * (policyValues[i] - r));
  const des = rewards.filter((_, i) => b.labels[i]), undes = rewards.filter((_, i) => !b.labels[i]);
  const desirableReward = avg(des), undesirableReward = avg(undes);
  return { loss, metrics: { kl: z0, desirableReward, undesirableReward, margin: desirableReward - undesirableReward } };
}

const avg = (xs: readonly number[]): number => xs.reduce((p, x) => p + x, 0) / Math.max(1, xs.length);
