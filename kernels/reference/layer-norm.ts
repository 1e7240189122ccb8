/** LayerNorm (Ba et al. 2016, eqs. 3–4), biased variance as in PyTorch. */
import type { Storage } from '../backend.js';
import { arr } from './storage.js';

// x [rows, n], w, b [n] → out [rows, n], mean [rows], rstd [rows]
export function layerNorm(
  x: Storage, w: Storage, b: Storage, out: Storage, mean: Storage, rstd: Storage, rows: number, n: number, eps: number,
): void {
  const xs = arr(x), ws = arr(w), bs = arr(b), o = arr(out), ms = arr(mean), rs = arr(rstd);
  for (let r = 0; r < rows; r++) {
    let mu = 0;
    for (let j = 0; j < n; j++) mu += xs[r * n + j]!;
    mu /= n;
    let v = 0;
    for (let j = 0; j < n; j++) v += (xs[r * n + j]! - mu) ** 2;
    const inv = 1 / Math.sqrt(v / n + eps);
    ms[r] = mu;
    rs[r] = inv;
    for (let j = 0; j < n; j++) o[r * n + j] = (xs[r * n + j]! - mu) * inv * ws[j]! + bs[j]!;
  }
}

// x, g [rows, n], w [n], mean, rstd [rows] → gx [rows, n], gw, gb [n]
export function layerNormBackward(
  x: Storage, w: Storage, mean: Storage, rstd: Storage, g: Storage, gx: Storage, gw: Storage, gb: Storage, rows: number, n: number,
): void {
  const xs = arr(x), ws = arr(w), ms = arr(mean), rs = arr(rstd), gs = arr(g), o = arr(gx), gws = arr(gw), gbs = arr(gb);
  gws.fill(0, 0, n);
  gbs.fill(0, 0, n);
  for (let r = 0; r < rows; r++) {
    const mu = ms[r]!, inv = rs[r]!;
    let sumG = 0, sumGX = 0;
    for (let j = 0; j < n; j++) {
      const gh = gs[r * n + j]! * ws[j]!;
      sumG += gh;
      sumGX += gh * (xs[r * n + j]! - mu) * inv;
    }
    for (let j = 0; j < n; j++) {
      const xhat = (xs[r * n + j]! - mu) * inv;
      o[r * n + j] = inv * (gs[r * n + j]! * ws[j]! - sumG / n - xhat * sumGX / n);
      gws[j] += gs[r * n + j]! * xhat;
      gbs[j] += gs[r * n + j]!;
    }
  }
}
