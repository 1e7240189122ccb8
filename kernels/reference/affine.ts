/** Scalar elementwise kernels: x·scale + shift, and x^p. */
import type { Storage } from '../backend.js';
import { arr } from './storage.js';

// x [n] → out [n]
export function affine(x: Storage, out: Storage, n: number, scale: number, shift: number): void {
  const xs = arr(x), o = arr(out);
  for (let i = 0; i < n; i++) o[i] = xs[i]! * scale + shift;
}

// x [n] → out [n]
export function powScalar(x: Storage, out: Storage, n: number, exponent: number): void {
  const xs = arr(x), o = arr(out);
  for (let i = 0; i < n; i++) o[i] = Math.pow(xs[i]!, exponent);
}
