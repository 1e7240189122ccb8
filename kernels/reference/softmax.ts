/** Row-wise softmax and log-softmax over the last axis, with their gradients. */
import type { Storage } from '../backend.js';
import { arr } from './storage.js';

function rowMax(xs: ArrayLike<number>, base: number, n: number): number {
  let m = -Infinity;
  for (let j = 0; j < n; j++) {
    const v = xs[base + j]!;
    if (v > m || Number.isNaN(v)) m = v;
  }
  return m;
}

/** log Σ exp over one row, with max subtraction; −∞ for an empty or all −∞ row. */
export function rowLogSumExp(xs: ArrayLike<number>, base: number, n: number): number {
  const m = rowMax(xs, base, n);
  if (m === -Infinity) return -Infinity;
  let s = 0;
  for (let j = 0; j < n; j++) s += Math.exp(xs[base + j]! - m);
  return m + Math.log(s);
}

// x [rows, n] → out [rows, n]
export function softmax(x: Storage, out: Storage, rows: number, n: number): void {
  const xs = arr(x), o = arr(out);
  for (let r = 0; r < rows; r++) {
    const lse = rowLogSumExp(xs, r * n, n);
    for (let j = 0; j < n; j++) o[r * n + j] = Math.exp(xs[r * n + j]! - lse);
  }
}

// y, g [rows, n] → gx [rows, n]
export function softmaxBackward(y: Storage, g: Storage, gx: Storage, rows: number, n: number): void {
  const ys = arr(y), gs = arr(g), o = arr(gx);
  for (let r = 0; r < rows; r++) {
    let dot = 0;
    for (let j = 0; j < n; j++) dot += gs[r * n + j]! * ys[r * n + j]!;
    for (let j = 0; j < n; j++) o[r * n + j] = ys[r * n + j]! * (gs[r * n + j]! - dot);
  }
}

// x [rows, n] → out [rows, n]
export function logSoftmax(x: Storage, out: Storage, rows: number, n: number): void {
  const xs = arr(x), o = arr(out);
  for (let r = 0; r < rows; r++) {
    const lse = rowLogSumExp(xs, r * n, n);
    for (let j = 0; j < n; j++) o[r * n + j] = xs[r * n + j]! - lse;
  }
}

// y, g [rows, n] → gx [rows, n]
export function logSoftmaxBackward(y: Storage, g: Storage, gx: Storage, rows: number, n: number): void {
  const ys = arr(y), gs = arr(g), o = arr(gx);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let j = 0; j < n; j++) sum += gs[r * n + j]!;
    for (let j = 0; j < n; j++) o[r * n + j] = gs[r * n + j]! - Math.exp(ys[r * n + j]!) * sum;
  }
}
