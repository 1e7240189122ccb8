/**
 * Rotary position tables (Su et al. 2021, eq. 15), with Llama 3.1's frequency-dependent scaling
 * (low frequencies slowed by `factor`, high ones kept, a smooth ramp between) and linear scaling.
 */
import { tensor } from '../kernels/index.js';
import type { CreateOptions, Tensor } from '../kernels/index.js';
import type { RopeScaling } from './config.js';

/** Inverse frequencies θ^(−2i/D), i < D/2, after scaling. */
export function inverseFrequencies(D: number, theta: number, scaling: RopeScaling | null = null): Float64Array {
  const half = D / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = Math.pow(theta, (-2 * i) / D);
  if (scaling?.type === 'linear') {
    for (let i = 0; i < half; i++) inv[i] /= scaling.factor;
  } else if (scaling?.type === 'llama3') {
    const { factor } = scaling;
    const low = scaling.lowFreqFactor ?? 1, high = scaling.highFreqFactor ?? 4;
    const original = scaling.originalMaxPositionEmbeddings ?? 8192;
    const lowWavelen = original / low, highWavelen = original / high;
    for (let i = 0; i < half; i++) {
      const wavelen = (2 * Math.PI) / inv[i];
      if (wavelen > lowWavelen) inv[i] /= factor;
      else if (wavelen >= highWavelen) {
        const smooth = (original / wavelen - low) / (high - low);
        inv[i] = (1 - smooth) * (inv[i] / factor) + smooth * inv[i];
      }
    }
  }
  return inv;
}

/**
 * cos/sin tables for explicit positions: positions[b][t] → tensors [B, T, D/2]
 * (or [T, D/2] when a single row of positions is given).
 */
export function ropeTablesFor(positions: readonly (readonly number[])[], inv: Float64Array, opts: CreateOptions = {}, shared = false): { cos: Tensor; sin: Tensor } {
  const half = inv.length;
  const rows = shared ? [positions[0]] : positions;
  const T = rows[0]?.length ?? 0;
  const cos = new Float64Array(rows.length * T * half), sin = new Float64Array(rows.length * T * half);
  rows.forEach((row, b) => {
    row.forEach((p, t) => {
      for (let i = 0; i < half; i++) {
        const angle = p * inv[i];
        cos[(b * T + t) * half + i] = Math.cos(angle);
        sin[(b * T + t) * half + i] = Math.sin(angle);
      }
    });
  });
  const shape = shared ? [T, half] : [rows.length, T, half];
  return { cos: tensor(cos, shape, opts), sin: tensor(sin, shape, opts) };
}
