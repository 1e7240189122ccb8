/** PPO, critic, REINFORCE, GRPO and NLL losses on token grids: hand-computed values and f64 gradient checks. */
import { describe, expect, it } from 'vitest';
import { referenceBackend, tensor, tidy } from '../../kernels/index.js';
import type { Tensor } from '../../kernels/index.js';
import { clippedPolicyLoss, clippedValueLoss, grpoLoss, k3Kl, nllLoss, reinforceLoss } from '../../algorithms/losses/policy-gradient.js';
import { numericGrad } from './numeric-grad.js';

const F64 = { backend: referenceBackend, dtype: 'f64' as const };

/** The loss at x (as [1, n]) and its analytic gradient. */
function lossAndGrad(f: (x: Tensor) => Tensor, x: readonly number[]): { value: number; grad: number[] } {
  const t = tensor(x, [1, x.length], F64).keep();
  t.requiresGrad = true;
  const value = tidy(() => {
    const l = f(t);
    l.backward();
    return l.itemSync();
  });
  const grad = Array.from(t.grad!.toArraySync());
  t.dispose();
  return { value, grad };
}

const valueAt = (f: (x: Tensor) => Tensor) => (x: number[]) => tidy(() => f(tensor(x, [1, x.length], F64)).itemSync());

function expectGradMatches(f: (x: Tensor) => Tensor, x: number[]) {
  const { grad } = lossAndGrad(f, x);
  const num = numericGrad(valueAt(f), x);
  grad.forEach((g, i) => expect(g).toBeCloseTo(num[i], 6));
}

describe('PPO clipped policy loss', () => {
  // ℓ = [−1, −0.5, −2], ℓ_old = [−1.2, −0.6, −1], A = [1, −1, 2], mask [1, 1, 0], ε = 0.2, denominator 2.
  //   token 0: ρ = e^0.2 = 1.2214 > 1.2, A > 0 → max(−1.2214, −1.2) = −1.2 (clipped: no gradient)
  //   token 1: ρ = e^0.1 = 1.10517 inside the clip → −A·ρ = 1.10517 (gradient −A·ρ = 1.10517)
  //   token 2: masked
  //   loss = (−1.2 + 1.1051709180756477)/2
  const old = [-1.2, -0.6, -1], adv = [1, -1, 2], mask = [1, 1, 0];
  const f = (x: Tensor) => clippedPolicyLoss(x, old, adv, mask, 0.2, 2);
  it('matches the hand computation at ratios inside and outside the clip', () => {
    const { value, grad } = lossAndGrad(f, [-1, -0.5, -2]);
    expect(value).toBeCloseTo((-1.2 + Math.exp(0.1)) / 2, 12);
    expect(grad[0]).toBeCloseTo(0, 12);
    expect(grad[1]).toBeCloseTo(Math.exp(0.1) / 2, 12);
    expect(grad[2]).toBeCloseTo(0, 12);
  });
  it('a negative advantage is clipped below 1 − ε', () => {
    // ρ = e^−0.5 = 0.6065 < 0.8 with A = −1: max(0.6065, 0.8) = 0.8
    const { value, grad } = lossAndGrad((x) => clippedPolicyLoss(x, [0], [-1], [1], 0.2, 1), [-0.5]);
    expect(value).toBeCloseTo(0.8, 12);
    expect(grad[0]).toBeCloseTo(0, 12);
  });
  it('its gradient matches finite differences away from the clip boundaries', () => {
    expectGradMatches(f, [-1.05, -0.5, -2]);
  });
});

describe('clipped value loss', () => {
  // V = [0.5, 1.0], V_old = [0.4, 0.2], Ret = [1, 0], clip 0.2, denominator 2.
  //   t0: V − V_old = 0.1 inside → both (0.5 − 1)² = 0.25
  //   t1: V_clip = 0.4: (0.4 − 0)² = 0.16 vs (1 − 0)² = 1 → 1
  //   loss = 0.5·(0.25 + 1)/2 = 0.3125
  const f = (x: Tensor) => clippedValueLoss(x, [0.4, 0.2], [1, 0], [1, 1], 0.2, 2);
  it('matches the hand computation', () => {
    const { value, grad } = lossAndGrad(f, [0.5, 1.0]);
    expect(value).toBeCloseTo(0.3125, 12);
    // t0: both branches equal; d/dV 0.5·(V − Ret)²/2 = (0.5 − 1)/2 = −0.25 · … each branch −0.25
    expect(grad[0]).toBeCloseTo(-0.25, 12);
    // t1: unclipped branch: (V − Ret)/2 = 0.5
    expect(grad[1]).toBeCloseTo(0.5, 12);
  });
  it('its gradient matches finite differences', () => {
    expectGradMatches(f, [0.3, 1.0]);
  });
});

describe('REINFORCE, k3 KL, GRPO and NLL', () => {
  it('REINFORCE is −Σ ℓ·A·mask / denominator', () => {
    // ℓ = [−1, −2, −3], A = 0.5 on every token, mask [1, 1, 0]: (0.5 + 1)/2
    const f = (x: Tensor) => reinforceLoss(x, [0.5, 0.5, 0.5], [1, 1, 0], 2);
    expect(lossAndGrad(f, [-1, -2, -3]).value).toBeCloseTo(0.75, 12);
    expectGradMatches(f, [-1, -2, -3]);
  });
  it('k3 is exp(ℓ_ref − ℓ) − (ℓ_ref − ℓ) − 1', () => {
    const v = tidy(() => Array.from(k3Kl(tensor([-1, -2], [1, 2], F64), [-1.5, -2]).toArraySync()));
    expect(v[0]).toBeCloseTo(Math.exp(-0.5) + 0.5 - 1, 12);
    expect(v[1]).toBeCloseTo(0, 12);
  });
  it('GRPO adds β·k3 to the clipped surrogate', () => {
    // ρ = 1 (ℓ = ℓ_old): surrogate = −Σ A·mask / 2 = −(1 − 1)/2 = 0 … with A = [1, 2]: −3/2
    // k3 at ℓ = [−1, −2], ℓ_ref = [−1.5, −2]: [0.10653065971263342, 0]; β = 0.1 → +0.1·0.1065/2
    const f = (x: Tensor) => grpoLoss(x, [-1, -2], [-1.5, -2], [1, 2], [1, 1], 0.2, 0.1, 2);
    expect(lossAndGrad(f, [-1, -2]).value).toBeCloseTo(-1.5 + (0.1 * (Math.exp(-0.5) - 0.5)) / 2, 12);
    expectGradMatches(f, [-0.95, -2.1]);
  });
  it('NLL is −Σ ℓ·mask / denominator', () => {
    const f = (x: Tensor) => nllLoss(x, [1, 0, 1], 2);
    expect(lossAndGrad(f, [-1, -5, -3]).value).toBeCloseTo(2, 12);
    expectGradMatches(f, [-1, -5, -3]);
  });
});
