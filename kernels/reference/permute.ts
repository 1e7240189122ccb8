/** General axis permutation into a contiguous output. */
import type { Storage } from '../backend.js';
import { arr } from './storage.js';

// x [shape] → out [shape[perm[0]], shape[perm[1]], …]
export function permute(x: Storage, out: Storage, shape: readonly number[], perm: readonly number[]): void {
  const xs = arr(x), o = arr(out);
  const rank = shape.length;
  const inStrides = new Array<number>(rank);
  let s = 1;
  for (let d = rank - 1; d >= 0; d--) {
    inStrides[d] = s;
    s *= shape[d]!;
  }
  const outShape = perm.map((p) => shape[p]!);
  const strides = perm.map((p) => inStrides[p]!); // input stride of each output axis
  const n = s;
  const index = new Array<number>(rank).fill(0);
  let src = 0;
  for (let i = 0; i < n; i++) {
    o[i] = xs[src]!;
    for (let d = rank - 1; d >= 0; d--) {
      index[d]!++;
      src += strides[d]!;
      if (index[d]! < outShape[d]!) break;
      src -= strides[d]! * outShape[d]!;
      index[d] = 0;
    }
  }
}
