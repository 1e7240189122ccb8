/** Transformer-specific fused ops: rotary embedding, SwiGLU, and causal (optionally sliding-window) GQA attention. */
import { DTypeError, ShapeError, fmtShape } from '../errors.js';
import { alloc, apply, kernel } from '../op.js';
import type { OpSpec } from '../op.js';
import type { Tensor } from '../tensor.js';

interface RopeAttrs { cosPerBatch: boolean }

function ropeDims(x: Tensor, cos: Tensor, op: string): { B: number; H: number; T: number; D: number; cosPerBatch: boolean } {
  const [B, H, T, D] = x.shape;
  const perBatch = cos.rank === 3;
  const ok = x.rank === 4 && D % 2 === 0 &&
    (perBatch ? cos.shape[0] === B && cos.shape[1] === T && cos.shape[2] === D / 2 : cos.rank === 2 && cos.shape[0] === T && cos.shape[1] === D / 2);
  if (!ok) throw new ShapeError(`${op}: x must be [B, H, T, D] with even D and cos/sin [T, D/2] or [B, T, D/2]; got ${fmtShape(x.shape)} and ${fmtShape(cos.shape)}`);
  return { B, H, T, D, cosPerBatch: perBatch };
}

function ropeCall(x: Tensor, cos: Tensor, sin: Tensor, inverse: boolean, op: string): Tensor {
  const { B, H, T, D, cosPerBatch } = ropeDims(x, cos, op);
  const out = alloc(x.backend, x.shape, x.dtype); // [B, H, T, D]
  kernel(x.backend, 'rope', op)(x.storageFor(op), cos.storageFor(op), sin.storageFor(op), out.storageFor(op), B, H, T, D, cosPerBatch, inverse);
  return out;
}

export const ROPE: OpSpec<RopeAttrs> = {
  arity: 3,
  kernels: ['rope'],
  gradKernels: ['rope'],
  dtypes: 'float',
  forward: ({ inputs: [x, cos, sin] }) => ropeCall(x, cos, sin, false, 'rope'),
  // The rotation is orthogonal: its gradient is the inverse rotation. cos/sin are constants.
  backward: (g, { inputs: [, cos, sin] }) => [ropeCall(g, cos, sin, true, 'rope.backward'), null, null],
};

/** Rotary embedding of x [B, H, T, D] with precomputed cos/sin tables [T, D/2] or [B, T, D/2]. */
export function rope(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  ropeDims(x, cos, 'rope');
  return apply('rope', ROPE, [x, cos, sin], { cosPerBatch: cos.rank === 3 });
}

export const SWIGLU: OpSpec = {
  arity: 2,
  kernels: ['swiglu'],
  gradKernels: ['swigluBackward'],
  dtypes: 'float',
  forward({ backend, inputs: [gate, up] }) {
    const out = alloc(backend, gate.shape, gate.dtype); // [..., F]
    kernel(backend, 'swiglu', 'swiglu')(gate.storageFor('swiglu'), up.storageFor('swiglu'), out.storageFor('swiglu'), gate.numel);
    return out;
  },
  backward(g, { backend, inputs: [gate, up] }) {
    const gg = alloc(backend, gate.shape, gate.dtype); // [..., F]
    const gu = alloc(backend, up.shape, up.dtype); // [..., F]
    const op = 'swiglu.backward';
    kernel(backend, 'swigluBackward', op)(gate.storageFor(op), up.storageFor(op), g.storageFor(op), gg.storageFor(op), gu.storageFor(op), gate.numel);
    return [gg, gu];
  },
};

/** SwiGLU (Shazeer 2020, eq. 6): silu(gate) · up, elementwise. */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  if (gate.shape.length !== up.shape.length || gate.shape.some((d, i) => d !== up.shape[i])) {
    throw new ShapeError(`swiglu: gate ${fmtShape(gate.shape)} and up ${fmtShape(up.shape)} must have the same shape`);
  }
  return apply('swiglu', SWIGLU, [gate, up], {});
}

export interface AttentionOptions {
  /** Causal masking (query t sees keys up to its absolute position S − T + t). Default true. */
  causal?: boolean;
  /** Key padding mask f32 [B, S]: 1 = attend, 0 = padding. */
  mask?: Tensor | null;
  /** Score scale; default 1/√D. */
  scale?: number;
  /**
   * Sliding window (Mistral; Hugging Face's `sliding_window`): when > 0, the query at absolute position
   * pos = S − T + t also cannot see keys s ≤ pos − window, so with causal masking it sees at most `window`
   * keys, pos − window + 1 … pos (window = 1: only itself). Without causal masking the same lower bound
   * applies (keys pos − window + 1 … S − 1). A non-negative integer; default 0 = no window.
   */
  window?: number;
}

