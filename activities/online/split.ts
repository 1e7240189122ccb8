/**
 * How a stage is cut when a role spreads over several workers (config.parallel): generation by
 * its ledger shards, round-robin; log-probs and scores in contiguous blocks of whole micro-batches.
 * Each cut keeps every row in the batch it has without a split, so the numbers are the same bit
 * for bit, and the parts concatenated in index order are the stage as one worker writes it.
 */
import { stageRef } from '../../store/rollout-ledger.js';
import type { IterationRequest, StageName, StageResult } from './types.js';

export type Split = NonNullable<IterationRequest['split']>;

/** Whether generation shard `shard` is this call's. */
export const ownsShard = (split: Split | null | undefined, shard: number): boolean => !split || shard % split.of === split.index;

/**
 * The rows [start, end) of part `split.index`: the micro-batches of `microBatch` rows dealt in
 * contiguous blocks, the first parts one micro-batch longer when they do not divide evenly.
 */
export function blockOf(rows: number, microBatch: number, split: Split | null | undefined): { start: number; end: number } {
  if (!split) return { start: 0, end: rows };
  const micros = Math.ceil(rows / microBatch);
  const at = (k: number) => Math.min(rows, microBatch * (Math.floor(micros / split.of) * k + Math.min(k, micros % split.of)));
  return { start: at(split.index), end: at(split.index + 1) };
}

/**
 * One stage result from its parts' (each a split's): the parts in ledger order, the wall time of
 * the slowest, and each metric's largest value (the stages' metrics are maxima: samplerDrift).
 */
export function mergeStageResults(runId: string, iteration: number, stage: StageName, results: readonly StageResult[]): StageResult {
  const parts = results.flatMap((r) => r.ref.parts).sort((a, b) => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0));
  const metrics: Record<string, number> = {};
  for (const r of results) for (const [k, v] of Object.entries(r.metrics ?? {})) metrics[k] = Math.max(metrics[k] ?? -Infinity, v);
  return {
    ref: stageRef(runId, iteration, stage, parts), seconds: Math.max(0, ...results.map((r) => r.seconds)),
    written: results.reduce((n, r) => n + r.written, 0), ...(Object.keys(metrics).length ? { metrics } : {}),
  };
}
