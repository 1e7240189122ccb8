/** AdamW (Loshchilov & Hutter 2019, Algorithm 2), in PyTorch's order of operations. */
import type { Storage } from '../backend.js';
import { arr } from './storage.js';

// param, grad, m, v [n], updated in place
export function adamw(
  param: Storage, grad: Storage, m: Storage, v: Storage, n: number,
  lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number,
): void {
  const p = arr(param), g = arr(grad), ms = arr(m), vs = arr(v);
  const bc1 = 1 - Math.pow(beta1, step);
  const bc2Sqrt = Math.sqrt(1 - Math.pow(beta2, step));
  const stepSize = lr / bc1;
  for (let i = 0; i < n; i++) {
    p[i] = p[i]! * (1 - lr * weightDecay);
    ms[i] = beta1 * ms[i]! + (1 - beta1) * g[i]!;
    vs[i] = beta2 * vs[i]! + (1 - beta2) * g[i]! * g[i]!;
    p[i] = p[i]! - stepSize * (ms[i]! / (Math.sqrt(vs[i]!) / bc2Sqrt + eps));
  }
}
