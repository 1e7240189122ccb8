/** Rotary position embedding (Su et al. 2021, eq. 34), in the "rotate half" layout of Hugging Face Llama. */
import type { Storage } from '../backend.js';
import { arr } from './storage.js';

// x [B, H, T, D], cos/sin [T, D/2] or [B, T, D/2] → out [B, H, T, D]
export function rope(
  x: Storage, cos: Storage, sin: Storage, out: Storage,
  B: number, H: number, T: number, D: number, cosPerBatch: boolean, inverse: boolean,
): void {
  const xs = arr(x), cs = arr(cos), ss = arr(sin), o = arr(out);
  const half = D / 2;
  const sign = inverse ? -1 : 1;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < T; t++) {
        const base = ((b * H + h) * T + t) * D;
        const cbase = ((cosPerBatch ? b * T : 0) + t) * half;
        for (let i = 0; i < half; i++) {
          const c = cs[cbase + i]!, s = sign * ss[cbase + i]!;
          const x1 = xs[base + i]!, x2 = xs[base + i + half]!;
          o[base + i] = x1 * c - x2 * s;
          o[base + i + half] = x2 * c + x1 * s;
        }
      }
    }
  }
}
