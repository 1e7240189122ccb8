/** How a stage is cut over a role's workers (config.parallel): every row once, whole micro-batches, parts in ledger order. */
import { describe, expect, it } from 'vitest';
import { blockOf, mergeStageResults, ownsShard } from '../../activities/online/split.js';
import { partPrefix, stageRef } from '../../store/rollout-ledger.js';
import type { StageResult } from '../../activities/online/types.js';

describe('online stage splits', () => {
  it('blocks of whole micro-batches cover every row once, in order, for any row count and part count', () => {
    for (const rows of [0, 1, 7, 16, 17, 64, 100]) {
      for (const mb of [1, 4, 8]) {
        for (const of of [1, 2, 3, 5]) {
          const blocks = Array.from({ length: of }, (_, index) => blockOf(rows, mb, { index, of }));
          expect(blocks[0].start).toBe(0);
          expect(blocks.at(-1)!.end).toBe(rows);
          blocks.forEach((b, k) => {
            if (k > 0) expect(b.start).toBe(blocks[k - 1].end);
            // A block starts on a micro-batch boundary, so its micro-batches are the unsplit stage's.
            expect(b.start % mb === 0 || b.start === rows).toBe(true);
          });
          const sizes = blocks.map((b) => Math.ceil((b.end - b.start) / mb));
          expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
        }
      }
    }
    // 64 rows in micro-batches of 4 over 3 parts: 16 micro-batches dealt 6, 5, 5.
    expect([0, 1, 2].map((index) => blockOf(64, 4, { index, of: 3 }))).toEqual([{ start: 0, end: 24 }, { start: 24, end: 44 }, { start: 44, end: 64 }]);
    expect(blockOf(10, 4, null)).toEqual({ start: 0, end: 10 });
  });

  it('generation shards go round-robin over the replicas', () => {
    const owners = Array.from({ length: 8 }, (_, s) => [0, 1, 2].find((index) => ownsShard({ index, of: 3 }, s)));
    expect(owners).toEqual([0, 1, 2, 0, 1, 2, 0, 1]);
    expect(ownsShard(undefined, 5)).toBe(true);
  });

  it('merging puts the parts in ledger order, whatever order the calls returned in, and equals the unsplit stage\'s ref', () => {
    const part = (k: number) => ({ prefix: partPrefix('run-a', 2, 'generate', k), sha256: `sha${k}`, records: 8 });
    const result = (parts: number[], seconds: number, drift?: number): StageResult => ({
      ref: stageRef('run-a', 2, 'generate', parts.map(part)), seconds, written: parts.length, ...(drift === undefined ? {} : { metrics: { samplerDrift: drift } }),
    });
    const merged = mergeStageResults('run-a', 2, 'generate', [result([1, 3], 2.5, 1e-6), result([0, 2, 4], 4, 3e-6)]);
    expect(merged.ref).toEqual(stageRef('run-a', 2, 'generate', [0, 1, 2, 3, 4].map(part)));
    expect(merged.ref.records).toBe(40);
    expect(merged.seconds).toBe(4);
    expect(merged.written).toBe(5);
    expect(merged.metrics).toEqual({ samplerDrift: 3e-6 });
    expect(mergeStageResults('run-a', 2, 'generate', [result([], 0), result([0], 1)]).metrics).toBeUndefined();
  });
});
