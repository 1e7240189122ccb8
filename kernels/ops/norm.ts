/** RMSNorm and LayerNorm over the last axis, fused forward and backward. */
import { ShapeError, fmtShape } from '../errors.js';
import { alloc, apply, kernel } from '../op.js';
import type { OpSpec } from '../op.js';
import type { Tensor } from '../tensor.js';

interface EpsAttrs { eps: number }

function rowsOf(x: Tensor, w: Tensor, op: string): { rows: number; n: number } {
  const n = x.shape[x.rank - 1];
  if (x.rank < 1 || w.rank !== 1 || w.shape[0] !== n) {
    throw new ShapeError(`${op}: weight ${fmtShape(w.shape)} does not match the last axis of input ${fmtShape(x.shape)}`);
  }
  return { rows: n === 0 ? 0 : x.numel / n, n };
}

export const RMS_NORM: OpSpec<EpsAttrs> = {
  arity: 2,
  kernels: ['rmsNorm'],
  gradKernels: ['rmsNormBackward'],
  dtypes: 'float',
  forward(ctx) {
    const { backend, inputs: [x, w], attrs } = ctx;
    const { rows, n } = rowsOf(x, w, 'rmsNorm');
    const out = alloc(backend, x.shape, x.dtype); // [..., n]
    const rstd = alloc(backend, [rows], x.dtype); // [rows], saved for backward
    kernel(backend, 'rmsNorm', 'rmsNorm')(x.storageFor('rmsNorm'), w.storageFor('rmsNorm'), out.storageFor('rmsNorm'), rstd.storageFor('rmsNorm'), rows, n, attrs.eps);
    ctx.saved.push(rstd);
    return out;
  },
  backward(g, { backend, inputs: [x, w], saved: [rstd] }) {
    const { rows, n } = rowsOf(x, w, 'rmsNorm');
    const gx = alloc(backend, x.shape, x.dtype); // [..., n]
    const gw = alloc(backend, w.shape, w.dtype); // [n]
    const op = 'rmsNorm.backward';
    kernel(backend, 'rmsNormBackward', op)(
      x.storageFor(op), w.storageFor(op), rstd.storageFor(op), g.storageFor(op), gx.storageFor(op), gw.storageFor(op), rows, n,
    );
    return [gx, gw];
  },
};

/** RMSNorm (Zhang & Sennrich 2019, eq. 4) over the last axis: x / √(mean x² + eps) · w. */
export function rmsNorm(x: Tensor, weight: Tensor, eps = 1e-6): Tensor {
  return apply('rmsNorm', RMS_NORM, [x, weight], { eps });
}

export const LAYER_NORM: OpSpec<EpsAttrs> = {
  arity: 3,
  kernels: ['layerNorm'],
  gradKernels: ['layerNormBackward'],
  dtypes: 'float',
  forward(ctx) {
    const { backend, inputs: [x, w, b], attrs } = ctx;
    const { rows, n } = rowsOf(x, w, 'layerNorm');
    rowsOf(x, b, 'layerNorm');
    const out = alloc(backend, x.shape, x.dtype); // [..., n]
    const mean = alloc(backend, [rows], x.dtype); // [rows], saved
    const rstd = alloc(backend, [rows], x.dtype); // [rows], saved
    const op = 'layerNorm';
    kernel(backend, 'layerNorm', op)(
      x.storageFor(op), w.storageFor(op), b.storageFor(op), out.storageFor(op), mean.storageFor(op), rstd.storageFor(op), rows, n, attrs.eps,
    );
    ctx.saved.push(mean, rstd);
    return out;
  },
  backward(g, { backend, inputs: [x, w, b], saved: [mean, rstd] }) {
    const { rows, n } = rowsOf(x, w, 'layerNorm');
    const gx = alloc(backend, x.shape, x.dtype); // [..., n]
    const gw = alloc(backend, w.shape, w.dtype); // [n]
    const gb = alloc(backend, b.shape, b.dtype); // [n]
    const op = 'layerNorm.backward';
    kernel(backend, 'layerNormBackward', op)(
      x.storageFor(op), w.storageFor(op), mean.storageFor(op), rstd.storageFor(op), g.storageFor(op),
      gx.storageFor(op), gw.storageFor(op), gb.storageFor(op), rows, n,
    );
    return [gx, gw, gb];
  },
};

/** LayerNorm (Ba et al. 2016, eqs. 3–4) over the last axis. */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
  return apply('layerNorm', LAYER_NORM, [x, weight, bias], { eps });
}
