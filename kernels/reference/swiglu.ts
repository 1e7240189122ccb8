/** SwiGLU gating (Shazeer 2020, eq. 6): silu(gate) · up. */
import type { Storage } from '../backend.js';
import { arr } from './storage.js';

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

// gate, up [n] → out [n]
export function swiglu(gate: Storage, up: Storage, out: Storage, n: number): void {
  const gs = arr(gate), us = arr(up), o = arr(out);
  for (let i = 0; i < n; i++) o[i] = gs[i]! * sigmoid(gs[i]!) * us[i]!;
}

// gate, up, g [n] → ggate, gup [n]
export function swigluBackward(gate: Storage, up: Storage, g: Storage, ggate: Storage, gup: Storage, n: number): void {
  const gs = arr(gate), us = arr(up), d = arr(g), og = arr(ggate), ou = arr(gup);
  for (let i = 0; i < n; i++) {
    const x = gs[i]!, s = sigmoid(x);
    og[i] = d[i]! * us[i]! * s * (1 + x * (1 - s));
    ou[i] = d[i]! * x * s;
  }
}
