/**
 * Deterministic data order: epoch e visits the examples in a permutation seeded by (seed, e), and
 * optimizer step k takes positions k·G … k·G+G−1 of the concatenated epochs. A run's data cursor
 * is therefore just its step, which is what makes resume exact.
 */
import { Generator } from '../../kernels/index.js';

/** 0 … n−1 in a Fisher-Yates order drawn from a Generator seeded with `generatorSeed`. */
export function shuffled(n: number, generatorSeed: number): number[] {
  const g = new Generator(generatorSeed >>> 0);
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = g.int(i + 1);
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

const permutation = (n: number, seed: number, epoch: number): number[] => shuffled(n, seed * 1_000_003 + epoch);

/** Example indices of optimizer step `step` (global batch size G over n examples). */
export function batchIndices(n: number, G: number, seed: number, step: number): number[] {
  const out: number[] = [];
  let cache: { epoch: number; perm: number[] } | null = null;
  for (let pos = step * G; pos < (step + 1) * G; pos++) {
    const epoch = Math.floor(pos / n);
    if (!cache || cache.epoch !== epoch) cache = { epoch, perm: permutation(n, seed, epoch) };
    out.push(cache.perm[pos % n]);
  }
  return out;
}

/** Split a global batch into micro-batches of size m (the last may be smaller). */
export function microBatches<T>(items: readonly T[], m: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += m) out.push(items.slice(i, i + m));
  return out;
}

/** Right-pad rows to a common length (pad id 0, mask 0). */
export function padRows(rows: readonly { ids: number[]; lossMask: number[] }[]): { ids: number[][]; lossMask: number[][] } {
  const T = Math.max(...rows.map((r) => r.ids.length));
  return {
    ids: rows.map((r) => [...r.ids, ...new Array<number>(T - r.ids.length).fill(0)]),
    lossMask: rows.map((r) => [...r.lossMask, ...new Array<number>(T - r.lossMask.length).fill(0)]),
  };
}

/** Tokens the loss trains on in a row (lossMask[0] never counts: the first token has no context). */
export const trainedTokens = (r: { lossMask: number[] }): number => r.lossMask.slice(1).reduce((a, b) => a + b, 0);
