/** Reward-model losses against hand-computed numbers, and their gradients by finite differences. */
import { describe, expect, it } from 'vitest';
import { numericGrad } from './numeric-grad.js';
import { ShapeError, referenceBackend, tensor, tidy } from '../../kernels/index.js';
import { BRADLEY_TERRY_KINDS, REGRESSION_MASK, bradleyTerryLoss, regressionLoss } from '../../algorithms/losses/reward.js';
import type { BradleyTerryKind } from '../../algorithms/losses/reward.js';

const F64 = { backend: referenceBackend, dtype: 'f64' as const };

// Two pairs: r_c = [1.5, 0], r_r = [0.5, 1] → d = [1, −1]; margins m = [2, 1].
// Let a = −log σ(1) = log(1 + e^−1) = 0.31326168751822286; then −log σ(−1) = log(1 + e) = 1 + a.
const CHOSEN = [1.5, 0], REJECTED = [0.5, 1], MARGIN = [2, 1];
const EXPECTED: Record<BradleyTerryKind, number> = {
  bt: 0.8132616875182228, // (a + (1 + a)) / 2 = a + 0.5
  // (−log σ(1 − 2) − log σ(−1 − 1)) / 2 = ((1 + a) + log(1 + e²)) / 2 = (1.3132616875182228 + 2.1269280110429727) / 2
  margin_bt: 1.7200948492805979,
  scaled_bt: 0.9698925312773342, // (2·a + 1·(1 + a)) / 2 = (0.6265233750364457 + 1.3132616875182228) / 2
};

function btAt(kind: BradleyTerryKind, chosen: number[], rejected: number[]): number {
  return tidy(() => bradleyTerryLoss(
    tensor(chosen, [chosen.length], F64), tensor(rejected, [rejected.length], F64), { kind, margin: MARGIN }, { chosen, rejected },
  ).loss.itemSync());
}

describe('Bradley-Terry reward losses', () => {
  it.each(BRADLEY_TERRY_KINDS)('%s matches the hand computation', (kind) => {
    expect(btAt(kind, CHOSEN, REJECTED)).toBeCloseTo(EXPECTED[kind], 10);
  });

  it('kind defaults to bt, which ignores the margins', () => {
    const loss = tidy(() => bradleyTerryLoss(tensor(CHOSEN, [2], F64), tensor(REJECTED, [2], F64), {}, { chosen: CHOSEN, rejected: REJECTED }).loss.itemSync());
    expect(loss).toBeCloseTo(EXPECTED.bt, 10);
  });

  it.each(BRADLEY_TERRY_KINDS)('%s: analytic gradient w.r.t. both rewards matches finite differences', (kind) => {
    const c = tensor(CHOSEN, [2], F64).keep(), r = tensor(REJECTED, [2], F64).keep();
    c.requiresGrad = r.requiresGrad = true;
    tidy(() => bradleyTerryLoss(c, r, { kind, margin: MARGIN }, { chosen: CHOSEN, rejected: REJECTED }).loss.backward());
    const dc = numericGrad((x) => btAt(kind, x, REJECTED), CHOSEN);
    const dr = numericGrad((x) => btAt(kind, CHOSEN, x), REJECTED);
    Array.from(c.grad!.toArraySync()).forEach((g, i) => expect(g).toBeCloseTo(dc[i], 6));
    Array.from(r.grad!.toArraySync()).forEach((g, i) => expect(g).toBeCloseTo(dr[i], 6));
  });

  it('metrics: accuracy, mean rewards, the std over all 2B rewards (n − 1, as torch.std) and the margin', () => {
    const { metrics } = tidy(() => bradleyTerryLoss(tensor(CHOSEN, [2]), tensor(REJECTED, [2]), { kind: 'bt' }, { chosen: CHOSEN, rejected: REJECTED }));
    // correct on pair 0 only; rewards [1.5, 0, 0.5, 1] have mean 0.75 and Σ(x − 0.75)² = 2·0.5625 + 2·0.0625 = 1.25
    expect(metrics.accuracy).toBe(0.5);
    expect(metrics.chosenReward).toBeCloseTo(0.75, 12);
    expect(metrics.rejectedReward).toBeCloseTo(0.75, 12);
    expect(metrics.rewardStd).toBeCloseTo(Math.sqrt(1.25 / 3), 12);
    expect(metrics.margin).toBeCloseTo(0, 12);
  });

  it.each(['margin_bt', 'scaled_bt'] as const)('%s names the missing or bad margin', (kind) => {
    const run = (margin: readonly number[] | null) => tidy(() => bradleyTerryLoss(
      tensor(CHOSEN, [2], F64), tensor(REJECTED, [2], F64), { kind, margin }, { chosen: CHOSEN, rejected: REJECTED },
    ));
    expect(() => run(null)).toThrow(/needs opts\.margin/);
    expect(() => run([1])).toThrow(ShapeError);
    expect(() => run([1, -2])).toThrow(/margin\[1\] = -2/);
  });
});

