/**
 * The rollout ledger (DESIGN §7): what each stage of an online iteration produced, durable and
 * content-addressed, so that a crash never redoes a completed stage.
 *
 *   runs/<run>/rollouts/<iteration>/<stage>/part-00000/   a token dataset (store/token-shards.ts):
 *   runs/<run>/rollouts/<iteration>/<stage>/part-00001/   binary fields, manifest.json written last
 *
 * A stage is written in parts that each commit on their own (generation writes one part per
 * shard of rollouts, the other stages one part), so a stage interrupted half-way keeps its
 * committed parts and redoes only the rest. A part is written once: writing a part that is
 * already committed returns the committed one (the activity was retried). Each part's manifest
 * `extra` records who wrote it, which is how tests show that a stage was not redone.
 */
import { StoreError } from './artifact-store.js';
import type { ArtifactStore } from './artifact-store.js';
import { sha256Hex } from './hashing.js';
import { checkRunId } from './checkpoints.js';
import type { FieldSpec } from './record-codec.js';
import { openTokenDataset, readTokenManifest, TokenShardWriter } from './token-shards.js';

export interface LedgerPart {
  /** Store key of the part's folder. */
  prefix: string;
  /** sha256 of its manifest. */
  sha256: string;
  records: number;
}

/** What a stage activity returns to the workflow: small, whatever the rollout count. */
export interface StageRef {
  runId: string;
  iteration: number;
  stage: string;
  parts: LedgerPart[];
  records: number;
  /** sha256 over the parts' sha256s, in order. */
  sha256: string;
}

export interface PartInfo {
  /** Who committed the part (the worker's queue) and when. */
  writtenBy: string;
  writtenAt: string;
  [key: string]: unknown;
}

const pad = (n: number, w: number) => String(n).padStart(w, '0');

export const rolloutsPrefix = (runId: string) => `runs/${checkRunId(runId)}/rollouts/`;
export const iterationPrefix = (runId: string, iteration: number) => `${rolloutsPrefix(runId)}${pad(iteration, 6)}/`;
export const partPrefix = (runId: string, iteration: number, stage: string, part: number) =>
  `${iterationPrefix(runId, iteration)}${stage}/part-${pad(part, 5)}/`;

/** The committed part at `prefix`, or null when it was never committed. */
export async function committedPart(store: ArtifactStore, prefix: string): Promise<(LedgerPart & { info: PartInfo | null }) | null> {
  try {
    const { ref, manifest } = await readTokenManifest(store, prefix);
    return { prefix, sha256: ref.sha256, records: ref.records, info: (manifest.extra ?? null) as PartInfo | null };
  } catch (e) {
    if (e instanceof StoreError && e.code === 'NotFound') return null;
    throw e;
  }
}

/** Commits `records` as the part at `prefix` (or returns the part already committed there). */
export async function writePart<T>(store: ArtifactStore, prefix: string, fields: FieldSpec, records: readonly T[], info: PartInfo): Promise<LedgerPart> {
  const existing = await committedPart(store, prefix);
  if (existing) return { prefix, sha256: existing.sha256, records: existing.records };
  const w = new TokenShardWriter<T>(store, prefix, fields, { tokenFields: [] });
  for (const r of records) await w.add(r);
  const ref = await w.finish(info);
  return { prefix, sha256: ref.sha256, records: ref.records };
}

export function stageRef(runId: string, iteration: number, stage: string, parts: LedgerPart[]): StageRef {
  return {
    runId, iteration, stage, parts, records: parts.reduce((n, p) => n + p.records, 0),
    sha256: sha256Hex(Buffer.from(parts.map((p) => p.sha256).join('\n'))),
  };
}

/** Every record of a stage, in order, each part checked against the sha256 the workflow holds. */
export async function readStage<T>(store: ArtifactStore, ref: StageRef, cacheDir: string): Promise<T[]> {
  const out: T[] = [];
  for (const part of ref.parts) {
    const ds = await openTokenDataset<T>(store, part.prefix, { cacheDir });
    try {
      const { ref: now } = await readTokenManifest(store, part.prefix);
      if (now.sha256 !== part.sha256) {
        throw new StoreError('Corrupt', `rollout ledger part ${store.uriOf(part.prefix)}: manifest sha256 ${now.sha256}, the run recorded ${part.sha256}`, false);
      }
      out.push(...(await ds.getMany(Array.from({ length: ds.count }, (_, i) => i))));
    } finally {
      await ds.close();
    }
  }
  return out;
}

/** The stages each iteration has anything of in the ledger, by iteration (ascending), from one listing. */
export async function ledgerStages(store: ArtifactStore, runId: string): Promise<Map<number, Set<string>>> {
  const byIteration = new Map<number, Set<string>>();
  for (const { key } of await store.list(rolloutsPrefix(runId))) {
    const m = /\/rollouts\/(\d{6})\/([^/]+)\//.exec(key);
    if (!m) continue;
    const it = Number(m[1]);
    if (!byIteration.has(it)) byIteration.set(it, new Set());
    byIteration.get(it)!.add(m[2]);
  }
  return new Map([...byIteration].sort((a, b) => a[0] - b[0]));
}

/** The committed parts of one stage of an iteration, found by listing (for viewers; workflows hold StageRefs). */
export async function listStage(store: ArtifactStore, runId: string, iteration: number, stage: string): Promise<(LedgerPart & { info: PartInfo | null })[]> {
  const parts: (LedgerPart & { info: PartInfo | null })[] = [];
  for (let i = 0; ; i++) {
    const p = await committedPart(store, partPrefix(runId, iteration, stage, i));
    if (!p) return parts;
    parts.push(p);
  }
}
