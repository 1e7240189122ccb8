/**
 * Element types and devices.
 *
 * `f64` exists only on the reference backend, for finite-difference gradient checks.
 * `bf16` is a storage type: compute ops take f32, and `cast` converts (round to nearest even).
 * `i32` holds token ids and indices.
 */
export type DType = 'f32' | 'f64' | 'bf16' | 'i32';
export type Device = 'cpu' | `cuda:${number}`;

export const FLOAT_DTYPES: ReadonlySet<DType> = new Set<DType>(['f32', 'f64', 'bf16']);

export function bytesPerElement(dtype: DType): number {
  switch (dtype) {
    case 'f64':
      return 8;
    case 'f32':
    case 'i32':
      return 4;
    case 'bf16':
      return 2;
  }
}

export function isFloat(dtype: DType): boolean {
  return FLOAT_DTYPES.has(dtype);
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** Round an f32 value to the nearest bf16 (ties to even), returned as a number. NaN stays NaN. */
export function roundToBf16(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0]!;
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x007fffff) !== 0) return NaN;
  const rounded = (bits + 0x7fff + ((bits >>> 16) & 1)) & 0xffff0000;
  u32Scratch[0] = rounded >>> 0;
  return f32Scratch[0]!;
}
