/**
 * The policy and value losses of the online recipes, on token grids [B, T] (one row per rollout,
 * response tokens where mask = 1; the grids come from algorithms/rollouts/grid.ts). Each returns
 * the SUM over masked tokens scaled by 1/denominator: with the global batch's token count as the
 * denominator, micro-batches accumulate to the global batch's masked mean, whatever their size.
 */
import { add, exp, full, maximum, minimum, mul, mulScalar, neg, square, sub, sum, tensor } from '../../kernels/index.js';
import type { Tensor } from '../../kernels/index.js';

/** Constants on the grid of `like` ([B, T]), in its backend and dtype. */
export function gridOf(like: Tensor, values: ArrayLike<number>): Tensor {
  return tensor(values, [...like.shape], { backend: like.backend, dtype: like.dtype }); // [B, T]
}

function clip(x: Tensor, lo: number, hi: number): Tensor {
  const opts = { backend: x.backend, dtype: x.dtype };
  return minimum(maximum(x, full([...x.shape], lo, opts)), full([...x.shape], hi, opts)); // [B, T]
}

/**
 * PPO's clipped surrogate (Schulman et al. 2017, eq. 7), as a loss to minimise:
 *   Σ_t mask·max(−A·ρ, −A·clip(ρ, 1−ε, 1+ε)) / denominator,  ρ = exp(ℓ − ℓ_old).
 * logp [B, T] carries the gradient; old, advantages and mask are constants on the same grid.
 */
export function clippedPolicyLoss(logp: Tensor, old: ArrayLike<number>, advantages: ArrayLike<number>, mask: ArrayLike<number>, eps: number, denominator: number): Tensor {
  const ratio = exp(sub(logp, gridOf(logp, old))); // ρ [B, T]
  const negAdv = gridOf(logp, Array.from(advantages, (a) => -a)); // −A [B, T]
  const perToken = maximum(mul(negAdv, ratio), mul(negAdv, clip(ratio, 1 - eps, 1 + eps))); // [B, T]
  return mulScalar(sum(mul(perToken, gridOf(logp, mask))), 1 / Math.max(1, denominator)); // []
}

/**
 * The PPO critic's clipped value loss (NeMo-Aligner `megatron_gpt_critic.py`):
 *   0.5·Σ_t mask·max((V_clip − Ret)², (V − Ret)²) / denominator,  V_clip = V_old + clip(V − V_old, ±c).
 */
export function clippedValueLoss(values: Tensor, oldValues: ArrayLike<number>, returns: ArrayLike<number>, mask: ArrayLike<number>, clipRange: number, denominator: number): Tensor {
  const vOld = gridOf(values, oldValues), ret = gridOf(values, returns); // [B, T]
  const vClip = add(vOld, clip(sub(values, vOld), -clipRange, clipRange)); // [B, T]
  const perToken = maximum(square(sub(vClip, ret)), square(sub(values, ret))); // [B, T]
  return mulScalar(sum(mul(perToken, gridOf(values, mask))), 0.5 / Math.max(1, denominator)); // []
}

/**
 * The REINFORCE loss (Williams 1992; NeMo-Aligner `megatron_gpt_reinforce_actor.py`): Σ_t mask·(−ℓ_t·A) / denominator,
 * with A the sequence's advantage repeated on its tokens.
 */
export function reinforceLoss(logp: Tensor, advantages: ArrayLike<number>, mask: ArrayLike<number>, denominator: number): Tensor {
  const weight = gridOf(logp, Array.from(advantages, (a, i) => -a * Number(mask[i]))); // −A·mask [B, T]
  return mulScalar(sum(mul(logp, weight)), 1 / Math.max(1, denominator)); // []
}

/**
 * The k3 estimator of KL(π‖π_ref) per token (Schulman 2020, "Approximating KL divergence"; GRPO, Shao et al. 2024, eq. 4):
 *   exp(ℓ_ref − ℓ) − (ℓ_ref − ℓ) − 1  (≥ 0, unbiased, zero where π = π_ref).
 */
export function k3Kl(logp: Tensor, ref: ArrayLike<number>): Tensor {
  const d = sub(gridOf(logp, ref), logp); // ℓ_ref − ℓ [B, T]
  return sub(sub(exp(d), d), full([...logp.shape], 1, { backend: logp.backend, dtype: logp.dtype })); // [B, T]
}

/**
 * GRPO's objective as a loss (Shao et al. 2024, eq. 3, token-level normalisation as in DAPO and
 * NeMo-RL): the clipped surrogate plus β·k3 KL, Σ_t mask·(max(−A·ρ, −A·clip(ρ)) + β·k3_t) / denominator.
 */
export function grpoLoss(logp: Tensor, old: ArrayLike<number>, ref: ArrayLike<number>, advantages: ArrayLike<number>, mask: ArrayLike<number>, eps: number, beta: number, denominator: number): Tensor {
  const surrogate = clippedPolicyLoss(logp, old, advantages, mask, eps, denominator); // []
  if (beta === 0) return surrogate;
  const kl = mulScalar(sum(mul(k3Kl(logp, ref), gridOf(logp, mask))), beta / Math.max(1, denominator)); // []
  return add(surrogate, kl); // []
}

/** Negative log-likelihood of the masked tokens, Σ −ℓ·mask / denominator (rejection sampling trains on its kept samples with it). */
export function nllLoss(logp: Tensor, mask: ArrayLike<number>, denominator: number): Tensor {
  return mulScalar(neg(sum(mul(logp, gridOf(logp, mask)))), 1 / Math.max(1, denominator)); // []
}
