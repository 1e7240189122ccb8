/** Broadcasting elementwise binary ops, driven by per-input strides (0 on broadcast axes). */
import type { BinaryKind, Storage } from '../backend.js';
import { arr } from './storage.js';

export function binaryValue(kind: BinaryKind, a: number, b: number): number {
  switch (kind) {
    case 'add': return a + b;
    case 'sub': return a - b;
    case 'mul': return a * b;
    case 'div': return a / b;
    case 'maximum': return Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.max(a, b);
    case 'minimum': return Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.min(a, b);
  }
}

// a, b broadcast to outShape → out [∏ outShape]
export function binary(
  kind: BinaryKind, a: Storage, b: Storage, out: Storage,
  outShape: readonly number[], aStrides: readonly number[], bStrides: readonly number[],
): void {
  const as = arr(a), bs = arr(b), o = arr(out);
  const rank = outShape.length;
  const n = outShape.reduce((p, d) => p * d, 1);
  const index = new Array<number>(rank).fill(0);
  let ia = 0, ib = 0;
  for (let i = 0; i < n; i++) {
    o[i] = binaryValue(kind, as[ia]!, bs[ib]!);
    // odometer increment of the multi-index, updating both input offsets
    for (let d = rank - 1; d >= 0; d--) {
      index[d]!++;
      ia += aStrides[d]!;
      ib += bStrides[d]!;
      if (index[d]! < outShape[d]!) break;
      ia -= aStrides[d]! * outShape[d]!;
      ib -= bStrides[d]! * outShape[d]!;
      index[d] = 0;
    }
  }
}
