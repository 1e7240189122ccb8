/** DPO-family losses against hand-computed numbers, and their gradients by finite differences. */
import { describe, expect, it } from 'vitest';
import { referenceBackend, tensor, tidy } from '../../kernels/index.js';
import { preferenceLoss } from '../../algorithms/losses/dpo.js';
import type { PreferenceLoss } from '../../algorithms/losses/dpo.js';
import { logSigmoid } from '../../algorithms/losses/log-sigmoid.js';

// One pair: policy log π(y_c) = −10, log π(y_r) = −12; reference −11 and −11.
// ρ_c = 1, ρ_r = −1, Δ = 2; β = 0.2 → βΔ = 0.4; ground-truth Δr = 1·(1 − 0) = 1.
const PAIR = { pc: [-10], pr: [-12], rc: [-11], rr: [-11], gc: [1], gr: [0] };
const EXPECTED: Record<PreferenceLoss, number> = {
  dpo: Math.log(1 + Math.exp(-0.4)), // −log σ(0.4) = 0.51301525…
  ipo: 0.25, // (2 − 1/(2·0.2))² = (2 − 2.5)²
  rpo_sq: 0.36, // (0.4 − 1)²
  // KL(Bern(a) ‖ Bern(b)), a = σ(1) = 0.7310586, b = σ(0.4) = 0.5986877
  rpo_bwd_kl: 0.7310585786300049 * Math.log(0.7310585786300049 / 0.598687660112452) + 0.2689414213699951 * Math.log(0.2689414213699951 / 0.401312339887548),
  rpo_fwd_kl: 0.598687660112452 * Math.log(0.598687660112452 / 0.7310585786300049) + 0.401312339887548 * Math.log(0.401312339887548 / 0.2689414213699951),
};

function lossAt(kind: PreferenceLoss, pc: number, pr: number, sftWeight = 0): number {
  return tidy(() => {
    const o = { backend: referenceBackend, dtype: 'f64' as const };
    return preferenceLoss(
      { policyChosen: tensor([pc], [1], o), policyRejected: tensor([pr], [1], o), refChosen: PAIR.rc, refRejected: PAIR.rr, chosenReward: PAIR.gc, rejectedReward: PAIR.gr },
      { beta: 0.2, loss: kind, sftWeight },
      { chosen: [pc], rejected: [pr] },
    ).loss.itemSync();
  });
}

describe('preference losses', () => {
  it.each(Object.keys(EXPECTED) as PreferenceLoss[])('%s matches the hand computation', (kind) => {
    expect(lossAt(kind, PAIR.pc[0], PAIR.pr[0])).toBeCloseTo(EXPECTED[kind], 10);
  });

  it.each(Object.keys(EXPECTED) as PreferenceLoss[])('%s: analytic gradient w.r.t. the policy log-probs matches finite differences', (kind) => {
    const o = { backend: referenceBackend, dtype: 'f64' as const };
    const pc = tensor([-10], [1], o).keep(), pr = tensor([-12], [1], o).keep();
    pc.requiresGrad = pr.requiresGrad = true;
    tidy(() => preferenceLoss(
      { policyChosen: pc, policyRejected: pr, refChosen: PAIR.rc, refRejected: PAIR.rr, chosenReward: PAIR.gc, rejectedReward: PAIR.gr },
      { beta: 0.2, loss: kind, sftWeight: 0.5 }, { chosen: [-10], rejected: [-12] },
    ).loss.backward());
    const h = 1e-6;
    const dc = (lossAt(kind, -10 + h, -12, 0.5) - lossAt(kind, -10 - h, -12, 0.5)) / (2 * h);
    const dr = (lossAt(kind, -10, -12 + h, 0.5) - lossAt(kind, -10, -12 - h, 0.5)) / (2 * h);
    expect(pc.grad!.itemSync()).toBeCloseTo(dc, 6);
    expect(pr.grad!.itemSync()).toBeCloseTo(dr, 6);
  });

  it('the SFT term adds −w·mean log π(y_c)', () => {
    expect(lossAt('dpo', -10, -12, 0.5)).toBeCloseTo(EXPECTED.dpo + 0.5 * 10, 10);
  });

  it('metrics: accuracy and implicit rewards β·ρ', () => {
    const { metrics } = tidy(() => preferenceLoss(
      {
        policyChosen: tensor([-10, -5], [2]), policyRejected: tensor([-12, -4], [2]),
        refChosen: [-11, -5], refRejected: [-11, -5], chosenReward: [1, 1], rejectedReward: [0, 0],
      },
      { beta: 0.2, loss: 'dpo' }, { chosen: [-10, -5], rejected: [-12, -4] },
    ));
    // ρ_c = [1, 0], ρ_r = [−1, 1] → correct on pair 0 only
    expect(metrics!.accuracy).toBe(0.5);
    expect(metrics!.chosenReward).toBeCloseTo(0.2 * 0.5, 12);
    expect(metrics!.rejectedReward).toBeCloseTo(0, 12);
  });

  it('log σ is stable at large |x|', () => {
    const v = tidy(() => Array.from(logSigmoid(tensor([-1000, -20, 0, 20, 1000], [5], { backend: referenceBackend, dtype: 'f64' })).toArraySync()));
    expect(v[0]).toBeCloseTo(-1000, 9);
    expect(v[2]).toBeCloseTo(Math.log(0.5), 12);
    expect(v[4]).toBe(0);
    expect(v.every(Number.isFinite)).toBe(true);
  });
});
