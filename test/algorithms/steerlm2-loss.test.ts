/** SteerLM 2.0 loss, weights and metrics against hand-computed numbers; its gradient against eq. 12's distance by finite differences. */
import { describe, expect, it } from 'vitest';
import { referenceBackend, ShapeError, tensor, tidy } from '../../kernels/index.js';
import { groupStats, importanceWeights, meanStats, steerlm2Loss } from '../../algorithms/losses/steerlm2.js';
import type { SteerLM2Group } from '../../algorithms/losses/steerlm2.js';
import { numericGrad } from './numeric-grad.js';

const F64 = { backend: referenceBackend, dtype: 'f64' as const };
const sig = (x: number) => 1 / (1 + Math.exp(-x));

// One group, n = 2. Record: log P(a|x,y) = [−1, −2], log P(y|x) = [−3, −3], log Q′ = [−4, −4]
//   logits −1 − 3 + 4 = 0 and −2 − 3 + 4 = −1 → w′ = [σ(1), σ(−1)] = [0.7310585786300049, 0.2689414213699951]
// Policy log Q_θ = [−4.5, −3.5] → log Q_θ − log Q′ = [−0.5, 0.5] → b′ = [σ(−1), σ(1)]
//   w′ − b′ = ±(σ(1) − σ(−1)) = ±0.4621171572600098; NLL = [4.5, 3.5]; lengths [3, 5], mean 4
//   loss = 0.4621171572600098·(4.5 − 3.5) / 4 = 0.11552928931500245
//   distance = σ(1)·log(σ(1)/σ(−1)) + σ(−1)·log(σ(−1)/σ(1)) = σ(1) − σ(−1) = 0.4621171572600098
const W_A = [sig(1), sig(-1)];
const A: SteerLM2Group = { weights: W_A, logQPrime: [-4, -4], lengths: [3, 5] };
const Q_A = [-4.5, -3.5];

// Two groups, n = 3.
// Group 1: w′ = [0.5, 0.3, 0.2], log Q′ = [−2, −2, −2], log Q_θ = [−1, −2, −3], lengths [1, 2, 3] (mean 2)
//   b′ = softmax([1, 0, −1]) = [0.6652409557748219, 0.24472847105479767, 0.09003057317038046]
//   w′ − b′ = [−0.1652409557748219, 0.05527152894520232, 0.10996942682961955]
//   Σ (w′ − b′)·NLL = −0.16524…·1 + 0.05527…·2 + 0.10997…·3 = 0.2752103826044414, / 2 = 0.1376051913022207
//   distance = Σ w′ log(w′/b′) = 0.07795295037980672; entropy 1.0296530140645737
// Group 2: w′ = 1/3 each, log Q′ = [−5, −6, −7], log Q_θ = [−4, −5, −6], lengths [4, 4, 4]
//   log Q_θ − log Q′ = [1, 1, 1] → b′ uniform (a shift of every log-prob moves nothing) → w′ − b′ = 0
// loss = (0.1376051913022207 + 0) / 2 = 0.06880259565111035
const B: SteerLM2Group[] = [
  { weights: [0.5, 0.3, 0.2], logQPrime: [-2, -2, -2], lengths: [1, 2, 3] },
  { weights: [1 / 3, 1 / 3, 1 / 3], logQPrime: [-5, -6, -7], lengths: [4, 4, 4] },
];
const Q_B = [-1, -2, -3, -4, -5, -6];

const lossAt = (q: number[], groups: SteerLM2Group[]) =>
  tidy(() => steerlm2Loss(tensor(q, [groups.length, groups[0].weights.length], F64), groups).loss.itemSync());

describe('SteerLM 2.0 weights', () => {
  it('w′ = softmax(log P(a|x,y) + log P(y|x) − log Q′) (eqs. 6–7)', () => {
    const w = importanceWeights([-1, -2], [-3, -3], [-4, -4]);
    expect(w[0]).toBeCloseTo(0.7310585786300049, 14);
    expect(w[1]).toBeCloseTo(0.2689414213699951, 14);
  });

  it('is stable for sequence log-probs in the thousands', () => {
    // logits −1500 + 1000 = −500 and −1502 + 1000 = −502: w′ = [σ(2), σ(−2)]
    const w = importanceWeights([0, 0], [-1500, -1502], [-1000, -1000]);
    expect(w[0]).toBeCloseTo(sig(2), 12); // log-probs near 1500 keep ~13 significant digits of their differences
    expect(w[1]).toBeCloseTo(sig(-2), 12);
  });
});

