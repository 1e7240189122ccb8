/** KTO loss against hand-computed numbers, and its gradient by finite differences. */
import { describe, expect, it } from 'vitest';
import { ShapeError, referenceBackend, tensor, tidy } from '../../kernels/index.js';
import { ktoLoss } from '../../algorithms/losses/kto.js';
import type { KtoBatch, KtoOptions } from '../../algorithms/losses/kto.js';

const F64 = { backend: referenceBackend, dtype: 'f64' as const };
const H = 1e-6;
const sig = (x: number) => 1 / (1 + Math.exp(-x));

// Three completions, β = 0.5: policy [−4, −6, −5], reference [−5, −5, −5] → r = [1, −1, 0];
// labels [desirable, undesirable, desirable].
// KL pairs: policy [−7, −8], reference [−7.5, −8.1] → differences [0.5, 0.1], mean 0.3 = z₀.
//   0 (desirable):   1 − σ(0.5·(1 − 0.3))    = σ(−0.35) = 0.41338242108267
//   1 (undesirable): 1 − σ(0.5·(0.3 − (−1))) = σ(−0.65) = 0.34298953732650117
//   2 (desirable):   1 − σ(0.5·(0 − 0.3))    = σ(0.15)  = 0.5374298453437496
const POLICY = [-4, -6, -5];
const BASE: Omit<KtoBatch, 'policy'> = {
  ref: [-5, -5, -5], labels: [true, false, true], policyKl: [-7, -8], refKl: [-7.5, -8.1],
};

const CASES = {
  // (0.41338242108267 + 0.34298953732650117 + 0.5374298453437496) / 3
  unweighted: { batch: BASE, opts: { beta: 0.5 }, want: 0.4312672679176403 },
  // (2·0.41338242108267 + 0.5·0.34298953732650117 + 2·0.5374298453437496) / 3
  weighted: { batch: BASE, opts: { beta: 0.5, desirableWeight: 2, undesirableWeight: 0.5 }, want: 0.6910397671720299 },
  // KL differences [−0.5, 0.1] have mean −0.2 → z₀ = max(0, −0.2) = 0:
  // (1 − σ(0.5·1) + 1 − σ(0.5·1) + 1 − σ(0)) / 3 = (2σ(−0.5) + 0.5) / 3 = (2·0.3775406687981454 + 0.5) / 3
  clampedKl: { batch: { ...BASE, refKl: [-6.5, -8.1] }, opts: { beta: 0.5 }, want: 0.41836044586543025 },
} satisfies Record<string, { batch: Omit<KtoBatch, 'policy'>; opts: KtoOptions; want: number }>;
type CaseName = keyof typeof CASES;

function ktoAt(name: CaseName, policy: number[]): number {
  const { batch, opts } = CASES[name];
  return tidy(() => ktoLoss({ ...batch, policy: tensor(policy, [policy.length], F64) }, opts, policy).loss.itemSync());
}

describe('KTO loss', () => {
  it.each(Object.keys(CASES) as CaseName[])('%s matches the hand computation', (name) => {
    expect(ktoAt(name, POLICY)).toBeCloseTo(CASES[name].want, 10);
  });

  it.each(Object.keys(CASES) as CaseName[])('%s: analytic gradient w.r.t. the policy log-probs matches finite differences', (name) => {
    const { batch, opts } = CASES[name];
    const p = tensor(POLICY, [3], F64).keep();
    p.requiresGrad = true;
    tidy(() => ktoLoss({ ...batch, policy: p }, opts, POLICY).loss.backward());
    const g = Array.from(p.grad!.toArraySync());
    POLICY.forEach((_, i) => {
      const plus = [...POLICY], minus = [...POLICY];
      plus[i] += H;
      minus[i] -= H;
      expect(g[i]).toBeCloseTo((ktoAt(name, plus) - ktoAt(name, minus)) / (2 * H), 6);
    });
  });

  it('the gradient pushes desirable log-probs up and undesirable ones down, by λ·β·σ(u)(1 − σ(u))/B', () => {
    const p = tensor(POLICY, [3], F64).keep();
    p.requiresGrad = true;
    tidy(() => ktoLoss({ ...BASE, policy: p }, { beta: 0.5 }, POLICY).loss.backward());
    const g = Array.from(p.grad!.toArraySync());
    // d/dr σ(−β(r − z₀)) = −β·σ(u)(1 − σ(u)) with u = β(r − z₀); for undesirable the sign flips
    const slope = (u: number) => 0.5 * sig(u) * (1 - sig(u)) / 3;
    expect(g[0]).toBeCloseTo(-slope(0.35), 12);
    expect(g[1]).toBeCloseTo(slope(0.65), 12);
    expect(g[2]).toBeCloseTo(-slope(-0.15), 12);
  });

  it('metrics: z₀ and the mean implicit rewards β·r per class', () => {
    const { metrics } = tidy(() => ktoLoss({ ...BASE, policy: tensor(POLICY, [3]) }, { beta: 0.5 }, POLICY));
    // desirable β·r = 0.5·[1, 0] → 0.25; undesirable 0.5·(−1) = −0.5
    expect(metrics.kl).toBeCloseTo(0.3, 12);
    expect(metrics.desirableReward).toBeCloseTo(0.25, 12);
    expect(metrics.undesirableReward).toBeCloseTo(-0.5, 12);
    expect(metrics.margin).toBeCloseTo(0.75, 12);
  });

  it('a batch with one class only: the other class reward is 0, and no KL pairs means z₀ = 0', () => {
    const batch = { ref: [-5, -5], labels: [true, true], policyKl: [], refKl: [] };
    const { loss, metrics } = tidy(() => {
      const out = ktoLoss({ ...batch, policy: tensor([-4, -5], [2], F64) }, { beta: 0.5 }, [-4, -5]);
      return { loss: out.loss.itemSync(), metrics: out.metrics };
    });
    // r = [1, 0], z₀ = 0: (σ(−0.5) + σ(0)) / 2
    expect(loss).toBeCloseTo((sig(-0.5) + 0.5) / 2, 12);
    expect(metrics.kl).toBe(0);
    expect(metrics.undesirableReward).toBe(0);
    expect(metrics.desirableReward).toBeCloseTo(0.25, 12);
  });

  it('mismatched lengths are ShapeErrors', () => {
    expect(() => tidy(() => ktoLoss({ ...BASE, labels: [true], policy: tensor(POLICY, [3], F64) }, { beta: 0.5 }, POLICY))).toThrow(ShapeError);
    expect(() => tidy(() => ktoLoss({ ...BASE, refKl: [0], policy: tensor(POLICY, [3], F64) }, { beta: 0.5 }, POLICY))).toThrow(/refKl/);
  });
});
