/**
 * A data stage's shards and their join. A shard writes its records as one JSONL part and then a
 * small marker (records, metric sums, the part's sha256), which is the commit: a shard asked again
 * (its worker died, the activity was retried) that finds its marker returns it without redoing the
 * work. The join concatenates the parts in shard order into the stage's data.jsonl, which later
 * stages read by URI.
 */
import { DataError } from '../../algorithms/errors.js';
import type { DataTaskName } from '../../algorithms/pipelines/types.js';
import { sha256Hex } from '../../store/hashing.js';
import type { RunStorePort } from '../../store/run-store-port.js';
import { heartbeat } from '../heartbeat.js';
import type { ResidentJudges } from '../score.js';
import type { ResidentPolicies } from './policies.js';
import { DATA_TASKS } from './tasks.js';
import type { DataShardResult, DataStageResult } from './types.js';

const partKey = (runId: string, k: number) => `runs/${runId}/output/part-${String(k).padStart(5, '0')}.jsonl`;
const markerKey = (runId: string, k: number) => `runs/${runId}/output/part-${String(k).padStart(5, '0')}.json`;
export const stageDataKey = (runId: string) => `runs/${runId}/output/data.jsonl`;

interface Marker {
  records: number;
  sums: Record<string, number>;
  sha256: string;
  seconds: number;
}

const toJsonl = (records: readonly unknown[]): Uint8Array => Buffer.from(records.map((r) => `${JSON.stringify(r)}\n`).join(''), 'utf8');

export async function runDataShard(
  store: RunStorePort, policies: ResidentPolicies, judges: ResidentJudges,
  args: { runId: string; task: DataTaskName; args: Record<string, unknown>; shard: number; shards: number; previousRuns?: string[] },
): Promise<DataShardResult> {
  const marker = await store.getJson<Marker>(markerKey(args.runId, args.shard));
  if (marker) return { shard: args.shard, records: marker.records, sums: marker.sums, seconds: marker.seconds };
  // An earlier run of this stage committed the shard: take it over (part first, then its marker).
  for (const earlier of [...(args.previousRuns ?? [])].reverse()) {
    const m = await store.getJson<Marker>(markerKey(earlier, args.shard));
    if (!m) continue;
    const bytes = await store.store.get(partKey(earlier, args.shard));
    if (sha256Hex(bytes) !== m.sha256) continue;
    await store.store.put(partKey(args.runId, args.shard), bytes);
    await store.putJson(markerKey(args.runId, args.shard), m);
    return { shard: args.shard, records: m.records, sums: m.sums, seconds: 0 };
  }
  const t0 = performance.now();
  const task = DATA_TASKS[args.task];
  const out = await task.run({ store, policies, judges, beat: (d) => heartbeat({ shard: args.shard, ...d }) }, args.args, args.shard, args.shards);
  const bytes = toJsonl(out.records);
  await store.store.put(partKey(args.runId, args.shard), bytes);
  const seconds = (performance.now() - t0) / 1000;
  await store.putJson(markerKey(args.runId, args.shard), { records: out.records.length, sums: out.sums, sha256: sha256Hex(bytes), seconds } satisfies Marker);
  return { shard: args.shard, records: out.records.length, sums: out.sums, seconds };
}

export async function mergeDataShards(
  store: RunStorePort, args: { runId: string; task: DataTaskName; args: Record<string, unknown>; parts: DataShardResult[] },
): Promise<DataStageResult> {
  const chunks: Buffer[] = [];
  const sums: Record<string, number> = {};
  let records = 0;
  for (const p of [...args.parts].sort((a, b) => a.shard - b.shard)) {
    const m = await store.getJson<Marker>(markerKey(args.runId, p.shard));
    const bytes = await store.store.get(partKey(args.runId, p.shard));
    if (!m || sha256Hex(bytes) !== m.sha256) throw new DataError(`data stage ${args.runId}: part ${p.shard} does not match its marker (sha256); it was changed after it was written`, partKey(args.runId, p.shard), 0);
    chunks.push(bytes);
    records += m.records;
    for (const [k, v] of Object.entries(m.sums)) sums[k] = (sums[k] ?? 0) + v;
  }
  const { metrics, summary } = DATA_TASKS[args.task].summarize(sums, records, args.args);
  const data = Buffer.concat(chunks);
  if (records === 0) throw new DataError(`data stage ${args.runId} (${args.task}) produced no records: ${summary}`, stageDataKey(args.runId), 0);
  const { key } = { key: stageDataKey(args.runId) };
  await store.store.put(key, data);
  await store.putJson(`runs/${args.runId}/output/summary.json`, { task: args.task, records, metrics, summary, sums });
  return { runId: args.runId, uri: store.store.uriOf(key), records, metrics, summary };
}
