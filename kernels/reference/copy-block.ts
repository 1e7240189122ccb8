/** Block copy along a middle axis: the one kernel behind slice, concat and their gradients. */
import type { Storage } from '../backend.js';
import { arr } from './storage.js';

// src [outer, srcAxis, inner] rows srcOffset… → dst [outer, dstAxis, inner] rows dstOffset…, len rows each
export function copyBlock(
  src: Storage, dst: Storage, outer: number, len: number, inner: number,
  srcAxis: number, srcOffset: number, dstAxis: number, dstOffset: number,
): void {
  const s = arr(src), d = arr(dst);
  for (let o = 0; o < outer; o++) {
    const from = (o * srcAxis + srcOffset) * inner;
    const to = (o * dstAxis + dstOffset) * inner;
    d.set(s.subarray(from, from + len * inner), to);
  }
}