describe('SteerLM 2.0 loss', () => {
  it('one group of two matches the hand computation, and returns b′', () => {
    const { loss, baseline } = tidy(() => {
      const out = steerlm2Loss(tensor(Q_A, [1, 2], F64), [A]);
      return { loss: out.loss.itemSync(), baseline: Array.from(out.baseline.toArraySync()) };
    });
    expect(loss).toBeCloseTo(0.11552928931500245, 14);
    expect(baseline[0]).toBeCloseTo(sig(-1), 14);
    expect(baseline[1]).toBeCloseTo(sig(1), 14);
  });

  it('two groups of three: each normalised by its own mean length, averaged over the groups', () => {
    expect(lossAt(Q_B, B)).toBeCloseTo(0.06880259565111035, 14);
  });

  it('the gradient w.r.t. log Q_θ is (b′ − w′)/(G·mean length): the gradient of the distance of eq. 12', () => {
    const cases: [number[], SteerLM2Group[]][] = [[Q_A, [A]], [Q_B, B]];
    for (const [q, groups] of cases) {
      const G = groups.length, n = groups[0].weights.length;
      const x = tensor(q, [G, n], F64).keep();
      x.requiresGrad = true;
      tidy(() => steerlm2Loss(x, groups).loss.backward());
      const g = Array.from(x.grad!.toArraySync());
      // D_g depends on log Q_θ through b′ only; the loss holds b′ fixed, so their gradients meet.
      const distance = (v: number[]) => groups.reduce((s, grp, k) => {
        const mean = grp.lengths.reduce((a, b) => a + b, 0) / n;
        return s + groupStats(v.slice(k * n, (k + 1) * n), grp).distance / (G * mean);
      }, 0);
      numericGrad(distance, q).forEach((d, i) => expect(g[i]).toBeCloseTo(d, 7));
      x.dispose();
    }
  });

  it('group 1 of the two-group case: the gradient by hand', () => {
    const x = tensor(Q_B, [2, 3], F64).keep();
    x.requiresGrad = true;
    tidy(() => steerlm2Loss(x, B).loss.backward());
    const g = Array.from(x.grad!.toArraySync());
    // (b′ − w′) / (2 groups · mean length 2) = [0.16524…, −0.05527…, −0.10997…] / 4; group 2 gets 0
    [0.1652409557748219, -0.05527152894520232, -0.10996942682961955].forEach((d, i) => expect(g[i]).toBeCloseTo(d / 4, 14));
    g.slice(3).forEach((d) => expect(d).toBeCloseTo(0, 14));
    x.dispose();
  });

  it('a group count or size that does not match logQ is a ShapeError', () => {
    expect(() => tidy(() => steerlm2Loss(tensor(Q_B, [2, 3], F64), [B[0]]))).toThrow(ShapeError);
    expect(() => tidy(() => steerlm2Loss(tensor(Q_A, [2, 1], F64), [A, A]))).toThrow(/needs one group of 1 weights/);
  });
});

describe('SteerLM 2.0 metrics', () => {
  it('distance, weight entropy, log Q per token and the log ratio of one group', () => {
    const s = groupStats(Q_A, A);
    expect(s.distance).toBeCloseTo(0.4621171572600098, 14);
    // −σ(1)·log σ(1) − σ(−1)·log σ(−1)
    expect(s.weightEntropy).toBeCloseTo(0.5822031088882179, 14);
    expect(s.meanLogQ).toBeCloseTo(-1, 14); // (−4.5 − 3.5) / (3 + 5)
    expect(s.logRatio).toBeCloseTo(0, 14); // mean(−0.5, 0.5)
  });

  it('means over groups; the distance is 0 where b′ = w′', () => {
    const s = meanStats([groupStats(Q_B.slice(0, 3), B[0]), groupStats(Q_B.slice(3), B[1])]);
    expect(s.distance).toBeCloseTo(0.07795295037980672 / 2, 14);
    expect(s.weightEntropy).toBeCloseTo((1.0296530140645737 + Math.log(3)) / 2, 14);
    expect(s.meanLogQ).toBeCloseTo((-6 / 6 + -15 / 12) / 2, 14);
    expect(s.logRatio).toBeCloseTo((0 + 1) / 2, 14);
  });

  it('a zero weight contributes nothing (0·log 0 = 0)', () => {
    const s = groupStats([-1, -1], { weights: [1, 0], logQPrime: [-1, -1], lengths: [1, 1] });
    expect(s.distance).toBeCloseTo(Math.log(2), 14); // 1·log(1 / 0.5)
    expect(s.weightEntropy).toBe(0);
  });
});
