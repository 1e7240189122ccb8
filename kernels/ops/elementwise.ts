/** Elementwise ops: unary functions, scalar affine/pow, and broadcasting binary ops. */
import type { BinaryKind, UnaryKind } from '../backend.js';
import { UNARY_KINDS } from '../backend.js';
import { alloc, apply, kernel } from '../op.js';
import type { OpSpec } from '../op.js';
import type { Tensor } from '../tensor.js';
import type { Shape } from '../errors.js';
import { reshape, sum } from './reduce-and-reshape.js';
import { broadcastShapes, broadcastStrides, sameShape } from './shape.js';

// ---- unary ---------------------------------------------------------------------------------

function unarySpec(kind: UnaryKind): OpSpec {
  return {
    arity: 1,
    kernels: ['unary'],
    gradKernels: ['unaryBackward'],
    dtypes: 'float',
    forward({ backend, inputs: [x] }) {
      const out = alloc(backend, x.shape, x.dtype); // [...x]
      kernel(backend, 'unary', kind)(kind, x.storageFor(kind), out.storageFor(kind), x.numel);
      return out;
    },
    backward(g, { backend, inputs: [x], output }) {
      const gx = alloc(backend, x.shape, x.dtype); // [...x]
      const op = `${kind}.backward`;
      kernel(backend, 'unaryBackward', op)(kind, x.storageFor(op), output!.storageFor(op), g.storageFor(op), gx.storageFor(op), x.numel);
      return [gx];
    },
  };
}

export const UNARY_OPS = Object.fromEntries(UNARY_KINDS.map((k) => [k, unarySpec(k)])) as Record<UnaryKind, OpSpec>;

const unaryOp = (kind: UnaryKind) => (x: Tensor): Tensor => apply(kind, UNARY_OPS[kind], [x], {});
export const neg = unaryOp('neg');
export const exp = unaryOp('exp');
export const log = unaryOp('log');
export const sqrt = unaryOp('sqrt');
export const rsqrt = unaryOp('rsqrt');
export const tanh = unaryOp('tanh');
export const sigmoid = unaryOp('sigmoid');
export const relu = unaryOp('relu');
export const silu = unaryOp('silu');
export const gelu = unaryOp('gelu');
export const abs = unaryOp('abs');
export const square = unaryOp('square');

// ---- scalar ops ----------------------------------------------------------------------------

interface AffineAttrs { scale: number; shift: number }

export const AFFINE: OpSpec<AffineAttrs> = {
  arity: 1,
  kernels: ['affine'],
  gradKernels: [],
  dtypes: 'float',
  forward({ backend, inputs: [x], attrs }) {
    const out = alloc(backend, x.shape, x.dtype); // [...x]
    kernel(backend, 'affine', 'affine')(x.storageFor('affine'), out.storageFor('affine'), x.numel, attrs.scale, attrs.shift);
    return out;
  },
  backward: (g, { attrs }) => [affine(g, attrs.scale, 0)],
};

/** x·scale + shift. */
export function affine(x: Tensor, scale: number, shift: number): Tensor {
  return apply('affine', AFFINE, [x], { scale, shift });
}
export const mulScalar = (x: Tensor, s: number): Tensor => affine(x, s, 0);
export const addScalar = (x: Tensor, s: number): Tensor => affine(x, 1, s);

interface PowAttrs { exponent: number }

export const POW_SCALAR: OpSpec<PowAttrs> = {
  arity: 1,
  kernels: ['powScalar'],
  gradKernels: [],
  dtypes: 'float',
  forward({ backend, inputs: [x], attrs }) {
    const out = alloc(backend, x.shape, x.dtype); // [...x]
    kernel(backend, 'powScalar', 'powScalar')(x.storageFor('powScalar'), out.storageFor('powScalar'), x.numel, attrs.exponent);
    return out;
  },
  // d/dx x^p = p·x^(p−1)
  backward: (g, { inputs: [x], attrs }) => [mul(g, mulScalar(powScalar(x, attrs.exponent - 1), attrs.exponent))],
};

export function powScalar(x: Tensor, exponent: number): Tensor {
  return apply('powScalar', POW_SCALAR, [x], { exponent });
}

// ---- binary with broadcasting --------------------------------------------------------------

/** Sum a broadcast gradient back down to the shape of the input it flowed from. */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (sameShape(g.shape, shape)) return g;
  let t = g;
  const lead = g.rank - shape.length;
  for (let i = 0; i < lead; i++) t = sum(t, 0);
  for (let d = 0; d < shape.length; d++) if (shape[d] === 1 && t.shape[d] !== 1) t = sum(t, d, true);
  return sameShape(t.shape, shape) ? t : reshape(t, shape);
}

function binarySpec(kind: BinaryKind, grads: (g: Tensor, a: Tensor, b: Tensor, out: Tensor, needs: readonly boolean[]) => (Tensor | null)[]): OpSpec {
  return {
    arity: 2,
    kernels: ['binary'],
    gradKernels: [],
    dtypes: 'float',
    forward({ backend, inputs: [a, b] }) {
      const shape = broadcastShapes(kind, a.shape, b.shape);
      const out = alloc(backend, shape, a.dtype); // [broadcast(a, b)]
      kernel(backend, 'binary', kind)(
        kind, a.storageFor(kind), b.storageFor(kind), out.storageFor(kind),
        shape, broadcastStrides(a.shape, shape), broadcastStrides(b.shape, shape),
      );
      return out;
    },
    backward: (g, { inputs: [a, b], output }, needs) => {
      const [ga, gb] = grads(g, a, b, output!, needs);
      return [ga && sumTo(ga, a.shape), gb && sumTo(gb, b.shape)];
    },
  };
}

/** Where a and b tie, maximum/minimum send the gradient to a (PyTorch splits it; a tie is measure-zero). */
function selectGrad() {
  return (g: Tensor, a: Tensor, b: Tensor, out: Tensor, needs: readonly boolean[]): (Tensor | null)[] => {
    // mask_a = 1 where out == a: computed as 1 − sign(|out − a|) without comparison ops
    const diffA = abs(sub(out, a));
    const isA = sub(ones(diffA), minimum(mulScalar(diffA, Number.MAX_VALUE), ones(diffA)));
    return [needs[0] ? mul(g, isA) : null, needs[1] ? mul(g, sub(ones(isA), isA)) : null];
  };
}

function ones(like: Tensor): Tensor {
  return affine(like, 0, 1);
}

export const BINARY_OPS: Record<BinaryKind, OpSpec> = {
  add: binarySpec('add', (g) => [g, g]),
  sub: binarySpec('sub', (g, _a, _b, _o, needs) => [g, needs[1] ? neg(g) : null]),
  mul: binarySpec('mul', (g, a, b, _o, needs) => [needs[0] ? mul(g, b) : null, needs[1] ? mul(g, a) : null]),
  // d(a/b)/da = 1/b; d(a/b)/db = −a/b² = −out/b
  div: binarySpec('div', (g, _a, b, out, needs) => [needs[0] ? div(g, b) : null, needs[1] ? neg(div(mul(g, out), b)) : null]),
  maximum: binarySpec('maximum', selectGrad()),
  minimum: binarySpec('minimum', selectGrad()),
};

const binaryOp = (kind: BinaryKind) => (a: Tensor, b: Tensor): Tensor => apply(kind, BINARY_OPS[kind], [a, b], {});
export const add = binaryOp('add');
export const sub = binaryOp('sub');
export const mul = binaryOp('mul');
export const div = binaryOp('div');
export const maximum = binaryOp('maximum');
export const minimum = binaryOp('minimum');
