/**
 * A data stage's shards and their join. A shard writes its records as one JSONL part, named by its
 * content hash, and then a small marker (records, metric sums, the part's key and sha256, the
 * fingerprint of the task and its arguments), which is the commit. The marker is written only if
 * absent, so when two workers hold the same shard (an attempt timed out while its worker was still
 * alive) the first to commit wins and the other returns the winner's marker: each marker names a
 * part that matches it. A shard asked again finds its marker and returns it without redoing the
 * work; a retried or resumed stage takes over an earlier run's committed shards when their
 * fingerprint is the one it would write. The join concatenates the parts in shard order into the
 * stage's data.jsonl, which later stages read by URI.
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

const shardPrefix = (runId: string, k: number) => `runs/${runId}/output/part-${String(k).padStart(5, '0')}`;
const partKey = (runId: string, k: number, sha256: string) => `${shardPrefix(runId, k)}.${sha256.slice(0, 16)}.jsonl`;
const markerKey = (runId: string, k: number) => `${shardPrefix(runId, k)}.json`;
export const stageDataKey = (runId: string) => `runs/${runId}/output/data.jsonl`;

export interface ShardMarker {
  records: number;
  sums: Record<string, number>;
  /** The committed part's key (content-addressed) and its sha256. */
  part: string;
  sha256: string;
  /** sha256 of the task, its arguments and the shard count: a takeover needs the same. */
  fingerprint: string;
  seconds: number;
}

interface ShardArgs {
  runId: string;
  task: DataTaskName;
  args: Record<string, unknown>;
  shard: number;
  shards: number;
  previousRuns?: string[];
}

const toJsonl = (records: readonly unknown[]): Uint8Array => Buffer.from(records.map((r) => `${JSON.stringify(r)}\n`).join(''), 'utf8');

/** What a shard's records depend on: the same fingerprint, the same work. */
export const shardFingerprint = (a: Pick<ShardArgs, 'task' | 'args' | 'shards'>): string =>
  sha256Hex(Buffer.from(JSON.stringify({ task: a.task, args: a.args, shards: a.shards }), 'utf8'));

const resultOf = (shard: number, m: ShardMarker, seconds = m.seconds): DataShardResult => ({ shard, records: m.records, sums: m.sums, seconds });

/** Writes the part, then the marker if no other writer committed first; returns the committed marker. */
export async function commitShard(store: RunStorePort, args: Pick<ShardArgs, 'runId' | 'shard'>, bytes: Uint8Array, m: Omit<ShardMarker, 'part' | 'sha256'>): Promise<ShardMarker> {
  const sha256 = sha256Hex(bytes);
  const part = partKey(args.runId, args.shard, sha256);
  await store.store.put(part, bytes);
  const marker: ShardMarker = { ...m, part, sha256 };
  if (await store.store.putIfAbsent(markerKey(args.runId, args.shard), Buffer.from(JSON.stringify(marker), 'utf8'))) return marker;
  return (await store.getJson<ShardMarker>(markerKey(args.runId, args.shard)))!;
}

export async function runDataShard(store: RunStorePort, policies: ResidentPolicies, judges: ResidentJudges, args: ShardArgs): Promise<DataShardResult> {
  const committed = await store.getJson<ShardMarker>(markerKey(args.runId, args.shard));
  if (committed) return resultOf(args.shard, committed);
  const fingerprint = shardFingerprint(args);
  // An earlier run of this stage committed the shard for the same task and arguments: take it over.
  for (const earlier of [...(args.previousRuns ?? [])].reverse()) {
    const m = await store.getJson<ShardMarker>(markerKey(earlier, args.shard));
    if (!m || m.fingerprint !== fingerprint) continue;
    const bytes = await store.store.get(m.part).catch(() => null);
    if (!bytes || sha256Hex(bytes) !== m.sha256) continue;
    return resultOf(args.shard, await commitShard(store, args, bytes, { records: m.records, sums: m.sums, fingerprint, seconds: m.seconds }), 0);
  }
  const t0 = performance.now();
  const task = DATA_TASKS[args.task];
  const held = policies.scope();
  const out = await task.run({ store, policies: held, judges, beat: (d) => heartbeat({ shard: args.shard, ...d }) }, args.args, args.shard, args.shards)
    .finally(() => held.release());
  const seconds = (performance.now() - t0) / 1000;
  const m = await commitShard(store, args, toJsonl(out.records), { records: out.records.length, sums: out.sums, fingerprint, seconds });
  return resultOf(args.shard, m, seconds);
}

export async function mergeDataShards(
  store: RunStorePort, args: { runId: string; task: DataTaskName; args: Record<string, unknown>; parts: DataShardResult[] },
): Promise<DataStageResult> {
  const chunks: Buffer[] = [];
  const sums: Record<string, number> = {};
  let records = 0;
  for (const p of [...args.parts].sort((a, b) => a.shard - b.shard)) {
    const m = await store.getJson<ShardMarker>(markerKey(args.runId, p.shard));
    if (!m) throw new DataError(`data stage ${args.runId}: shard ${p.shard} has no committed marker`, markerKey(args.runId, p.shard), 0);
    const bytes = await store.store.get(m.part);
    if (sha256Hex(bytes) !== m.sha256) throw new DataError(`data stage ${args.runId}: part ${p.shard} does not match its marker (sha256); it was changed after it was written`, m.part, 0);
    chunks.push(bytes);
    records += m.records;
    for (const [k, v] of Object.entries(m.sums)) sums[k] = (sums[k] ?? 0) + v;
  }
  const { metrics, summary } = DATA_TASKS[args.task].summarize(sums, records, args.args);
  const data = Buffer.concat(chunks);
  if (records === 0) throw new DataError(`data stage ${args.runId} (${args.task}) produced no records: ${summary}`, stageDataKey(args.runId), 0);
  const key = stageDataKey(args.runId);
  await store.store.put(key, data);
  await store.putJson(`runs/${args.runId}/output/summary.json`, { task: args.task, records, metrics, summary, sums });
  return { runId: args.runId, uri: store.store.uriOf(key), records, metrics, summary };
}
