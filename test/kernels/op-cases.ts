/**
 * Test cases for every op: odd sizes, broadcasting, size-1 and empty dimensions.
 * Each op's test file runs its cases on every backend against the f64 reference, and checks
 * gradients by finite differences. `nan` marks cases where a NaN input must reach the output.
 */
import type { OpName } from '../../kernels/index.js';
import * as K from '../../kernels/index.js';
import type { Tensor } from '../../kernels/index.js';
import type { InputSpec } from './harness.js';

export interface OpCase {
  label: string;
  inputs: InputSpec[];
  fn: (...xs: Tensor[]) => Tensor;
  /** Run the finite-difference gradient check (default true when any input takes a gradient). */
  gradCheck?: boolean;
  /** Inject NaN and ±Inf into input 0 and require the same non-finite pattern as the reference. */
  nan?: boolean;
}

const n = (shape: number[], scale?: number): InputSpec => ({ shape, init: { kind: 'normal', scale } });
const pos = (shape: number[]): InputSpec => ({ shape, init: { kind: 'positive' } });

const unaryCases = (op: (x: Tensor) => Tensor, positive = false): OpCase[] => [
  { label: '[7,3]', inputs: [positive ? pos([7, 3]) : n([7, 3])], fn: op, nan: true },
  { label: '[1]', inputs: [positive ? pos([1]) : n([1])], fn: op },
  { label: 'empty [0,5]', inputs: [n([0, 5])], fn: op, gradCheck: false },
  { label: '[2,1,33]', inputs: [positive ? pos([2, 1, 33]) : n([2, 1, 33])], fn: op },
];

const binaryCases = (op: (a: Tensor, b: Tensor) => Tensor, positiveB = false): OpCase[] => {
  const b = (s: number[]): InputSpec => (positiveB ? pos(s) : n(s));
  return [
    { label: 'same [5,7]', inputs: [n([5, 7]), b([5, 7])], fn: op, nan: true },
    { label: 'row broadcast [4,3]+[3]', inputs: [n([4, 3]), b([3])], fn: op },
    { label: 'both broadcast [3,1,5]+[4,1]', inputs: [n([3, 1, 5]), b([4, 1])], fn: op },
    { label: 'scalar-like [2,3]+[1,1]', inputs: [n([2, 3]), b([1, 1])], fn: op },
    { label: 'empty [0,3]+[3]', inputs: [n([0, 3]), b([3])], fn: op, gradCheck: false },
  ];
};

