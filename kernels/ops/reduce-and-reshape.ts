/** Reductions over one axis (sum, mean, max) and reshape, the zero-copy view they rely on. */
import { ShapeError, fmtShape } from '../errors.js';
import type { Shape } from '../errors.js';
import { alloc, apply, kernel } from '../op.js';
import type { OpSpec } from '../op.js';
import { Tensor, numelOf } from '../tensor.js';
import { mulScalar } from './elementwise.js';
import { broadcastStrides, normAxis, splitAt } from './shape.js';

interface ReshapeAttrs { shape: number[] }

export const RESHAPE: OpSpec<ReshapeAttrs> = {
  arity: 1,
  kernels: [],
  gradKernels: [],
  dtypes: 'any',
  // A view: the output shares the input's storage, so no data moves.
  forward: ({ backend, inputs: [x], attrs }) => new Tensor(attrs.shape, x.dtype, backend, x),
  backward: (g, { inputs: [x] }) => [reshape(g, x.shape)],
};

/** Same data, new shape; one dimension may be −1 (inferred). */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const resolved = [...shape];
  const unknown = resolved.indexOf(-1);
  if (unknown >= 0) {
    const known = resolved.reduce((p, d, i) => (i === unknown ? p : p * d), 1);
    resolved[unknown] = known === 0 ? 0 : x.numel / known;
  }
  if (resolved.some((d) => !Number.isInteger(d) || d < 0) || numelOf(resolved) !== x.numel) {
    throw new ShapeError(`reshape: cannot view ${fmtShape(x.shape)} (${x.numel} elements) as ${fmtShape(shape)}`);
  }
  return apply('reshape', RESHAPE, [x], { shape: resolved });
}

interface AxisAttrs { axis: number; keepDim: boolean }

function reducedShape(shape: Shape, axis: number, keepDim: boolean): number[] {
  return keepDim ? shape.map((d, i) => (i === axis ? 1 : d)) : shape.filter((_, i) => i !== axis);
}

/** Broadcast a reduced gradient back over the reduced axis, as g + 0 with broadcasting. */
function expandAlong(g: Tensor, shape: Shape, axis: number): Tensor {
  const keepShape = shape.map((d, i) => (i === axis ? 1 : d));
  const zero = alloc(g.backend, [1], g.dtype); // [1]
  kernel(g.backend, 'fill', 'sum.backward')(zero.storageFor('sum.backward'), 1, 0);
  const out = alloc(g.backend, shape, g.dtype); // [...shape]
  kernel(g.backend, 'binary', 'sum.backward')(
    'add', g.storageFor('sum.backward'), zero.storageFor('sum.backward'), out.storageFor('sum.backward'),
    shape, broadcastStrides(keepShape, shape), shape.map(() => 0),
  );
  zero.dispose();
  return out;
}

export const SUM: OpSpec<AxisAttrs> = {
  arity: 1,
  kernels: ['reduceSum'],
  gradKernels: ['fill', 'binary'],
  dtypes: 'float',
  forward({ backend, inputs: [x], attrs }) {
    const { outer, n, inner } = splitAt(x.shape, attrs.axis);
    const out = alloc(backend, reducedShape(x.shape, attrs.axis, attrs.keepDim), x.dtype); // [x without axis]
    kernel(backend, 'reduceSum', 'sum')(x.storageFor('sum'), out.storageFor('sum'), outer, n, inner);
    return out;
  },
  backward: (g, { inputs: [x], attrs }) => [expandAlong(g, x.shape, attrs.axis)],
};

export const MAX: OpSpec<AxisAttrs> = {
  arity: 1,
  kernels: ['reduceMax'],
  gradKernels: ['reduceMaxBackward'],
  dtypes: 'float',
  forward({ backend, inputs: [x], attrs }) {
    const { outer, n, inner } = splitAt(x.shape, attrs.axis);
    const out = alloc(backend, reducedShape(x.shape, attrs.axis, attrs.keepDim), x.dtype); // [x without axis]
    kernel(backend, 'reduceMax', 'max')(x.storageFor('max'), out.storageFor('max'), outer, n, inner);
    return out;
  },
  backward(g, { backend, inputs: [x], output, attrs }) {
    const { outer, n, inner } = splitAt(x.shape, attrs.axis);
    const gx = alloc(backend, x.shape, x.dtype); // [...x]
    kernel(backend, 'reduceMaxBackward', 'max.backward')(
      x.storageFor('max.backward'), output!.storageFor('max.backward'), g.storageFor('max.backward'), gx.storageFor('max.backward'),
      outer, n, inner,
    );
    return [gx];
  },
};

/** Σ over one axis (all axes when axis is omitted). */
export function sum(x: Tensor, axis?: number, keepDim = false): Tensor {
  if (axis === undefined) return sum(reshape(x, [x.numel]), 0, keepDim && x.rank === 0);
  return apply('sum', SUM, [x], { axis: normAxis('sum', axis, x.rank), keepDim });
}

/** Mean over one axis (all axes when omitted). */
export function mean(x: Tensor, axis?: number, keepDim = false): Tensor {
  const count = axis === undefined ? x.numel : x.shape[normAxis('mean', axis, x.rank)];
  return mulScalar(sum(x, axis, keepDim), 1 / count);
}

/** Max over one axis (all axes when omitted); the gradient flows to the first maximum. */
export function max(x: Tensor, axis?: number, keepDim = false): Tensor {
  if (axis === undefined) return max(reshape(x, [x.numel]), 0, false);
  return apply('max', MAX, [x], { axis: normAxis('max', axis, x.rank), keepDim });
}
