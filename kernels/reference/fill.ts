/** fill, copy and cast: the storage-level kernels. */
import type { Storage } from '../backend.js';
import { arr, store } from './storage.js';

// out [n]
export function fill(out: Storage, n: number, value: number): void {
  for (let i = 0; i < n; i++) store(out, i, value);
}

// src [n] → dst [n], same dtype
export function copy(src: Storage, dst: Storage, n: number): void {
  arr(dst).set(arr(src).subarray(0, n));
}

// src [n] → dst [n], converting dtype (bf16 rounds to nearest even, i32 truncates)
export function cast(src: Storage, dst: Storage, n: number): void {
  const x = arr(src);
  for (let i = 0; i < n; i++) store(dst, i, x[i]!);
}
