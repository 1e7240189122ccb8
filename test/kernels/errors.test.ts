/** Bad input gets a typed error whose message names the op and the shapes: messages are tested exactly. */
import { describe, expect, it } from 'vitest';
import type { Backend } from '../../kernels/index.js';
import {
  DTypeError, DeviceMismatchError, DisposedError, IndexError, ShapeError, UnsupportedBackendError,
  add, attention, embedding, exp, matmul, reshape, tensor, tidy, tokenLogprobs, zeros, referenceBackend,
} from '../../kernels/index.js';
import { backendsUnderTest, onBackend } from './harness.js';

describe.each(backendsUnderTest())('errors on $name', (b) => {
  const { backend } = b;
  onBackend(b);
  const f = (values: number[], shape: number[]) => tensor(values, shape, { backend });

  it('shape mismatch in broadcasting', () => {
    tidy(() => {
      expect(() => add(zeros([2, 3], { backend }), zeros([4], { backend }))).toThrow(
        new ShapeError('add: shapes [2,3] and [4] cannot be broadcast together'),
      );
    });
  });

  it('shape mismatch in matmul names both shapes and the transposes', () => {
    tidy(() => {
      expect(() => matmul(zeros([2, 3], { backend }), zeros([4, 5], { backend }))).toThrow(new ShapeError('matmul: cannot multiply [2,3] by [4,5]'));
      expect(() => matmul(zeros([2, 3], { backend }), zeros([4, 5], { backend }), { transB: true })).toThrow(
        new ShapeError('matmul: cannot multiply [2,3] by [4,5]ᵀ'),
      );
    });
  });

  it('bad reshape', () => {
    tidy(() => {
      expect(() => reshape(zeros([2, 3], { backend }), [4, -1])).toThrow(new ShapeError('reshape: cannot view [2,3] (6 elements) as [4,-1]'));
    });
  });

  it('dtype mismatch', () => {
    tidy(() => {
      const ids = tensor([1, 2], [2], { backend, dtype: 'i32' });
      expect(() => embedding(zeros([3, 2], { backend }), f([1, 2], [2]))).toThrow(new DTypeError('embedding: ids must be i32, got f32 [2]'));
      expect(() => exp(ids)).toThrow(
        new DTypeError('exp: float inputs must share one compute dtype (f32, or f64 on the reference backend); got [2] i32'),
      );
    });
  });

  it('use after dispose names the tensor and its shape', () => {
    const t = f([1, 2, 3, 4], [2, 2]);
    t.dispose();
    expect(() => exp(t)).toThrow(new DisposedError(`exp: tensor #${t.id} of shape [2,2] was used after dispose()`));
    expect(() => t.toArraySync()).toThrow(DisposedError);
  });

  it('an out-of-range token id is an IndexError with its position', () => {
    tidy(() => {
      const ids = tensor([1, 7, 0], [3], { backend, dtype: 'i32' });
      const run = () => embedding(zeros([5, 2], { backend }), ids).toArraySync();
      expect(run).toThrow(IndexError);
      expect(run).toThrow('id 7 out of range [0, 5) at position 1');
    });
  });

  it('an out-of-range target is an IndexError with its row', () => {
    tidy(() => {
      const targets = tensor([0, 9], [2], { backend, dtype: 'i32' });
      const run = () => tokenLogprobs(zeros([2, 4], { backend }), targets).toArraySync();
      expect(run).toThrow(IndexError);
      expect(run).toThrow('target 9 out of range [0, 4) at row 1');
    });
  });

  it('attention shapes', () => {
    tidy(() => {
      const q = zeros([1, 3, 2, 4], { backend }), k = zeros([1, 2, 2, 4], { backend });
      expect(() => attention(q, k, k)).toThrow(
        new ShapeError('attention: expected q [B, Hq, T, D], k and v [B, Hkv, S, D] with Hq divisible by Hkv, mask [B, S]; got q [1,3,2,4], k [1,2,2,4], v [1,2,2,4]'),
      );
    });
  });

  it('attention window must be a non-negative integer', () => {
    tidy(() => {
      const q = zeros([1, 2, 3, 4], { backend });
      expect(() => attention(q, q, q, { window: -1 })).toThrow(new ShapeError('attention: window must be a non-negative integer (0 = no window), got -1'));
      expect(() => attention(q, q, q, { window: 2.5 })).toThrow(new ShapeError('attention: window must be a non-negative integer (0 = no window), got 2.5'));
    });
  });
});

describe('backend errors', () => {
  it('a dtype mismatch between float inputs', () => {
    tidy(() => {
      const a = tensor([1, 2], [2], { backend: referenceBackend, dtype: 'f32' });
      const b = tensor([1, 2], [2], { backend: referenceBackend, dtype: 'f64' });
      expect(() => add(a, b)).toThrow(
        new DTypeError('add: float inputs must share one compute dtype (f32, or f64 on the reference backend); got [2] f32, [2] f64'),
      );
    });
  });

  it('an op on a backend that lacks its kernel names the op, the kernel, the backend and the reason', () => {
    const partial: Backend = { ...referenceBackend, name: 'cuda', device: 'cuda:0', kernels: { ...referenceBackend.kernels, attention: undefined }, unsupported: { attention: 'flash kernel not compiled for sm_70' } };
    tidy(() => {
      const q = tensor(new Array(8).fill(0), [1, 1, 2, 4], { backend: partial });
      expect(() => attention(q, q, q)).toThrow(
        new UnsupportedBackendError('attention: kernel attention is not available on backend cuda (flash kernel not compiled for sm_70)'),
      );
    });
  });

  it('inputs on different backends', () => {
    const other: Backend = { ...referenceBackend, name: 'native' };
    tidy(() => {
      const a = tensor([1], [1], { backend: referenceBackend });
      const b = tensor([1], [1], { backend: other });
      expect(() => add(a, b)).toThrow(new DeviceMismatchError('add: inputs are on different backends (reference:cpu, native:cpu)'));
    });
  });
});
