/** Top-K knowledge-distillation loss against hand-computed numbers, its gradients, and the teacher's top-K. */
import { describe, expect, it } from 'vitest';
import { numericGrad } from './numeric-grad.js';
import { ShapeError, referenceBackend, tensor, tidy } from '../../kernels/index.js';
import { DISTILLATION_KINDS, kdObjective, teacherTopK, topKDistillationLoss } from '../../algorithms/losses/kd.js';
import type { DistillationKind, DistillationOptions } from '../../algorithms/losses/kd.js';

const F64 = { backend: referenceBackend, dtype: 'f64' as const };

// Two tokens, V = 4, K = 2 (row-major ids and logits).
// Token 0: student [0, 1, 2, 3], teacher ids [3, 1] with logits [1, 0].
//   p = softmax([1, 0]) = [σ(1), σ(−1)] = [0.7310585786, 0.2689414214]
//   q = softmax(student[3], student[1]) = softmax([3, 1]) = [σ(2), σ(−2)] = [0.8807970780, 0.1192029220]
//   log(p/q) = [−0.1863336765, 0.8136663235]
//   fwd_kl = 0.7310585786·(−0.1863336765) + 0.2689414214·0.8136663235 = 0.0826077448947449
//   bwd_kl = 0.8807970780·0.1863336765 − 0.1192029220·0.8136663235 = 0.06713075445313263
// Token 1: student [5, 5, 5, 5], teacher ids [0, 2] with logits [0, 0]: p = q = [½, ½], KL = 0.
// The loss is the mean over the 2 tokens.
const STUDENT = [0, 1, 2, 3, 5, 5, 5, 5];
const IDS = [3, 1, 0, 2];
const TEACHER = [1, 0, 0, 0];
const TOKEN0: Record<DistillationKind, number> = { fwd_kl: 0.0826077448947449, bwd_kl: 0.06713075445313263 };

function kdAt(student: number[], opts: DistillationOptions, ids = IDS, teacher = TEACHER, N = 2, V = 4, K = 2): number {
  return tidy(() => topKDistillationLoss(tensor(student, [N, V], F64), ids, teacher, K, opts).loss.itemSync());
}