// pred [2, 3] = [[1, 2, 3], [0, 0.5, 4]], labels [[1.5, −, 2], [−, −, 1]] (− = −100):
// errors on the 3 unmasked entries: 1 − 1.5 = −0.5, 3 − 2 = 1, 4 − 1 = 3.
// MSE = (0.25 + 1 + 9) / 3 = 10.25 / 3 = 3.4166…; MAE = (0.5 + 1 + 3) / 3 = 1.5.
// ∂/∂ŷ = 2(ŷ − y)/3 where unmasked: [[−1/3, 0, 2/3], [0, 0, 2]].
const M = REGRESSION_MASK;
const PRED = [1, 2, 3, 0, 0.5, 4];
const LABELS = [[1.5, M, 2], [M, M, 1]];

function regressionAt(pred: number[], labels: number[][] = LABELS): number {
  return tidy(() => regressionLoss(tensor(pred, [2, 3], F64), labels, pred).loss.itemSync());
}

describe('regression reward loss', () => {
  it('masked MSE matches the hand computation, and the metrics agree', () => {
    const { loss, metrics } = tidy(() => {
      const out = regressionLoss(tensor(PRED, [2, 3], F64), LABELS, PRED);
      return { loss: out.loss.itemSync(), metrics: out.metrics };
    });
    expect(REGRESSION_MASK).toBe(-100);
    expect(loss).toBeCloseTo(10.25 / 3, 12);
    expect(metrics.mse).toBeCloseTo(10.25 / 3, 12);
    expect(metrics.mae).toBeCloseTo(1.5, 12);
  });

  it('masked entries contribute nothing, however far off the prediction', () => {
    const wild = [1, 1e6, 3, -1e6, 123, 4];
    expect(regressionAt(wild)).toBeCloseTo(10.25 / 3, 9);
  });

  it('analytic gradient matches the hand computation and finite differences; masked entries get exactly 0', () => {
    const p = tensor(PRED, [2, 3], F64).keep();
    p.requiresGrad = true;
    tidy(() => regressionLoss(p, LABELS, PRED).loss.backward());
    const g = Array.from(p.grad!.toArraySync());
    const fd = numericGrad((x) => regressionAt(x), PRED);
    [-1 / 3, 0, 2 / 3, 0, 0, 2].forEach((want, i) => expect(g[i]).toBeCloseTo(want, 12));
    g.forEach((gi, i) => expect(gi).toBeCloseTo(fd[i], 6));
    [1, 3, 4].forEach((i) => expect(g[i]).toBe(0));
  });

  it('all labels masked: loss 0 (not NaN), zero gradient, zero metrics', () => {
    const allMasked = [[M, M, M], [M, M, M]];
    const p = tensor(PRED, [2, 3], F64).keep();
    p.requiresGrad = true;
    const { loss, metrics } = tidy(() => {
      const out = regressionLoss(p, allMasked, PRED);
      out.loss.backward();
      return { loss: out.loss.itemSync(), metrics: out.metrics };
    });
    expect(loss).toBe(0);
    expect(Array.from(p.grad!.toArraySync())).toEqual([0, 0, 0, 0, 0, 0]);
    expect(metrics).toEqual({ mse: 0, mae: 0 });
  });

  it('labels that do not match pred [B, N] are a ShapeError', () => {
    expect(() => tidy(() => regressionLoss(tensor(PRED, [2, 3], F64), [[1, 2, 3]], PRED))).toThrow(ShapeError);
    expect(() => tidy(() => regressionLoss(tensor(PRED, [2, 3], F64), [[1, 2, 3], [1, 2]], PRED))).toThrow(/2 rows/);
  });
});
