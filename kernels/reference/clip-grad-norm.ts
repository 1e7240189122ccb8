/** Global gradient-norm clipping (Pascanu et al. 2013, Algorithm 1), over all tensors at once. */
import type { Storage } from '../backend.js';
import { arr } from './storage.js';

// grads: tensors of sizes[t] elements, scaled in place → out [1] = the norm before clipping
export function clipGradNorm(grads: readonly Storage[], sizes: readonly number[], maxNorm: number, out: Storage): void {
  let ss = 0;
  grads.forEach((g, t) => {
    const gs = arr(g);
    for (let i = 0; i < sizes[t]!; i++) ss += gs[i]! * gs[i]!;
  });
  const norm = Math.sqrt(ss);
  arr(out)[0] = norm;
  if (!(norm > maxNorm)) return;
  const coef = maxNorm / (norm + 1e-6);
  grads.forEach((g, t) => {
    const gs = arr(g);
    for (let i = 0; i < sizes[t]!; i++) gs[i] = gs[i]! * coef;
  });
}
