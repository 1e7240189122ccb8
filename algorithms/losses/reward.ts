/**
 * Reward-model losses, as NeMo-Aligner defines them (`megatron_gpt_reward_model.py`,
 * `megatron_gpt_regression_reward_model.py`). Dimensions: B pairs (or samples), N attributes.
 *
 * Pairwise (Bradley-Terry) losses on the scalar rewards r_c, r_r [B], with d = r_c − r_r and a
 * per-pair margin m ≥ 0 (HelpSteer2-Preference: m = |l|, the preference strength):
 *   bt         −log σ(d)           Bradley & Terry 1952; Ouyang et al. 2022 (InstructGPT), eq. 1
 *   margin_bt  −log σ(d − m)       Touvron et al. 2023 (Llama 2), eq. 2
 *   scaled_bt  m·(−log σ(d))       Wang et al. 2024 (HelpSteer2-Preference), scaled BT
 * Each is a mean over the B pairs.
 *
 * Regression (SteerLM attribute model, Dong et al. 2023, §3.1): predictions ŷ [B, N] against
 * labels y with −100 marking a missing attribute (NeMo-Aligner's `loss_mask_val`):
 *   Σ (ŷ − y)²·mask / Σ mask, and 0 (not NaN, as NeMo-Aligner gives) when every label is masked.
 */
import { ShapeError, mul, mulScalar, neg, square, sub, sum, tensor } from '../../kernels/index.js';
import type { Tensor } from '../../kernels/index.js';
import { logSigmoid } from './log-sigmoid.js';

export type BradleyTerryKind = 'bt' | 'margin_bt' | 'scaled_bt';
export const BRADLEY_TERRY_KINDS: readonly BradleyTerryKind[] = ['bt', 'margin_bt', 'scaled_bt'];

export interface BradleyTerryOptions {
  /** Which pairwise loss; default 'bt'. */
  kind?: BradleyTerryKind;
  /** Per-pair margins m ≥ 0 [B]; required by margin_bt and scaled_bt, ignored by bt. */
  margin?: readonly number[] | null;
}

export interface RewardMetrics {
  /** Fraction of pairs with r_c > r_r (NeMo-Aligner `acc`). */
  accuracy: number;
  /** Mean reward of the chosen and of the rejected responses. */
  chosenReward: number;
  rejectedReward: number;
  /** Standard deviation over all 2B rewards, with Bessel's correction as torch.std (NeMo-Aligner `rewards_all_std`). */
  rewardStd: number;
  /** Mean r_c − r_r. */
  margin: number;
}

/** Pairwise reward-model loss [] from chosen [B] and rejected [B] rewards; metrics from their host-side values. */
export function bradleyTerryLoss(
  chosen: Tensor, rejected: Tensor, opts: BradleyTerryOptions,
  values: { chosen: ArrayLike<number>; rejected: ArrayLike<number> },
): { loss: Tensor; metrics: RewardMetrics } {
  const B = chosen.shape[0];
  if (chosen.rank !== 1 || rejected.rank !== 1 || rejected.shape[0] !== B) {
    throw new ShapeError(`bradleyTerryLoss: chosen and rejected must both be [B], got [${chosen.shape.join(', ')}] and [${rejected.shape.join(', ')}]`);
  }
  const kind = opts.kind ?? 'bt';
  const create = { backend: chosen.backend, dtype: chosen.dtype };
  const margins = (): Tensor => tensor(checkedMargins(kind, opts.margin ?? null, B), [B], create); // m [B]
  const d = sub(chosen, rejected); // r_c − r_r [B]
  let perPair: Tensor; // [B]
  switch (kind) {
    case 'bt':
      perPair = neg(logSigmoid(d));
      break;
    case 'margin_bt':
      perPair = neg(logSigmoid(sub(d, margins())));
      break;
    case 'scaled_bt':
      perPair = mul(margins(), neg(logSigmoid(d)));
      break;
  }
  const loss = mulScalar(sum(perPair), 1 / Math.max(1, B)); // []

  const rc = Array.from(values.chosen), rr = Array.from(values.rejected);
  const all = [...rc, ...rr];
  const mu = avg(all);
  const variance = all.length > 1 ? all.reduce((p, x) => p + (x - mu) ** 2, 0) / (all.length - 1) : 0;
  return {
    loss,
    metrics: {
      accuracy: avg(rc.map((c, i) => (c > rr[i] ? 1 : 0))),
      chosenReward: avg(rc),
      rejectedReward: avg(rr),
      rewardStd: Math.sqrt(variance),
      margin: avg(rc.map((c, i) => c - rr[i])),
    },
  };
}

function checkedMargins(kind: BradleyTerryKind, margin: readonly number[] | null, B: number): readonly number[] {
  if (margin === null) throw new Error(`bradleyTerryLoss: kind '${kind}' needs opts.margin, one value per pair (${B})`);
  if (margin.length !== B) throw new ShapeError(`bradleyTerryLoss: opts.margin has ${margin.length} values for ${B} pairs`);
  const bad = margin.findIndex((m) => !(Number.isFinite(m) && m >= 0));
  if (bad >= 0) throw new Error(`bradleyTerryLoss: margin[${bad}] = ${margin[bad]}; margins must be finite and ≥ 0 (pass |l| for HelpSteer2 labels)`);
  return margin;
}

/** The label value that marks a missing attribute (NeMo-Aligner `loss_mask_val`). */
export const REGRESSION_MASK = -100;

export interface RegressionMetrics {
  /** Masked mean squared error, the loss value. */
  mse: number;
  /** Masked mean absolute error. */
  mae: number;
}

/**
 * Masked MSE [] of pred [B, N] against labels (B rows of N; REGRESSION_MASK = missing).
 * Metrics come from predValues, the host-side copy of pred (row-major B·N).
 */
export function regressionLoss(
  pred: Tensor, labels: readonly (readonly number[])[], predValues: ArrayLike<number>,
): { loss: Tensor; metrics: RegressionMetrics } {
  const [B, N] = pred.shape;
  if (pred.rank !== 2 || labels.length !== B || labels.some((row) => row.length !== N)) {
    throw new ShapeError(`regressionLoss: pred is [${pred.shape.join(', ')}] but labels are ${labels.length} rows of [${labels.map((r) => r.length).join(', ')}]; expected B rows of N`);
  }
  const create = { backend: pred.backend, dtype: pred.dtype };
  const flat = labels.flat();
  const maskValues = flat.map((y) => (y === REGRESSION_MASK ? 0 : 1));
  const count = maskValues.reduce<number>((p, m) => p + m, 0);
  const y = tensor(flat.map((v, i) => v * maskValues[i]), [B, N], create); // [B, N], 0 where masked
  const mask = tensor(maskValues, [B, N], create); // [B, N]
  const sq = mul(square(sub(pred, y)), mask); // (ŷ − y)²·mask [B, N]
  const loss = mulScalar(sum(sq), count === 0 ? 0 : 1 / count); // []

  let se = 0, ae = 0;
  for (let i = 0; i < flat.length; i++) {
    if (maskValues[i] === 0) continue;
    const e = predValues[i] - flat[i];
    se += e * e;
    ae += Math.abs(e);
  }
  return { loss, metrics: { mse: count === 0 ? 0 : se / count, mae: count === 0 ? 0 : ae / count } };
}

const avg = (xs: readonly number[]): number => xs.reduce((p, x) => p + x, 0) / Math.max(1, xs.length);
