/** Reductions over the middle axis of an [outer, n, inner] view. */
import type { Storage } from '../backend.js';
import { arr } from './storage.js';

// x [outer, n, inner] → out [outer, inner]
export function reduceSum(x: Storage, out: Storage, outer: number, n: number, inner: number): void {
  const xs = arr(x), o = arr(out);
  for (let p = 0; p < outer; p++) {
    for (let j = 0; j < inner; j++) {
      let acc = 0;
      for (let i = 0; i < n; i++) acc += xs[(p * n + i) * inner + j]!;
      o[p * inner + j] = acc;
    }
  }
}

// x [outer, n, inner] → out [outer, inner]
export function reduceMax(x: Storage, out: Storage, outer: number, n: number, inner: number): void {
  const xs = arr(x), o = arr(out);
  for (let p = 0; p < outer; p++) {
    for (let j = 0; j < inner; j++) {
      let best = -Infinity;
      for (let i = 0; i < n; i++) {
        const v = xs[(p * n + i) * inner + j]!;
        if (v > best || Number.isNaN(v)) best = v;
        if (Number.isNaN(best)) break;
      }
      o[p * inner + j] = best;
    }
  }
}

// x [outer, n, inner], y, g [outer, inner] → gx [outer, n, inner]: the gradient goes to the first argmax
export function reduceMaxBackward(x: Storage, y: Storage, g: Storage, gx: Storage, outer: number, n: number, inner: number): void {
  const xs = arr(x), ys = arr(y), gs = arr(g), o = arr(gx);
  o.fill(0, 0, outer * n * inner);
  for (let p = 0; p < outer; p++) {
    for (let j = 0; j < inner; j++) {
      const target = ys[p * inner + j]!;
      for (let i = 0; i < n; i++) {
        const v = xs[(p * n + i) * inner + j]!;
        if (v === target || (Number.isNaN(target) && Number.isNaN(v))) {
          o[(p * n + i) * inner + j] = gs[p * inner + j]!;
          break;
        }
      }
    }
  }
}
