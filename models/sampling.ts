/** Choosing the next token from one row of logits: greedy, temperature, top-k and top-p (nucleus). */
import type { Generator } from '../kernels/index.js';

export interface SamplingOptions {
  /** 0 = greedy (argmax). Default 1. */
  temperature?: number;
  /** Keep the k most likely tokens; 0 = off. Default 0. */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p (Holtzman et al. 2020); 1 = off. Default 1. */
  topP?: number;
}

export function validateSampling(o: SamplingOptions): void {
  const t = o.temperature ?? 1, k = o.topK ?? 0, p = o.topP ?? 1;
  if (!(t >= 0) || !Number.isFinite(t)) throw new RangeError(`sampling: temperature must be ≥ 0, got ${t}`);
  if (!Number.isInteger(k) || k < 0) throw new RangeError(`sampling: topK must be a non-negative integer, got ${k}`);
  if (!(p > 0 && p <= 1)) throw new RangeError(`sampling: topP must be in (0, 1], got ${p}`);
}

/** log-softmax of row[off … off+V) at `token`, in double precision. */
export function tokenLogprob(row: ArrayLike<number>, off: number, V: number, token: number): number {
  let m = -Infinity;
  for (let v = 0; v < V; v++) m = Math.max(m, row[off + v]);
  let z = 0;
  for (let v = 0; v < V; v++) z += Math.exp(row[off + v] - m);
  return row[off + token] - m - Math.log(z);
}

/**
 * The next token from logits row[off … off+V). Draws exactly one uniform from `gen` when sampling
 * (none when greedy), so a sequence's samples depend only on its own seed and history.
 */
export function chooseToken(row: ArrayLike<number>, off: number, V: number, o: SamplingOptions, gen: Generator): number {
  const temperature = o.temperature ?? 1;
  if (temperature === 0) {
    let best = 0;
    for (let v = 1; v < V; v++) if (row[off + v] > row[off + best]) best = v;
    return best;
  }
  const topK = o.topK ?? 0, topP = o.topP ?? 1;
  if (topK === 0 && topP >= 1) return sampleFull(row, off, V, temperature, gen);
  let ids = Array.from({ length: V }, (_, v) => v);
  if (topK > 0 || topP < 1) ids.sort((a, b) => row[off + b] - row[off + a] || a - b);
  if (topK > 0) ids = ids.slice(0, topK);
  let m = -Infinity;
  for (const v of ids) m = Math.max(m, row[off + v] / temperature);
  let weights = ids.map((v) => Math.exp(row[off + v] / temperature - m));
  if (topP < 1) {
    const total = weights.reduce((a, b) => a + b, 0);
    let cum = 0, keep = 0;
    while (keep < weights.length && cum < topP * total) cum += weights[keep++];
    ids = ids.slice(0, Math.max(1, keep));
    weights = weights.slice(0, ids.length);
  }
  let r = gen.uniform() * weights.reduce((a, b) => a + b, 0);
  for (let i = 0; i < ids.length; i++) if ((r -= weights[i]) < 0) return ids[i];
  return ids[ids.length - 1];
}

/**
 * Sampling from the whole vocabulary without allocating: the same draw and the same token as the
 * filtered path below with every id kept (weights exp(l/T − max), scanned in id order), in three
 * passes over the row and one reused buffer. Rollouts sample like this at every step of every row.
 */
let scratch = new Float64Array(0);

function sampleFull(row: ArrayLike<number>, off: number, V: number, temperature: number, gen: Generator): number {
  if (scratch.length < V) scratch = new Float64Array(V);
  const w = scratch;
  let m = -Infinity;
  for (let v = 0; v < V; v++) m = Math.max(m, row[off + v] / temperature);
  let total = 0;
  for (let v = 0; v < V; v++) total += (w[v] = Math.exp(row[off + v] / temperature - m));
  let r = gen.uniform() * total;
  for (let v = 0; v < V; v++) if ((r -= w[v]) < 0) return v;
  return V - 1;
}
