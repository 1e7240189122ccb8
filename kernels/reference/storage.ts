/**
 * Storage of the reference backend: plain typed arrays on the JS heap.
 * bf16 is kept in a Float32Array whose values are always rounded to bf16.
 */
import type { Storage } from '../backend.js';
import type { DType } from '../dtype.js';
import { roundToBf16 } from '../dtype.js';

export type RefArray = Float64Array | Float32Array | Int32Array;

export interface RefStorage extends Storage {
  readonly data: RefArray;
}

export function makeArray(dtype: DType, numel: number): RefArray {
  switch (dtype) {
    case 'f64':
      return new Float64Array(numel);
    case 'f32':
    case 'bf16':
      return new Float32Array(numel);
    case 'i32':
      return new Int32Array(numel);
  }
}

/** The typed array behind a storage that the reference backend allocated. */
export function arr(s: Storage): RefArray {
  return (s as RefStorage).data;
}

/** Write one value, rounding as the storage dtype requires. */
export function store(s: Storage, i: number, v: number): void {
  const data = (s as RefStorage).data;
  if (s.dtype === 'bf16') data[i] = roundToBf16(v);
  else if (s.dtype === 'i32') data[i] = Number.isFinite(v) ? Math.trunc(v) : 0;
  else data[i] = v;
}