describe('top-K distillation loss', () => {
  it.each(DISTILLATION_KINDS)('%s matches the hand computation (mean over tokens)', (kind) => {
    expect(kdAt(STUDENT, { kind })).toBeCloseTo(TOKEN0[kind] / 2, 12);
    const perToken = tidy(() => Array.from(topKDistillationLoss(tensor(STUDENT, [2, 4], F64), IDS, TEACHER, 2, { kind }).perTokenKl.toArraySync()));
    expect(perToken[0]).toBeCloseTo(TOKEN0[kind], 12);
    expect(perToken[1]).toBeCloseTo(0, 12);
  });

  it('fwd and bwd KL differ on the same inputs', () => {
    expect(Math.abs(kdAt(STUDENT, { kind: 'fwd_kl' }) - kdAt(STUDENT, { kind: 'bwd_kl' }))).toBeGreaterThan(1e-3);
  });

  it('the scales apply before the softmax: teacher ×2, student ×½ turns fwd_kl into the unscaled bwd_kl', () => {
    // p = softmax(2·[1, 0]) = [σ(2), σ(−2)], q = softmax(½·[3, 1]) = [σ(1), σ(−1)]: KL(p ‖ q) is token 0's bwd_kl above.
    expect(kdAt(STUDENT, { kind: 'fwd_kl', teacherScale: 2, studentScale: 0.5 })).toBeCloseTo(TOKEN0.bwd_kl / 2, 12);
  });

  it.each(DISTILLATION_KINDS)('%s is 0 when the student equals the teacher up to a per-token shift on the K ids', (kind) => {
    // token 0: student at ids [3, 1] = [1 + 7, 0 + 7]; token 1: at ids [0, 2] = [2 − 3, −1 − 3]; the other ids are arbitrary
    const student = [9, 7, -4, 8, -1, 100, -4, -50];
    const teacher = [1, 0, 2, -1];
    expect(kdAt(student, { kind }, IDS, teacher)).toBeCloseTo(0, 12);
  });

  it.each([
    ['fwd_kl', 1, 1], ['bwd_kl', 1, 1], ['fwd_kl', 1.3, 0.7], ['bwd_kl', 0.8, 1.6],
  ] as const)('%s (teacher ×%s, student ×%s): analytic gradient w.r.t. every student logit matches finite differences', (kind, teacherScale, studentScale) => {
    const opts = { kind, teacherScale, studentScale };
    const student = [0.3, -1.2, 2.1, 0.4, 1.1, 0.2, -0.7, 0.9];
    const ids = [3, 1, 0, 2], teacher = [1.5, -0.5, 0.25, 0.75];
    const x = tensor(student, [2, 4], F64).keep();
    x.requiresGrad = true;
    tidy(() => topKDistillationLoss(x, ids, teacher, 2, opts).loss.backward());
    const g = Array.from(x.grad!.toArraySync());
    const fd = numericGrad((s) => kdAt(s, opts, ids, teacher), student);
    g.forEach((gi, i) => expect(gi).toBeCloseTo(fd[i], 6));
    // ids outside the teacher's top-K (token 0: 0, 2; token 1: 1, 3) get no gradient
    [0, 2, 5, 7].forEach((i) => expect(g[i]).toBe(0));
  });

  it('teacher ids that are out of range, duplicated, or of the wrong count are ShapeErrors', () => {
    expect(() => kdAt(STUDENT, { kind: 'fwd_kl' }, [3, 4, 0, 2])).toThrow(/outside \[0, V = 4\)/);
    expect(() => kdAt(STUDENT, { kind: 'fwd_kl' }, [3, 3, 0, 2])).toThrow(/appears twice/);
    expect(() => kdAt(STUDENT, { kind: 'fwd_kl' }, [3, 1, 0])).toThrow(ShapeError);
    expect(() => kdAt(STUDENT, { kind: 'fwd_kl' }, IDS, TEACHER, 2, 4, 5)).toThrow(/K = 5/);
  });

  it('the teacher\'s own top-K of a row gives KL 0 for a student with that row', () => {
    const row = [0.1, 2.5, -1, 3, 0.7];
    const { ids, logits } = teacherTopK(row, 5, 3);
    expect(kdAt(row, { kind: 'fwd_kl' }, ids, logits, 1, 5, 3)).toBeCloseTo(0, 12);
  });
});

describe('teacherTopK', () => {
  const ROW = [0.5, 2, -1, 2, 3, 0.5];

  it('returns ids by descending logit, ties broken by the lower id', () => {
    // 3 (id 4) > 2 (ids 1, 3) > 0.5 (ids 0, 5) > −1 (id 2)
    expect(teacherTopK(ROW, 6, 4)).toEqual({ ids: [4, 1, 3, 0], logits: [3, 2, 2, 0.5] });
    expect(teacherTopK(ROW, 6, 6).ids).toEqual([4, 1, 3, 0, 5, 2]);
    expect(teacherTopK(ROW, 6, 1)).toEqual({ ids: [4], logits: [3] });
    expect(teacherTopK(new Float32Array([1, 1, 1, 1]), 4, 3).ids).toEqual([0, 1, 2]);
  });

  it('rejects a K outside [1, V], a row of the wrong length, and NaN', () => {
    expect(() => teacherTopK(ROW, 6, 7)).toThrow(ShapeError);
    expect(() => teacherTopK(ROW, 6, 0)).toThrow(ShapeError);
    expect(() => teacherTopK(ROW, 5, 2)).toThrow(/V = 5/);
    expect(() => teacherTopK([1, NaN], 2, 1)).toThrow(/NaN/);
  });
});

describe('kdObjective', () => {
  it('weights the KD and CE terms (kd 0.5, ce 2 → 1·0.5 + 0.25·2 = 1)', () => {
    const v = tidy(() => kdObjective(tensor([0.5], [], F64), tensor([2], [], F64), { kdWeight: 1, sftWeight: 0.25 }).itemSync());
    expect(v).toBeCloseTo(1, 12);
    expect(tidy(() => kdObjective(tensor([0.5], [], F64), null).itemSync())).toBeCloseTo(0.5, 12);
    expect(() => tidy(() => kdObjective(tensor([0.5], [], F64), null, { sftWeight: 1 }))).toThrow(/no cross-entropy/);
  });
});
