/** RMSNorm (Zhang & Sennrich 2019, eq. 4): y = x / rms(x) · w. */
import type { Storage } from '../backend.js';
import { arr } from './storage.js';

// x [rows, n], w [n] → out [rows, n], rstd [rows]
export function rmsNorm(x: Storage, w: Storage, out: Storage, rstd: Storage, rows: number, n: number, eps: number): void {
  const xs = arr(x), ws = arr(w), o = arr(out), rs = arr(rstd);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let j = 0; j < n; j++) ss += xs[r * n + j]! ** 2;
    const inv = 1 / Math.sqrt(ss / n + eps);
    rs[r] = inv;
    for (let j = 0; j < n; j++) o[r * n + j] = xs[r * n + j]! * inv * ws[j]!;
  }
}

// x, g [rows, n], w [n], rstd [rows] → gx [rows, n], gw [n]
export function rmsNormBackward(x: Storage, w: Storage, rstd: Storage, g: Storage, gx: Storage, gw: Storage, rows: number, n: number): void {
  const xs = arr(x), ws = arr(w), rs = arr(rstd), gs = arr(g), o = arr(gx), gws = arr(gw);
  gws.fill(0, 0, n);
  for (let r = 0; r < rows; r++) {
    const inv = rs[r]!;
    let dot = 0; // Σ_j ĝ_j x̂_j
    for (let j = 0; j < n; j++) dot += gs[r * n + j]! * ws[j]! * xs[r * n + j]! * inv;
    const meanDot = dot / n;
    for (let j = 0; j < n; j++) {
      const xhat = xs[r * n + j]! * inv;
      o[r * n + j] = inv * (gs[r * n + j]! * ws[j]! - xhat * meanDot);
      gws[j] += gs[r * n + j]! * xhat;
    }
  }
}
