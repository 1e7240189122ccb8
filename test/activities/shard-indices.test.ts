/** Which prompts a sampling round and shard take: seeded, partitioned by shards, reshuffled at each pass over the file. */
import { describe, expect, it } from 'vitest';
import { shardIndices } from '../../activities/pipeline/sampling.js';
import { shuffled } from '../../algorithms/train/batching.js';

const take = (count: number, round: number, perRound: number, perShard: number, seed = 7) =>
  Array.from({ length: Math.ceil(perRound / perShard) }, (_, shard) => shardIndices(count, { seed, round, perRound, perShard, shard })).flat();

describe('shardIndices', () => {
  it('round 1 is the first block of the seeded shuffle; its shards partition it', () => {
    expect(take(10, 1, 4, 3)).toEqual(shuffled(10, 7).slice(0, 4));
    expect(shardIndices(10, { seed: 7, round: 1, perRound: 4, perShard: 3, shard: 1 })).toEqual(shuffled(10, 7).slice(3, 4));
  });

  it('rounds that cover the whole file each pass see every prompt, in a new order each pass', () => {
    const [r1, r2, r3] = [1, 2, 3].map((r) => take(6, r, 6, 2));
    for (const r of [r1, r2, r3]) expect([...r].sort()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(r2).not.toEqual(r1);
    expect(r3).not.toEqual(r2);
  });

  it('rounds that wrap across passes use every prompt once per pass', () => {
    const twoPasses = [1, 2, 3].flatMap((r) => take(6, r, 4, 4)); // 12 draws = 2 passes over 6 prompts
    const counts = new Map<number, number>();
    for (const i of twoPasses) counts.set(i, (counts.get(i) ?? 0) + 1);
    expect([...counts.values()]).toEqual([2, 2, 2, 2, 2, 2]);
  });
});
