/**
 * The op table: every op of the engine, each with its arity, its gradient rule and the kernels
 * that implement it on each backend (backends list what they lack in their `unsupported` map).
 * One grep for an op name finds its spec here, its reference kernel, its native source and its test.
 */
import type { OpSpec } from './op.js';
import { ATTENTION, ROPE, SWIGLU } from './ops/attention.js';
import { AFFINE, BINARY_OPS, POW_SCALAR, UNARY_OPS } from './ops/elementwise.js';
import { CAST, CONCAT, EMBEDDING, PERMUTE, SLICE } from './ops/layout.js';
import { MATMUL } from './ops/matmul.js';
import { LAYER_NORM, RMS_NORM } from './ops/norm.js';
import { MAX, RESHAPE, SUM } from './ops/reduce-and-reshape.js';
import { LOG_SOFTMAX, SOFTMAX, TOKEN_LOGPROBS } from './ops/softmax.js';
import { ADAMW, CLIP_GRAD_NORM } from './optim.js';

export const OP_TABLE = {
  ...UNARY_OPS,
  affine: AFFINE,
  powScalar: POW_SCALAR,
  ...BINARY_OPS,
  sum: SUM,
  max: MAX,
  reshape: RESHAPE,
  permute: PERMUTE,
  slice: SLICE,
  concat: CONCAT,
  cast: CAST,
  embedding: EMBEDDING,
  matmul: MATMUL,
  softmax: SOFTMAX,
  logSoftmax: LOG_SOFTMAX,
  tokenLogprobs: TOKEN_LOGPROBS,
  rmsNorm: RMS_NORM,
  layerNorm: LAYER_NORM,
  rope: ROPE,
  swiglu: SWIGLU,
  attention: ATTENTION,
  adamw: ADAMW,
  clipGradNorm: CLIP_GRAD_NORM,
} satisfies Record<string, OpSpec<never>>;

export type OpName = keyof typeof OP_TABLE;
