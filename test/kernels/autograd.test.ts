/** Tape semantics: accumulation, ownership of leaf gradients, noGrad, detach, tidy and dispose. */
import { describe, expect, it } from 'vitest';
import { add, backward, currentBackend, mul, noGrad, sum, tensor, tidy, ShapeError } from '../../kernels/index.js';

const param = (values: number[], shape = [values.length]) => {
  const t = tensor(values, shape).keep();
  t.requiresGrad = true;
  return t;
};

describe('autograd', () => {
  it('d(x·x + x)/dx = 2x + 1, and a second backward accumulates', () => {
    const x = param([1, -2, 0.5]);
    tidy(() => sum(add(mul(x, x), x)).backward());
    expect([...x.grad!.toArraySync()]).toEqual([3, -3, 2]);
    tidy(() => sum(add(mul(x, x), x)).backward());
    expect([...x.grad!.toArraySync()]).toEqual([6, -6, 4]);
  });

  it('leaves reached through the same gradient get separate tensors', () => {
    const a = param([1, 2]), b = param([3, 4]);
    tidy(() => sum(add(a, b)).backward());
    expect(a.grad).not.toBe(b.grad);
    expect([...a.grad!.toArraySync()]).toEqual([1, 1]);
    expect([...b.grad!.toArraySync()]).toEqual([1, 1]);
  });

  it('noGrad records nothing and detach cuts the tape', () => {
    const x = param([2]);
    tidy(() => {
      expect(noGrad(() => mul(x, x)).requiresGrad).toBe(false);
      const y = mul(x.detach(), x); // only the second factor carries a gradient
      backward(sum(y));
    });
    expect([...x.grad!.toArraySync()]).toEqual([2]);
  });

  it('backward of a non-scalar needs an explicit gradient', () => {
    const x = param([1, 2]);
    tidy(() => {
      expect(() => mul(x, x).backward()).toThrow(new ShapeError('backward: a gradient is needed for non-scalar tensor [2]'));
      mul(x, x).backward(tensor([1, 10], [2]));
    });
    expect([...x.grad!.toArraySync()]).toEqual([2, 40]);
  });

  it('tidy frees everything it created except what it returns', () => {
    const backend = currentBackend();
    backend.synchronize();
    const before = backend.stats().liveBuffers;
    const kept = tidy(() => {
      const a = tensor([1, 2, 3], [3]);
      const b = mul(a, a);
      return { b, nested: [add(b, a)] };
    });
    backend.synchronize();
    expect(backend.stats().liveBuffers).toBe(before + 2);
    kept.b.dispose();
    kept.nested[0].dispose();
    backend.synchronize();
    expect(backend.stats().liveBuffers).toBe(before);
  });

  it('a reshape view keeps its storage alive after the original is disposed', () => {
    const a = tensor([1, 2, 3, 4], [2, 2]);
    const v = tidy(() => a.detach());
    a.dispose();
    expect([...v.toArraySync()]).toEqual([1, 2, 3, 4]);
    v.dispose();
  });
});
