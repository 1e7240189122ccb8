/**
 * log P(a|x,y) for SteerLM 2.0 from a regression attribute model.
 *
 * SteerLM 2.0 (NeMo-Aligner `docs/user-guide/steerlm2.rst`, `SteerLM2Dataset`) weights each sampled
 * response by `log P(a|x,y) + log P(y|x) − log Q′(y|a,x)`, and calls the first term "the attribute
 * prediction model's output log-probability for the attributes a". NeMo-Aligner never computes it:
 * the record field `log(P(a|x,y))` is filled by the user, and its attribute model (§2.3, trained by
 * `process_to_regression_format.py` data) is a regression model that outputs one real number per
 * attribute, not a distribution. So the definition below is ours.
 *
 * Definition. For each attribute k the model predicts μ_k. Over the integer levels v = 0…L
 * (HelpSteer and the SteerLM labels use 0…4, so L = 4 by default) put
 *
 *     P_k(v) = softmax_v( −(v − μ_k)² / (2σ²) )        (σ = 1 by default)
 *
 * — a Gaussian around the prediction, discretised to the levels and renormalised, so a prediction
 * of 3.2 puts most mass on 3, a little on 4 and 2, and predictions outside 0…L pile up on the end
 * level. Attributes are taken as independent given (x, y), so for a target a:
 *
 *     log P(a|x,y) = Σ_{k ∈ a} log P_k(a_k),   a_k rounded to the nearest level and clamped to 0…L.
 *
 * Only the target's attributes count: a target that leaves an attribute out does not condition on
 * it. σ sets how sharply the weights prefer responses whose predictions sit on the target; it
 * plays the role of the attribute model's error and can be set from its validation RMSE.
 */
import { ConfigError } from '../errors.js';

export interface AttributeLogProbOptions {
  /** Highest level L; levels are 0…L. Default 4. */
  levels?: number;
  /** Width of the Gaussian around each prediction, in levels. Default 1. */
  sigma?: number;
}

/** log P_k(v) for v = 0…L around the prediction `mu`. */
export function levelLogProbs(mu: number, opts: AttributeLogProbOptions = {}): number[] {
  const { levels, sigma } = checkOptions(opts);
  if (!Number.isFinite(mu)) throw new ConfigError(`attribute prediction ${mu} is not a finite number`);
  const scores = Array.from({ length: levels + 1 }, (_, v) => -((v - mu) ** 2) / (2 * sigma * sigma));
  const top = Math.max(...scores);
  const logZ = top + Math.log(scores.reduce((s, x) => s + Math.exp(x - top), 0));
  return scores.map((s) => s - logZ);
}

/**
 * log P(a|x,y) for the target attributes `target` (name → level), given the attribute model's
 * predictions `predicted` in the order of `names`.
 */
export function attributeLogProb(
  predicted: readonly number[],
  names: readonly string[],
  target: Readonly<Record<string, number>>,
  opts: AttributeLogProbOptions = {},
): number {
  const { levels } = checkOptions(opts);
  if (predicted.length !== names.length) {
    throw new ConfigError(`the attribute model gave ${predicted.length} predictions for ${names.length} attribute names (${names.join(', ')}): they must match one to one`);
  }
  const index = new Map<string, number>();
  names.forEach((n, i) => {
    if (index.has(n)) throw new ConfigError(`attribute name "${n}" appears twice in the attribute model's names (${names.join(', ')})`);
    index.set(n, i);
  });
  let total = 0;
  for (const [name, want] of Object.entries(target)) {
    const i = index.get(name);
    if (i === undefined) {
      throw new ConfigError(`target attribute "${name}" is not one the attribute model predicts (${names.join(', ')}); remove it from the target or rename it`);
    }
    if (!Number.isFinite(want)) throw new ConfigError(`target attribute "${name}" is ${want}; give a level 0-${levels}`);
    const mu = predicted[i];
    if (!Number.isFinite(mu)) throw new ConfigError(`the attribute model's prediction for "${name}" is ${mu}, not a finite number`);
    const level = Math.min(levels, Math.max(0, Math.round(want)));
    total += levelLogProbs(mu, opts)[level];
  }
  return total;
}

function checkOptions(opts: AttributeLogProbOptions): { levels: number; sigma: number } {
  const levels = opts.levels ?? 4;
  const sigma = opts.sigma ?? 1;
  if (!Number.isInteger(levels) || levels < 1) throw new ConfigError(`attribute levels must be a whole number ≥ 1 (levels are 0…levels), got ${levels}`);
  if (!Number.isFinite(sigma) || sigma <= 0) throw new ConfigError(`attribute sigma must be a positive number, got ${sigma}`);
  return { levels, sigma };
}
