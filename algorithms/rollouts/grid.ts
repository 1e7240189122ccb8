/**
 * Rollouts as token grids. A rollout is its prompt's ids then its response's; a micro-batch of
 * rollouts is right-padded into ids [m, T] and scored by models/logprobs.ts as [m, T−1], where
 * column c holds the log-prob of token c+1. Response token j of row b therefore sits at column
 * P_b + j − 1 (P_b its prompt length); per-token quantities (old log-probs, values, advantages)
 * are laid out on the same columns, 0 elsewhere.
 */
import type { SequenceBatch } from '../../models/logprobs.js';

export interface RolloutTokens {
  promptIds: readonly number[];
  responseIds: readonly number[];
}

/** The micro-batch's sequences: ids right-padded with 0, lossMask 1 on the response tokens. */
export function sequenceBatch(rows: readonly RolloutTokens[]): SequenceBatch & { T: number } {
  const T = Math.max(...rows.map((r) => r.promptIds.length + r.responseIds.length));
  const ids = rows.map((r) => {
    const seq = [...r.promptIds, ...r.responseIds];
    return [...seq, ...new Array<number>(T - seq.length).fill(0)];
  });
  const lossMask = rows.map((r) => {
    const m = [...r.promptIds.map(() => 0), ...r.responseIds.map(() => 1)];
    return [...m, ...new Array<number>(T - m.length).fill(0)];
  });
  return { ids, lossMask, T };
}

/** Per-token arrays (one per row, one value per response token) → a flat grid [m, T−1]. */
export function toGrid(rows: readonly RolloutTokens[], T: number, perToken: (row: number) => ArrayLike<number>): Float64Array {
  const W = T - 1;
  const grid = new Float64Array(rows.length * W);
  rows.forEach((r, b) => {
    const v = perToken(b);
    if (v.length !== r.responseIds.length) throw new RangeError(`toGrid: row ${b} has ${r.responseIds.length} response tokens but ${v.length} values`);
    const start = b * W + r.promptIds.length - 1;
    for (let j = 0; j < v.length; j++) grid[start + j] = v[j];
  });
  return grid;
}

/** A grid [m, T−1] (as read from a tensor) → each row's values at its response tokens. */
export function fromGrid(rows: readonly RolloutTokens[], T: number, grid: ArrayLike<number>): number[][] {
  const W = T - 1;
  return rows.map((r, b) => {
    const start = b * W + r.promptIds.length - 1;
    return Array.from({ length: r.responseIds.length }, (_, j) => grid[start + j]);
  });
}

/** A per-row seed from the run's seed, the iteration and the row: a row's sample depends on nothing else. */
export function rolloutSeed(seed: number, iteration: number, row: number): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const v of [iteration, row]) {
    h = Math.imul(h ^ v, 0x85ebca6b) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
  }
  return h;
}
