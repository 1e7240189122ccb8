/**
 * Data parallel for the offline recipes: every rank reads the same global batch of step k (the
 * deterministic order of batching.ts), trains on its own contiguous share of it, and the
 * gradients are summed over the group in buckets while the last micro-batch's backward runs.
 * Losses are already each micro-batch's share of the global mean, so the sum over ranks is the
 * loss of the whole batch; a recipe metric is summed when it is such a share too (its
 * MetricSpec.dataParallel), else averaged over ranks.
 */
import type { GradBuckets, ProcessGroup, ShardedAdamW } from '../../kernels/distributed/index.js';
import { dispose, tensor } from '../../kernels/index.js';
import { ConfigError } from '../errors.js';
import type { MetricSpec, Metrics } from '../recipes/types.js';
import { microBatches } from './batching.js';

/** One rank's part in a data-parallel step. */
export interface DataParallel {
  group: ProcessGroup;
  buckets: GradBuckets;
  /** The sharded optimizer (ZeRO-1) when the run asks for one; else every rank runs the full AdamW. */
  zero: ShardedAdamW | null;
}

/** Rank `rank`'s contiguous share of `items`; the global batch must divide by the group size. */
export function shardOf<T>(items: readonly T[], rank: number, world: number): T[] {
  if (items.length % world !== 0) {
    throw new ConfigError(`trainer.globalBatchSize (${items.length}) must divide by parallel.dp (${world})`);
  }
  const n = items.length / world;
  return items.slice(rank * n, (rank + 1) * n);
}

/**
 * The micro-batches a training pass runs: this rank's share in micro-batches of `microBatch`, or
 * all of `items` without data parallel. The gradient buckets are armed just before the last one
 * is handed out, so its backward starts the reduction.
 */
export function* trainingMicroBatches<T>(items: readonly T[], microBatch: number, dp: DataParallel | null | undefined): Generator<T[]> {
  const micros = microBatches(dp ? shardOf(items, dp.group.rank, dp.group.world) : items, microBatch);
  for (let i = 0; i < micros.length; i++) {
    if (dp && i === micros.length - 1) dp.buckets.arm();
    yield micros[i];
  }
}

/**
 * Sum of the ranks' losses (each a share of the global mean) and the mean of their metrics, the
 * same on every rank. The values travel as the bytes of f64s and are summed in rank order here,
 * so the loss is the one DP=1 reports when each rank runs one micro-batch.
 */
export async function reduceStepOutput(dp: DataParallel, loss: number, metrics: Metrics, specs: Record<string, MetricSpec> = {}): Promise<{ loss: number; metrics: Metrics }> {
  const keys = Object.keys(metrics).sort();
  const mine = Float64Array.from([loss, ...keys.map((k) => metrics[k])]);
  // As i32 words: a float view would canonicalise NaN patterns and corrupt the bytes.
  const t = tensor(new Int32Array(mine.buffer), [2 * mine.length], { dtype: 'i32' }); // [2·values] the f64 bytes
  const all = await dp.group.allGather(t); // [world, 2·values]
  const bytes = Int32Array.from(await all.data());
  dispose([t, all]);
  const ranks = new Float64Array(bytes.buffer, bytes.byteOffset, dp.group.world * mine.length);
  const sums = mine.map((_, j) => {
    let s = ranks[j];
    for (let r = 1; r < dp.group.world; r++) s += ranks[r * mine.length + j];
    return s;
  });
  return { loss: sums[0], metrics: Object.fromEntries(keys.map((k, i) => [k, specs[k]?.dataParallel === 'sum' ? sums[i + 1] : sums[i + 1] / dp.group.world])) };
}
