/**
 * SteerLM 2.0 (Wang et al. 2024, HelpSteer2: Open-source dataset for training top-performing
 * reward models, arXiv 2406.08673, §4.5 "Method Details"; NeMo-Aligner gpt_steerlm_model.py).
 * Q_θ(y|a,x) is trained towards P(y|a,x) ∝ P(a|x,y)·P(y|x) (eq. 1) by minimising
 * E KL(P(y|a,x) ‖ Q_θ(y|a,x)) (eq. 2), estimated from n responses y_i ~ Q′, the initial SteerLM model:
 *   w′_i = softmax_i( log P(a|x,y_i) + log P(y_i|x) − log Q′(y_i|a,x) )    eqs. 6–7 (self-normalised importance weights)
 *   b′_i = softmax_i( log Q_θ(y_i|a,x) − log Q′(y_i|a,x) )                 eq. 10 (the baseline, no gradient)
 *   ∇L   ≈ −Σ_i (w′_i − b′_i) ∇ log Q_θ(y_i|a,x)                            eq. 11
 * which is the gradient of the distance D = Σ_i w′_i log(w′_i / b′_i), the KL from w′ to b′ (eq. 12).
 * The loss with that gradient, as NeMo-Aligner writes it: Σ_i (w′_i − b′_i)·NLL_θ(y_i) with b′ held
 * constant, divided by the group's mean response length (avg_num_valid_tokens_in_ub), then averaged
 * over the groups (prompts) of the batch. Its value is a surrogate; D is what to watch.
 */
import { mul, neg, ShapeError, softmax, sub, sum, tensor } from '../../kernels/index.js';
import type { Tensor } from '../../kernels/index.js';

/** What one group (one prompt, its n responses) brings besides the policy's log-probs: constants from the data. */
export interface SteerLM2Group {
  /** w′_i, summing to 1. */
  weights: readonly number[];
  /** log Q′(y_i|a,x), the sampling model's sequence log-probs. */
  logQPrime: readonly number[];
  /** Response tokens of each y_i (the NLL normaliser is their mean). */
  lengths: readonly number[];
}

/** Numerically stable log-softmax of host values. */
export function logSoftmaxOf(xs: readonly number[]): number[] {
  const m = Math.max(...xs);
  const lse = m + Math.log(xs.reduce((s, x) => s + Math.exp(x - m), 0));
  return xs.map((x) => x - lse);
}

/** w′ of one group from the three log-probs of each response (eqs. 6–7). */
export function importanceWeights(logPa: readonly number[], logPy: readonly number[], logQPrime: readonly number[]): number[] {
  return logSoftmaxOf(logPa.map((a, i) => a + logPy[i] - logQPrime[i])).map(Math.exp);
}

const meanOf = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/**
 * logQ [G, n]: log Q_θ(y_i|a,x) of every response, summed over its tokens, carrying the policy's
 * gradient. Returns the loss [] (mean over the G groups) and b′ [G, n], detached.
 */
export function steerlm2Loss(logQ: Tensor, groups: readonly SteerLM2Group[]): { loss: Tensor; baseline: Tensor } {
  const [G, n] = logQ.shape;
  if (logQ.rank !== 2 || groups.length !== G || groups.some((g) => g.weights.length !== n || g.logQPrime.length !== n || g.lengths.length !== n)) {
    throw new ShapeError(`steerlm2Loss: logQ [${logQ.shape.join(', ')}] needs one group of ${n} weights, log Q′ and lengths per row; got ${groups.length} groups`);
  }
  const opts = { backend: logQ.backend, dtype: logQ.dtype };
  const qPrime = tensor(groups.flatMap((g) => g.logQPrime), [G, n], opts); // [G, n]
  // b′ comes from this same forward, cut from the tape: NeMo-Aligner runs a separate no-grad
  // forward first; the weights are the same, so the numbers are too, for one forward fewer.
  const baseline = softmax(sub(logQ.detach(), qPrime)); // b′ [G, n]
  const w = tensor(groups.flatMap((g) => g.weights), [G, n], opts); // w′ [G, n]
  const scale = tensor(groups.map((g) => 1 / (G * Math.max(1, meanOf(g.lengths)))), [G, 1], opts); // [G, 1]
  const coeff = mul(sub(w, baseline), scale); // (w′ − b′) / (G · mean length) [G, n], constant
  return { loss: sum(mul(coeff, neg(logQ))), baseline }; // []
}

export interface SteerLM2Stats {
  /** D = Σ w′ log(w′/b′) (eq. 12). */
  distance: number;
  /** −Σ w′ log w′. */
  weightEntropy: number;
  /** Mean log Q_θ per response token. */
  meanLogQ: number;
  /** Mean of log Q_θ(y_i) − log Q′(y_i) over the responses. */
  logRatio: number;
}

/** The metrics of one group from host values of log Q_θ [n]; 0·log 0 counts 0, as a KL does. */
export function groupStats(logQ: ArrayLike<number>, g: SteerLM2Group): SteerLM2Stats {
  const q = Array.from(logQ);
  const logB = logSoftmaxOf(q.map((x, i) => x - g.logQPrime[i]));
  let distance = 0, weightEntropy = 0;
  g.weights.forEach((w, i) => {
    if (w <= 0) return;
    distance += w * (Math.log(w) - logB[i]);
    weightEntropy -= w * Math.log(w);
  });
  return {
    distance,
    weightEntropy,
    meanLogQ: q.reduce((a, b) => a + b, 0) / Math.max(1, g.lengths.reduce((a, b) => a + b, 0)),
    logRatio: meanOf(q.map((x, i) => x - g.logQPrime[i])),
  };
}

/** The mean of each statistic over groups. */
export function meanStats(stats: readonly SteerLM2Stats[]): SteerLM2Stats {
  const keys = ['distance', 'weightEntropy', 'meanLogQ', 'logRatio'] as const;
  return Object.fromEntries(keys.map((k) => [k, meanOf(stats.map((s) => s[k]))])) as unknown as SteerLM2Stats;
}
