/**
 * Data-stage shards on a real filesystem store: a committed shard (part, then marker) is returned
 * without work; a retried stage takes over an earlier run's committed shard (checked by sha256)
 * only when it was made from the same task and arguments; of two writers of one shard the first
 * to commit wins and the join gives its part; the join refuses a part that no longer matches its
 * marker.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { commitShard, mergeDataShards, runDataShard, shardFingerprint } from '../../activities/pipeline/data-stage.js';
import type { ShardMarker } from '../../activities/pipeline/data-stage.js';
import { ResidentPolicies } from '../../activities/pipeline/policies.js';
import { ResidentJudges } from '../../activities/score.js';
import { openStore } from '../../store/index.js';
import { RunStore } from '../../store/run-store.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'aligner-data-stage-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const store = new RunStore(openStore(`file://${path.join(tmp, 'store')}`), path.join(tmp, 'cache'));
const [policies, judges] = [new ResidentPolicies(), new ResidentJudges()];
// The task would fail on these arguments (no prompts, no model): any work at all would throw.
const shardArgs = { task: 'preference-pairs' as const, args: {}, shard: 0, shards: 1 };
const sums = (n: number) => ({ pairs: n, ties: 1, samples: 8, rewardSum: 2 });
const jsonl = (lines: string[]) => Buffer.from(lines.map((l) => `${l}\n`).join(''));

function commit(runId: string, lines: string[], fingerprint = shardFingerprint(shardArgs)): Promise<ShardMarker> {
  return commitShard(store, { runId, shard: 0 }, jsonl(lines), { records: lines.length, sums: sums(lines.length), fingerprint, seconds: 1 });
}

describe('data-stage shards', () => {
  it('a committed shard is returned without work; a retried stage takes over an earlier run\'s shard', async () => {
    await commit('s.pairs-1', ['{"a":1}', '{"a":2}']);
    expect(await runDataShard(store, policies, judges, { runId: 's.pairs-1', ...shardArgs })).toMatchObject({ shard: 0, records: 2 });
    const taken = await runDataShard(store, policies, judges, { runId: 's.pairs-1.r1', ...shardArgs, previousRuns: ['s.pairs-1'] });
    expect(taken).toMatchObject({ shard: 0, records: 2, sums: { pairs: 2 }, seconds: 0 });
    const merged = await mergeDataShards(store, { runId: 's.pairs-1.r1', task: 'preference-pairs', args: {}, parts: [taken] });
    expect(merged.records).toBe(2);
    expect(merged.metrics).toMatchObject({ pairs: 2, ties: 1, meanReward: 0.25 });
    expect((await store.store.get('runs/s.pairs-1.r1/output/data.jsonl')).toString()).toBe('{"a":1}\n{"a":2}\n');
  });

  it('a shard made from other arguments is not taken over: the work is done again', async () => {
    await commit('u.pairs-1', ['{"c":1}'], shardFingerprint({ ...shardArgs, args: { prompts: 'other.jsonl' } }));
    await expect(runDataShard(store, policies, judges, { runId: 'u.pairs-1.r1', ...shardArgs, previousRuns: ['u.pairs-1'] })).rejects.toThrow();
  });

  it('two writers of one shard: the first commit wins, the second gets its marker, the join gives its part', async () => {
    const first = await commit('w.pairs-1', ['{"w":1}']);
    const second = await commit('w.pairs-1', ['{"w":2}', '{"w":3}']);
    expect(second).toEqual(first);
    const merged = await mergeDataShards(store, { runId: 'w.pairs-1', task: 'preference-pairs', args: {}, parts: [{ shard: 0, records: 2, sums: sums(2), seconds: 1 }] });
    expect(merged.records).toBe(1);
    expect((await store.store.get('runs/w.pairs-1/output/data.jsonl')).toString()).toBe('{"w":1}\n');
  });

  it('the join refuses a part changed after its marker was written', async () => {
    const m = await commit('t.pairs-1', ['{"b":1}']);
    writeFileSync(path.join(tmp, 'store', m.part), '{"b":2}\n');
    const part = { shard: 0, records: 1, sums: {}, seconds: 0 };
    await expect(mergeDataShards(store, { runId: 't.pairs-1', task: 'preference-pairs', args: {}, parts: [part] })).rejects.toThrow(/part 0 does not match its marker/);
  });
});
