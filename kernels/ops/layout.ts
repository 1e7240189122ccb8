/** Data movement: permute/transpose, slice, concat, cast and embedding lookup. */
import type { DType } from '../dtype.js';
import { DTypeError, ShapeError, fmtShape } from '../errors.js';
import { alloc, apply, kernel } from '../op.js';
import type { OpSpec } from '../op.js';
import type { Tensor } from '../tensor.js';
import { normAxis, splitAt } from './shape.js';

interface PermuteAttrs { perm: number[] }

export const PERMUTE: OpSpec<PermuteAttrs> = {
  arity: 1,
  kernels: ['permute'],
  gradKernels: [],
  dtypes: 'any',
  forward({ backend, inputs: [x], attrs }) {
    const out = alloc(backend, attrs.perm.map((p) => x.shape[p]), x.dtype); // [x.shape[perm]]
    kernel(backend, 'permute', 'permute')(x.storageFor('permute'), out.storageFor('permute'), x.shape, attrs.perm);
    return out;
  },
  backward(g, { attrs }) {
    const inverse = new Array<number>(attrs.perm.length);
    attrs.perm.forEach((p, i) => (inverse[p] = i));
    return [permute(g, inverse)];
  },
};

/** Reorder axes into a new contiguous tensor. */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  const sorted = [...perm].sort((a, b) => a - b);
  if (perm.length !== x.rank || sorted.some((p, i) => p !== i)) {
    throw new ShapeError(`permute: [${perm.join(',')}] is not a permutation of the axes of ${fmtShape(x.shape)}`);
  }
  return apply('permute', PERMUTE, [x], { perm: [...perm] });
}

/** Swap two axes (a contiguous copy). */
export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  const perm = x.shape.map((_, i) => i);
  const i = normAxis('transpose', a, x.rank), j = normAxis('transpose', b, x.rank);
  [perm[i], perm[j]] = [perm[j], perm[i]];
  return permute(x, perm);
}

interface SliceAttrs { axis: number; start: number; end: number }

export const SLICE: OpSpec<SliceAttrs> = {
  arity: 1,
  kernels: ['copyBlock'],
  gradKernels: ['fill', 'copyBlock'],
  dtypes: 'any',
  forward({ backend, inputs: [x], attrs: { axis, start, end } }) {
    const { outer, n, inner } = splitAt(x.shape, axis);
    const out = alloc(backend, x.shape.map((d, i) => (i === axis ? end - start : d)), x.dtype); // [..., end−start, ...]
    kernel(backend, 'copyBlock', 'slice')(x.storageFor('slice'), out.storageFor('slice'), outer, end - start, inner, n, start, end - start, 0);
    return out;
  },
  backward(g, { backend, inputs: [x], attrs: { axis, start, end } }) {
    const { outer, n, inner } = splitAt(x.shape, axis);
    const gx = alloc(backend, x.shape, x.dtype); // [...x], zero outside the slice
    kernel(backend, 'fill', 'slice.backward')(gx.storageFor('slice.backward'), gx.numel, 0);
    kernel(backend, 'copyBlock', 'slice.backward')(g.storageFor('slice.backward'), gx.storageFor('slice.backward'), outer, end - start, inner, end - start, 0, n, start);
    return [gx];
  },
};

/** Elements start ≤ i < end along one axis (negative bounds count from the end). */
export function slice(x: Tensor, axis: number, start: number, end?: number): Tensor {
  const a = normAxis('slice', axis, x.rank);
  const size = x.shape[a];
  const s = start < 0 ? start + size : start;
  const e = end === undefined ? size : end < 0 ? end + size : end;
  if (!(Number.isInteger(s) && Number.isInteger(e) && s >= 0 && e <= size && s <= e)) {
    throw new ShapeError(`slice: range [${start}, ${end ?? size}) is out of bounds for axis ${axis} of ${fmtShape(x.shape)}`);
  }
  return apply('slice', SLICE, [x], { axis: a, start: s, end: e });
}

interface ConcatAttrs { axis: number }

