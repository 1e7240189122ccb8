/** Matrix multiply, batched, with transposes, and the linear layer built on it. */
import { ShapeError, fmtShape } from '../errors.js';
import { alloc, apply, kernel } from '../op.js';
import type { OpSpec } from '../op.js';
import type { Tensor } from '../tensor.js';
import { add, sumTo } from './elementwise.js';
import { reshape } from './reduce-and-reshape.js';
import { sameShape } from './shape.js';

export interface MatmulOptions { transA?: boolean; transB?: boolean }
interface MatmulAttrs { transA: boolean; transB: boolean }

interface Plan { batchShape: readonly number[]; batch: number; M: number; N: number; K: number; strideA: number; strideB: number }

function plan(a: Tensor, b: Tensor, { transA, transB }: MatmulAttrs): Plan {
  const fail = (): never => {
    throw new ShapeError(
      `matmul: cannot multiply ${fmtShape(a.shape)}${transA ? 'ᵀ' : ''} by ${fmtShape(b.shape)}${transB ? 'ᵀ' : ''}`,
    );
  };
  if (a.rank < 2 || b.rank < 2) fail();
  const [ar, ac] = a.shape.slice(-2), [br, bc] = b.shape.slice(-2);
  const [M, K] = transA ? [ac, ar] : [ar, ac];
  const [K2, N] = transB ? [bc, br] : [br, bc];
  if (K !== K2) fail();
  const aBatch = a.shape.slice(0, -2), bBatch = b.shape.slice(0, -2);
  // Batch dims must match, or one side has none (it is shared by every batch entry: stride 0).
  if (aBatch.length > 0 && bBatch.length > 0 && !sameShape(aBatch, bBatch)) fail();
  const batchShape = aBatch.length > 0 ? aBatch : bBatch;
  const batch = batchShape.reduce((p, d) => p * d, 1);
  return { batchShape, batch, M, N, K, strideA: aBatch.length > 0 ? M * K : 0, strideB: bBatch.length > 0 ? K * N : 0 };
}

export const MATMUL: OpSpec<MatmulAttrs> = {
  arity: 2,
  kernels: ['matmul'],
  gradKernels: [],
  dtypes: 'float',
  forward({ backend, inputs: [a, b], attrs }) {
    const p = plan(a, b, attrs);
    const out = alloc(backend, [...p.batchShape, p.M, p.N], a.dtype); // [...batch, M, N]
    kernel(backend, 'matmul', 'matmul')(
      a.storageFor('matmul'), b.storageFor('matmul'), out.storageFor('matmul'),
      p.batch, p.M, p.N, p.K, attrs.transA, attrs.transB, p.strideA, p.strideB,
    );
    return out;
  },
  backward(g, { inputs: [a, b], attrs: { transA, transB } }, needs) {
    // With op(X) = X or Xᵀ: d op(A) = g·op(B)ᵀ and d op(B) = op(A)ᵀ·g, transposed back when stored transposed.
    const ga = !needs[0] ? null : transA ? matmul(b, g, { transA: transB, transB: true }) : matmul(g, b, { transB: !transB });
    const gb = !needs[1] ? null : transB ? matmul(g, a, { transA: true, transB: transA }) : matmul(a, g, { transA: !transA });
    // An operand without batch dims was shared across the batch: its gradient sums over it.
    return [ga && sumTo(ga, a.shape), gb && sumTo(gb, b.shape)];
  },
};

/**
 * a [..., M, K] · b [..., K, N] → [..., M, N] (with transA/transB reading the last two axes swapped).
 * A 2-D b with a batched a is folded into one large GEMM, as a linear layer wants.
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const attrs = { transA: opts.transA ?? false, transB: opts.transB ?? false };
  if (b.rank === 2 && a.rank > 2 && !attrs.transA) {
    const lead = a.shape.slice(0, -1);
    const out2d = apply('matmul', MATMUL, [reshape(a, [-1, a.shape[a.rank - 1]]), b], attrs); // [∏lead, N]
    return reshape(out2d, [...lead, out2d.shape[1]]);
  }
  return apply('matmul', MATMUL, [a, b], attrs);
}

/** x [..., in] · weightᵀ + bias, with weight [out, in] in the Hugging Face layout. */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  if (weight.rank !== 2 || x.shape[x.rank - 1] !== weight.shape[1]) {
    throw new ShapeError(`linear: input ${fmtShape(x.shape)} does not match weight ${fmtShape(weight.shape)} ([out, in])`);
  }
  const y = matmul(x, weight, { transB: true }); // [..., out]
  return bias ? add(y, bias) : y;
}