export const OP_CASES: Record<OpName, OpCase[]> = {
  neg: unaryCases(K.neg),
  exp: unaryCases(K.exp),
  log: unaryCases(K.log, true),
  sqrt: unaryCases(K.sqrt, true),
  rsqrt: unaryCases(K.rsqrt, true),
  tanh: unaryCases(K.tanh),
  sigmoid: unaryCases(K.sigmoid),
  relu: unaryCases(K.relu),
  silu: unaryCases(K.silu),
  gelu: unaryCases(K.gelu),
  abs: unaryCases(K.abs),
  square: unaryCases(K.square),
  affine: [
    { label: '[6,5] ·1.5 − 0.25', inputs: [n([6, 5])], fn: (x) => K.affine(x, 1.5, -0.25), nan: true },
    { label: 'empty', inputs: [n([0])], fn: (x) => K.affine(x, 2, 1), gradCheck: false },
  ],
  powScalar: [
    { label: '[4,5]^3', inputs: [n([4, 5])], fn: (x) => K.powScalar(x, 3), nan: true },
    { label: '[9]^-0.5', inputs: [pos([9])], fn: (x) => K.powScalar(x, -0.5) },
  ],
  add: binaryCases(K.add),
  sub: binaryCases(K.sub),
  mul: binaryCases(K.mul),
  div: binaryCases(K.div, true),
  maximum: binaryCases(K.maximum),
  minimum: binaryCases(K.minimum),
  sum: [
    { label: 'axis 1 of [3,5,4]', inputs: [n([3, 5, 4])], fn: (x) => K.sum(x, 1), nan: true },
    { label: 'last axis keepDim [6,7]', inputs: [n([6, 7])], fn: (x) => K.sum(x, -1, true) },
    { label: 'all of [2,3,5]', inputs: [n([2, 3, 5])], fn: (x) => K.sum(x) },
    { label: 'size-1 axis [4,1,3]', inputs: [n([4, 1, 3])], fn: (x) => K.sum(x, 1) },
    { label: 'empty axis [3,0] → zeros', inputs: [n([3, 0])], fn: (x) => K.sum(x, 1), gradCheck: false },
    { label: 'long row [2,1000]', inputs: [n([2, 1000])], fn: (x) => K.sum(x, 1) },
  ],
  max: [
    { label: 'axis 0 of [5,4]', inputs: [n([5, 4])], fn: (x) => K.max(x, 0), nan: true },
    { label: 'last axis keepDim [3,2,9]', inputs: [n([3, 2, 9])], fn: (x) => K.max(x, -1, true) },
    { label: 'all of [17]', inputs: [n([17])], fn: (x) => K.max(x) },
  ],
  reshape: [
    { label: '[2,3,4] → [6,-1]', inputs: [n([2, 3, 4])], fn: (x) => K.mul(K.reshape(x, [6, -1]), K.reshape(x, [6, 4])) },
    { label: 'empty', inputs: [n([0, 4])], fn: (x) => K.reshape(x, [4, 0]), gradCheck: false },
  ],
  permute: [
    { label: '[2,3,4] (2,0,1)', inputs: [n([2, 3, 4])], fn: (x) => K.permute(x, [2, 0, 1]) },
    { label: 'transpose [5,7]', inputs: [n([5, 7])], fn: (x) => K.transpose(x) },
    { label: '[2,3,1,5] (0,2,1,3)', inputs: [n([2, 3, 1, 5])], fn: (x) => K.permute(x, [0, 2, 1, 3]) },
  ],
  slice: [
    { label: 'axis 1 [1,4) of [3,6]', inputs: [n([3, 6])], fn: (x) => K.slice(x, 1, 1, 4) },
    { label: 'axis 0 last two of [5,2,3]', inputs: [n([5, 2, 3])], fn: (x) => K.slice(x, 0, -2) },
    { label: 'empty slice', inputs: [n([4, 3])], fn: (x) => K.slice(x, 0, 2, 2), gradCheck: false },
  ],
  concat: [
    { label: 'axis 1 [2,3]+[2,1]+[2,4]', inputs: [n([2, 3]), n([2, 1]), n([2, 4])], fn: (a, b, c) => K.concat([a, b, c], 1) },
    { label: 'axis 0 [1,5]+[3,5]', inputs: [n([1, 5]), n([3, 5])], fn: (a, b) => K.concat([a, b], 0) },
    { label: 'with empty [0,2]+[3,2]', inputs: [n([0, 2]), n([3, 2])], fn: (a, b) => K.concat([a, b], 0), gradCheck: false },
  ],
  cast: [
    { label: 'f32 → bf16 → f32 (gradient passes through)', inputs: [n([5, 3])], fn: (x) => K.cast(K.cast(x, 'bf16'), x.dtype), gradCheck: false },
  ],
  embedding: [
    { label: 'V=11 C=5 ids [3,4]', inputs: [n([11, 5]), { shape: [3, 4], init: { kind: 'ids', vocab: 11 } }], fn: (w, ids) => K.embedding(w, ids) },
    { label: 'repeated ids', inputs: [n([3, 2]), { shape: [6], int: true, init: { kind: 'const', values: [1, 1, 2, 1, 0, 1] } }], fn: (w, ids) => K.embedding(w, ids) },
  ],
  matmul: [
    { label: '[3,5]·[5,4]', inputs: [n([3, 5]), n([5, 4])], fn: (a, b) => K.matmul(a, b), nan: true },
    { label: 'transA [5,3]ᵀ·[5,4]', inputs: [n([5, 3]), n([5, 4])], fn: (a, b) => K.matmul(a, b, { transA: true }) },
    { label: 'transB [3,5]·[4,5]ᵀ', inputs: [n([3, 5]), n([4, 5])], fn: (a, b) => K.matmul(a, b, { transB: true }) },
    { label: 'both [5,3]ᵀ·[4,5]ᵀ', inputs: [n([5, 3]), n([4, 5])], fn: (a, b) => K.matmul(a, b, { transA: true, transB: true }) },
    { label: 'batched [2,3,4,5]·[2,3,5,2]', inputs: [n([2, 3, 4, 5]), n([2, 3, 5, 2])], fn: (a, b) => K.matmul(a, b) },
    { label: 'broadcast B [2,7,3]·[3,5] (linear fold)', inputs: [n([2, 7, 3]), n([3, 5])], fn: (a, b) => K.matmul(a, b) },
    { label: 'broadcast A [4,3]·[2,3,6]', inputs: [n([4, 3]), n([2, 3, 6])], fn: (a, b) => K.matmul(a, b) },
    { label: 'batched transA with shared B [2,3,4]ᵀ·[3,5]', inputs: [n([2, 3, 4]), n([3, 5])], fn: (a, b) => K.matmul(a, b, { transA: true }) },
    { label: 'K=1 outer product', inputs: [n([6, 1]), n([1, 7])], fn: (a, b) => K.matmul(a, b) },
    { label: 'odd 17×13×19', inputs: [n([17, 19]), n([19, 13])], fn: (a, b) => K.matmul(a, b), gradCheck: false },
    { label: 'empty M', inputs: [n([0, 4]), n([4, 3])], fn: (a, b) => K.matmul(a, b), gradCheck: false },
    { label: 'empty K gives zeros', inputs: [n([3, 0]), n([0, 2])], fn: (a, b) => K.matmul(a, b), gradCheck: false },
    // Few rows times a transposed weight take the skinny-GEMM path (odd K exercises its tail).
    { label: 'skinny transB [5,37]·[13,37]ᵀ', inputs: [n([5, 37]), n([13, 37])], fn: (a, b) => K.matmul(a, b, { transB: true }) },
    { label: 'skinny transB one row [1,16]·[7,16]ᵀ', inputs: [n([1, 16]), n([7, 16])], fn: (a, b) => K.matmul(a, b, { transB: true }) },
    { label: 'skinny boundary 32 rows [32,9]·[66,9]ᵀ', inputs: [n([32, 9]), n([66, 9])], fn: (a, b) => K.matmul(a, b, { transB: true }), gradCheck: false },
    { label: 'linear with bias', inputs: [n([2, 3, 4]), n([5, 4]), n([5])], fn: (x, w, b) => K.linear(x, w, b) },
  ],
  softmax: [
    { label: '[4,9]', inputs: [n([4, 9], 3)], fn: K.softmax, nan: true },
    { label: '[2,3,1]', inputs: [n([2, 3, 1])], fn: K.softmax },
    { label: 'large logits [2,5]·50', inputs: [n([2, 5], 50)], fn: K.softmax, gradCheck: false },
  ],
  logSoftmax: [
    { label: '[3,8]', inputs: [n([3, 8], 3)], fn: K.logSoftmax, nan: true },
    { label: 'long row [2,300]', inputs: [n([2, 300])], fn: K.logSoftmax, gradCheck: false },
  ],
  tokenLogprobs: [
    { label: 'V=7 [5]', inputs: [n([5, 7], 2), { shape: [5], init: { kind: 'ids', vocab: 7 } }], fn: (l, t) => K.tokenLogprobs(l, t), nan: true },
    { label: 'with ignored rows [2,3,6]', inputs: [n([2, 3, 6]), { shape: [2, 3], init: { kind: 'ids', vocab: 6, ignore: -100 } }], fn: (l, t) => K.tokenLogprobs(l, t) },
    { label: 'V=1000', inputs: [n([3, 1000]), { shape: [3], init: { kind: 'ids', vocab: 1000 } }], fn: (l, t) => K.tokenLogprobs(l, t), gradCheck: false },
    { label: 'crossEntropy mean', inputs: [n([4, 5]), { shape: [4], int: true, init: { kind: 'const', values: [1, -100, 4, 0] } }], fn: (l, t) => K.crossEntropy(l, t).loss },
  ],
  rmsNorm: [
    { label: '[3,8]', inputs: [n([3, 8]), n([8])], fn: (x, w) => K.rmsNorm(x, w, 1e-5), nan: true },
    { label: '[2,2,1]', inputs: [n([2, 2, 1]), n([1])], fn: (x, w) => K.rmsNorm(x, w, 1e-5) },
    { label: 'wide [2,257]', inputs: [n([2, 257]), n([257])], fn: (x, w) => K.rmsNorm(x, w, 1e-5), gradCheck: false },
  ],
  layerNorm: [
    { label: '[4,6]', inputs: [n([4, 6]), n([6]), n([6])], fn: (x, w, b) => K.layerNorm(x, w, b, 1e-5), nan: true },
    { label: '[2,3,5]', inputs: [n([2, 3, 5]), n([5]), n([5])], fn: (x, w, b) => K.layerNorm(x, w, b, 1e-5) },
  ],
  rope: [
    { label: '[2,3,5,4] shared tables', inputs: [n([2, 3, 5, 4]), { ...n([5, 2]), grad: false }, { ...n([5, 2]), grad: false }], fn: (x, c, s) => K.rope(x, c, s) },
    { label: '[2,1,3,6] per-batch tables', inputs: [n([2, 1, 3, 6]), { ...n([2, 3, 3]), grad: false }, { ...n([2, 3, 3]), grad: false }], fn: (x, c, s) => K.rope(x, c, s) },
  ],
  swiglu: [
    { label: '[3,7]', inputs: [n([3, 7]), n([3, 7])], fn: (g, u) => K.swiglu(g, u), nan: true },
    { label: 'empty', inputs: [n([0, 7]), n([0, 7])], fn: (g, u) => K.swiglu(g, u), gradCheck: false },
  ],
  attention: [
    { label: 'causal MHA [2,2,5,4]', inputs: [n([2, 2, 5, 4]), n([2, 2, 5, 4]), n([2, 2, 5, 4])], fn: (q, k, v) => K.attention(q, k, v), nan: true },
    { label: 'GQA 4q/2kv [1,4,3,6]', inputs: [n([1, 4, 3, 6]), n([1, 2, 3, 6]), n([1, 2, 3, 6])], fn: (q, k, v) => K.attention(q, k, v), nan: true },
    {
      label: 'one decoding query against a masked cache (T=1, S=9), GQA',
      inputs: [n([2, 4, 1, 8]), n([2, 2, 9, 8]), n([2, 2, 9, 8]), { shape: [2, 9], init: { kind: 'const', values: [0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1] }, grad: false }],
      fn: (q, k, v, m) => K.attention(q, k, v, { mask: m }),
      nan: true,
    },
    {
      label: 'padding mask, not causal',
      inputs: [n([2, 2, 4, 3]), n([2, 2, 4, 3]), n([2, 2, 4, 3]), { shape: [2, 4], init: { kind: 'const', values: [1, 1, 0, 1, 1, 0, 0, 0] }, grad: false }],
      fn: (q, k, v, m) => K.attention(q, k, v, { mask: m, causal: false }),
    },
    {
      label: 'causal with KV cache offset (T=2, S=5) and mask',
      inputs: [n([1, 2, 2, 4]), n([1, 1, 5, 4]), n([1, 1, 5, 4]), { shape: [1, 5], init: { kind: 'const', values: [0, 1, 1, 1, 1] }, grad: false }],
      fn: (q, k, v, m) => K.attention(q, k, v, { mask: m }),
    },
    {
      label: 'fully masked row gives zeros',
      inputs: [n([1, 1, 2, 3]), n([1, 1, 2, 3]), n([1, 1, 2, 3]), { shape: [1, 2], init: { kind: 'const', values: [0, 1] }, grad: false }],
      fn: (q, k, v, m) => K.attention(q, k, v, { mask: m }),
    },
    { label: 'longer T=33 D=16', inputs: [n([1, 2, 33, 16]), n([1, 2, 33, 16]), n([1, 2, 33, 16])], fn: (q, k, v) => K.attention(q, k, v), gradCheck: false },
    { label: 'sliding window 2 (T=S=6)', inputs: [n([2, 2, 6, 4]), n([2, 2, 6, 4]), n([2, 2, 6, 4])], fn: (q, k, v) => K.attention(q, k, v, { window: 2 }), nan: true },
    {
      // Queries at positions 5 and 6 see keys 3…5 and 4…6; in batch 1 the first sees only padding (zeros).
      label: 'window 3 with KV cache offset (T=2, S=7), GQA and mask',
      inputs: [n([2, 2, 2, 4]), n([2, 1, 7, 4]), n([2, 1, 7, 4]), { shape: [2, 7], init: { kind: 'const', values: [1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0, 0, 1] }, grad: false }],
      fn: (q, k, v, m) => K.attention(q, k, v, { mask: m, window: 3 }),
    },
    {
      // The output carries the windowed result and its difference from no window, which must be 0.
      label: 'window 9 > S=5 equals no window',
      inputs: [n([1, 2, 5, 4]), n([1, 2, 5, 4]), n([1, 2, 5, 4])],
      fn: (q, k, v) => {
        const w = K.attention(q, k, v, { window: 9 });
        return K.concat([w, K.sub(w, K.attention(q, k, v))], 0);
      },
    },
    { label: 'window 1: each query sees only itself', inputs: [n([1, 2, 4, 3]), n([1, 2, 4, 3]), n([1, 2, 4, 3])], fn: (q, k, v) => K.attention(q, k, v, { window: 1 }) },
    {
      // Not causal: only the lower bound, query t (position 1 + t) sees keys t … 4.
      label: 'window 2 without causal masking, with mask (T=4, S=5)',
      inputs: [n([1, 1, 4, 3]), n([1, 1, 5, 3]), n([1, 1, 5, 3]), { shape: [1, 5], init: { kind: 'const', values: [1, 1, 1, 0, 1] }, grad: false }],
      fn: (q, k, v, m) => K.attention(q, k, v, { mask: m, causal: false, window: 2 }),
    },
  ],
  adamw: [],
  clipGradNorm: [],
};