interface AttentionAttrs { causal: boolean; scale: number; hasMask: boolean; window: number }

function attentionDims(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | null) {
  const [B, Hq, T, D] = q.shape;
  const [Bk, Hkv, S, Dk] = k.shape;
  const ok = q.rank === 4 && k.rank === 4 && v.rank === 4 && B === Bk && D === Dk && Hkv > 0 && Hq % Hkv === 0 &&
    v.shape.every((d, i) => d === k.shape[i]) && (!mask || (mask.rank === 2 && mask.shape[0] === B && mask.shape[1] === S));
  if (!ok) {
    throw new ShapeError(
      `attention: expected q [B, Hq, T, D], k and v [B, Hkv, S, D] with Hq divisible by Hkv, mask [B, S]; got q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)}${mask ? `, mask ${fmtShape(mask.shape)}` : ''}`,
    );
  }
  return { B, Hq, Hkv, T, S, D };
}

export const ATTENTION: OpSpec<AttentionAttrs> = {
  arity: 'variadic',
  kernels: ['attention'],
  gradKernels: ['attentionBackward'],
  dtypes: 'float',
  forward(ctx) {
    const { backend, inputs, attrs } = ctx;
    const [q, k, v] = inputs;
    const mask = attrs.hasMask ? inputs[3] : null;
    const { B, Hq, Hkv, T, S, D } = attentionDims(q, k, v, mask);
    const out = alloc(backend, q.shape, q.dtype); // [B, Hq, T, D]
    const lse = alloc(backend, [B, Hq, T], q.dtype); // [B, Hq, T], saved for backward
    const op = 'attention';
    kernel(backend, 'attention', op)(
      q.storageFor(op), k.storageFor(op), v.storageFor(op), mask ? mask.storageFor(op) : null, out.storageFor(op), lse.storageFor(op),
      B, Hq, Hkv, T, S, D, attrs.scale, attrs.causal, attrs.window,
    );
    ctx.saved.push(lse);
    return out;
  },
  backward(g, { backend, inputs, attrs, output, saved: [lse] }) {
    const [q, k, v] = inputs;
    const mask = attrs.hasMask ? inputs[3] : null;
    const { B, Hq, Hkv, T, S, D } = attentionDims(q, k, v, mask);
    const gq = alloc(backend, q.shape, q.dtype); // [B, Hq, T, D]
    const gk = alloc(backend, k.shape, k.dtype); // [B, Hkv, S, D]
    const gv = alloc(backend, v.shape, v.dtype); // [B, Hkv, S, D]
    const op = 'attention.backward';
    kernel(backend, 'attentionBackward', op)(
      q.storageFor(op), k.storageFor(op), v.storageFor(op), mask ? mask.storageFor(op) : null, output!.storageFor(op), lse.storageFor(op),
      g.storageFor(op), gq.storageFor(op), gk.storageFor(op), gv.storageFor(op), B, Hq, Hkv, T, S, D, attrs.scale, attrs.causal, attrs.window,
    );
    return mask ? [gq, gk, gv, null] : [gq, gk, gv];
  },
};

/**
 * Fused scaled-dot-product attention (Vaswani et al. 2017, eq. 1) with grouped KV heads and an optional
 * sliding window (Jiang et al. 2023, Mistral 7B): q [B, Hq, T, D], k/v [B, Hkv, S, D] → [B, Hq, T, D].
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const mask = opts.mask ?? null;
  if (mask && mask.dtype !== q.dtype) throw new DTypeError(`attention: mask must be ${q.dtype} (1 = attend, 0 = pad), got ${mask.dtype}`);
  attentionDims(q, k, v, mask);
  const window = opts.window ?? 0;
  if (!Number.isSafeInteger(window) || window < 0) {
    throw new ShapeError(`attention: window must be a non-negative integer (0 = no window), got ${window}`);
  }
  const attrs = { causal: opts.causal ?? true, scale: opts.scale ?? 1 / Math.sqrt(q.shape[3]), hasMask: mask !== null, window };
  return apply('attention', ATTENTION, mask ? [q, k, v, mask] : [q, k, v], attrs);
}