export const CONCAT: OpSpec<ConcatAttrs> = {
  arity: 'variadic',
  kernels: ['copyBlock'],
  gradKernels: [],
  dtypes: 'any',
  forward({ backend, inputs, attrs: { axis } }) {
    const total = inputs.reduce((p, t) => p + t.shape[axis], 0);
    const shape = inputs[0].shape.map((d, i) => (i === axis ? total : d));
    const out = alloc(backend, shape, inputs[0].dtype); // [..., Σ sizes, ...]
    const { outer, inner } = splitAt(shape, axis);
    let offset = 0;
    for (const t of inputs) {
      const len = t.shape[axis];
      kernel(backend, 'copyBlock', 'concat')(t.storageFor('concat'), out.storageFor('concat'), outer, len, inner, len, 0, total, offset);
      offset += len;
    }
    return out;
  },
  backward(g, { inputs, attrs: { axis } }, needs) {
    let offset = 0;
    return inputs.map((t, i) => {
      const start = offset;
      offset += t.shape[axis];
      return needs[i] ? slice(g, axis, start, offset) : null;
    });
  },
};

/** Join tensors along an axis; all other dimensions must match. */
export function concat(tensors: readonly Tensor[], axis: number): Tensor {
  if (tensors.length === 0) throw new ShapeError('concat: needs at least one tensor');
  const first = tensors[0];
  const a = normAxis('concat', axis, first.rank);
  for (const t of tensors) {
    if (t.rank !== first.rank || t.shape.some((d, i) => i !== a && d !== first.shape[i]) || t.dtype !== first.dtype) {
      throw new ShapeError(
        `concat: along axis ${a}, got ${tensors.map((x) => `${fmtShape(x.shape)} ${x.dtype}`).join(', ')}; other axes and dtypes must match`,
      );
    }
  }
  return apply('concat', CONCAT, tensors, { axis: a });
}

interface CastAttrs { dtype: DType }

export const CAST: OpSpec<CastAttrs> = {
  arity: 1,
  kernels: ['cast'],
  gradKernels: [],
  dtypes: 'any',
  forward({ backend, inputs: [x], attrs }) {
    if (!backend.dtypes.has(attrs.dtype)) throw new DTypeError(`cast: backend ${backend.name} cannot store ${attrs.dtype}`);
    const out = alloc(backend, x.shape, attrs.dtype); // [...x]
    kernel(backend, 'cast', 'cast')(x.storageFor('cast'), out.storageFor('cast'), x.numel);
    return out;
  },
  // The gradient of a cast is cast back: bf16 copies of f32 master weights pass it straight through.
  backward: (g, { inputs: [x] }) => [x.dtype === 'i32' ? null : g.dtype === x.dtype ? g : cast(g, x.dtype)],
};

export function cast(x: Tensor, dtype: DType): Tensor {
  return apply('cast', CAST, [x], { dtype });
}

export const EMBEDDING: OpSpec = {
  arity: 2,
  kernels: ['embedding'],
  gradKernels: ['embeddingBackward'],
  dtypes: 'float',
  intInputs: [1],
  forward({ backend, inputs: [weight, ids] }) {
    const [V, C] = weight.shape;
    const out = alloc(backend, [...ids.shape, C], weight.dtype); // [...ids, C]
    kernel(backend, 'embedding', 'embedding')(weight.storageFor('embedding'), ids.storageFor('embedding'), out.storageFor('embedding'), ids.numel, C, V);
    return out;
  },
  backward(g, { backend, inputs: [weight, ids] }) {
    const [V, C] = weight.shape;
    const gw = alloc(backend, weight.shape, weight.dtype); // [V, C]
    kernel(backend, 'embeddingBackward', 'embedding.backward')(
      g.storageFor('embedding.backward'), ids.storageFor('embedding.backward'), gw.storageFor('embedding.backward'), ids.numel, C, V,
    );
    return [gw, null];
  },
};

/** Rows of weight [V, C] picked by integer ids [...] → [..., C]. */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  if (weight.rank !== 2) throw new ShapeError(`embedding: weight must be [V, C], got ${fmtShape(weight.shape)}`);
  if (ids.dtype !== 'i32') throw new DTypeError(`embedding: ids must be i32, got ${ids.dtype} ${fmtShape(ids.shape)}`);
  return apply('embedding', EMBEDDING, [weight, ids], {});
}
