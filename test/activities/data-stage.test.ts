/**
 * Data-stage shards on a real filesystem store: a committed shard (part, then marker) is returned
 * without work; a retried stage takes over an earlier run's committed shard (checked by sha256);
 * the join refuses a part that no longer matches its marker.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mergeDataShards, runDataShard } from '../../activities/pipeline/data-stage.js';
import { ResidentPolicies } from '../../activities/pipeline/policies.js';
import { ResidentJudges } from '../../activities/score.js';
import { sha256Hex } from '../../store/hashing.js';
import { openStore } from '../../store/index.js';
import { RunStore } from '../../store/run-store.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'aligner-data-stage-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const store = new RunStore(openStore(`file://${path.join(tmp, 'store')}`), path.join(tmp, 'cache'));
const [policies, judges] = [new ResidentPolicies(), new ResidentJudges()];

async function commit(runId: string, k: number, lines: string[]): Promise<void> {
  const bytes = Buffer.from(lines.map((l) => `${l}\n`).join(''));
  const name = `part-${String(k).padStart(5, '0')}`;
  await store.store.put(`runs/${runId}/output/${name}.jsonl`, bytes);
  await store.putJson(`runs/${runId}/output/${name}.json`, { records: lines.length, sums: { pairs: lines.length, ties: 1, samples: 8, rewardSum: 2 }, sha256: sha256Hex(bytes), seconds: 1 });
}

describe('data-stage shards', () => {
  it('a committed shard is returned without work; a retried stage takes over an earlier run\'s shard', async () => {
    await commit('s.pairs-1', 0, ['{"a":1}', '{"a":2}']);
    // The task would fail on these arguments: any work at all would throw.
    const args = { task: 'preference-pairs' as const, args: {}, shard: 0, shards: 1 };
    expect(await runDataShard(store, policies, judges, { runId: 's.pairs-1', ...args })).toMatchObject({ shard: 0, records: 2 });
    const taken = await runDataShard(store, policies, judges, { runId: 's.pairs-1.r1', ...args, previousRuns: ['s.pairs-1'] });
    expect(taken).toMatchObject({ shard: 0, records: 2, sums: { pairs: 2 } });
    const merged = await mergeDataShards(store, { runId: 's.pairs-1.r1', task: 'preference-pairs', args: {}, parts: [taken] });
    expect(merged.records).toBe(2);
    expect(merged.metrics).toMatchObject({ pairs: 2, ties: 1, meanReward: 0.25 });
    expect((await store.store.get('runs/s.pairs-1.r1/output/data.jsonl')).toString()).toBe('{"a":1}\n{"a":2}\n');
  });

  it('the join refuses a part changed after its marker was written', async () => {
    await commit('t.pairs-1', 0, ['{"b":1}']);
    writeFileSync(path.join(tmp, 'store/runs/t.pairs-1/output/part-00000.jsonl'), '{"b":2}\n');
    const part = { shard: 0, records: 1, sums: {}, seconds: 0 };
    await expect(mergeDataShards(store, { runId: 't.pairs-1', task: 'preference-pairs', args: {}, parts: [part] })).rejects.toThrow(/part 0 does not match its marker/);
  });
});
