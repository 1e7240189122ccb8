/**
 * Checkpoints in an ArtifactStore (DESIGN §7):
 *
 *   runs/<runId>/checkpoints/<step>/<files…>         model safetensors, optimizer, rng, …
 *   runs/<runId>/checkpoints/<step>/manifest.json    written LAST: sha256 + size of every file,
 *                                                    the config, the parent ref, the code version
 *
 * The manifest is the commit point: a step folder without one (a crash or an abort mid-upload)
 * is not a checkpoint and is never listed. Loading verifies every hash; a checkpoint that fails
 * is reported and skipped, never loaded. Pruning deletes the manifest first, so a half-deleted
 * checkpoint is invisible too.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkKey, StoreError, type ArtifactStore } from './artifact-store.js';
import { hashStream, sha256Hex } from './hashing.js';

export const MANIFEST = 'manifest.json';
export const MANIFEST_FORMAT = 'aligner.checkpoint/1';

/** What a workflow keeps: where the checkpoint is, its step, and the sha256 of its manifest. */
export interface CheckpointRef {
  uri: string;
  step: number;
  sha256: string;
}

export interface ManifestFile {
  name: string;
  size: number;
  sha256: string;
}

export interface CheckpointManifest {
  format: typeof MANIFEST_FORMAT;
  runId: string;
  step: number;
  createdAt: string;
  files: ManifestFile[];
  config: unknown;
  parent: CheckpointRef | null;
  codeVersion: string;
  /** Small extra state (data cursor, controller state, metrics); tensors go in files. */
  meta?: Record<string, unknown>;
}

/** A file to store: from disk (streamed) or from memory. `name` may contain '/'. */
export type CheckpointFile = { name: string; path: string } | { name: string; bytes: Uint8Array };

export interface CheckpointMeta {
  config?: unknown;
  parent?: CheckpointRef | null;
  /** Default: codeVersion(). */
  codeVersion?: string;
  meta?: Record<string, unknown>;
}

/** A checkpoint whose contents do not match its manifest. Never retryable: the data is bad. */
export class CheckpointCorruptError extends Error {
  override name = 'CheckpointCorruptError';
  readonly retryable = false;
  constructor(
    readonly uri: string,
    readonly file: string,
    readonly reason: string,
  ) {
    super(`checkpoint ${uri} is corrupt: ${file}: ${reason}`);
  }
}

let cachedVersion: string | undefined;
/** `aligner@<version>+<git sha>` (ALIGN_CODE_VERSION overrides), recorded in every manifest. */
export function codeVersion(): string {
  if (process.env.ALIGN_CODE_VERSION) return process.env.ALIGN_CODE_VERSION;
  if (cachedVersion) return cachedVersion;
  const root = fileURLToPath(new URL('..', import.meta.url));
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  let sha = '';
  try {
    sha = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  } catch {
    /* not a git checkout (an installed package): the version alone */
  }
  cachedVersion = `aligner@${pkg.version}${sha ? `+${sha}` : ''}`;
  return cachedVersion;
}

export function checkRunId(runId: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(runId)) {
    throw new StoreError('Invalid', `invalid run id ${JSON.stringify(runId)} (letters, digits, . _ -)`, false);
  }
  return runId;
}

const checkpointsPrefix = (runId: string) => `runs/${checkRunId(runId)}/checkpoints/`;
export const checkpointPrefix = (runId: string, step: number) => {
  if (!Number.isSafeInteger(step) || step < 0) throw new StoreError('Invalid', `invalid checkpoint step ${step}`, false);
  return `${checkpointsPrefix(runId)}${step}/`;
};

/**
 * Uploads the files, then commits the manifest. If this step is already committed (a retried
 * activity), nothing is uploaded and the existing checkpoint's ref is returned with existed=true.
 */
export async function writeCheckpoint(
  store: ArtifactStore,
  runId: string,
  step: number,
  files: CheckpointFile[],
  meta: CheckpointMeta = {},
  opts: { signal?: AbortSignal } = {},
): Promise<CheckpointRef & { existed: boolean }> {
  const dir = checkpointPrefix(runId, step);
  const names = new Set<string>();
  for (const f of files) {
    checkKey(f.name);
    if (f.name === MANIFEST || names.has(f.name)) {
      throw new StoreError('Invalid', `checkpoint file name ${JSON.stringify(f.name)} is reserved or repeated`, false);
    }
    names.add(f.name);
  }
  const existing = await readManifest(store, runId, step).catch((e) => {
    if (e instanceof StoreError && e.code === 'NotFound') return undefined;
    throw e;
  });
  if (existing) return { ...existing.ref, existed: true };

  const recorded: ManifestFile[] = [];
  for (const f of files) {
    const src = 'path' in f ? { file: f.path } : f.bytes;
    const res = await store.put(dir + f.name, src, { signal: opts.signal });
    recorded.push({ name: f.name, size: res.size, sha256: res.sha256 });
  }
  opts.signal?.throwIfAborted();
  const manifest: CheckpointManifest = {
    format: MANIFEST_FORMAT,
    runId,
    step,
    createdAt: new Date().toISOString(),
    files: recorded,
    config: meta.config ?? null,
    parent: meta.parent ?? null,
    codeVersion: meta.codeVersion ?? codeVersion(),
    ...(meta.meta ? { meta: meta.meta } : {}),
  };
  const bytes = Buffer.from(JSON.stringify(manifest, null, 2) + '\n');
  // putIfAbsent: if another attempt committed this step meanwhile, its checkpoint wins.
  if (!(await store.putIfAbsent(dir + MANIFEST, bytes))) {
    return { ...(await readManifest(store, runId, step)).ref, existed: true };
  }
  return { uri: store.uriOf(dir), step, sha256: sha256Hex(bytes), existed: false };
}

/** Committed checkpoints (those with a manifest), newest first. Nothing is verified here. */
export async function listCheckpoints(store: ArtifactStore, runId: string): Promise<{ step: number; uri: string }[]> {
  const prefix = checkpointsPrefix(runId);
  const steps: number[] = [];
  for (const o of await store.list(prefix)) {
    const m = /^(\d+)\/manifest\.json$/.exec(o.key.slice(prefix.length));
    if (m) steps.push(Number(m[1]));
  }
  return steps.sort((a, b) => b - a).map((step) => ({ step, uri: store.uriOf(`${prefix}${step}/`) }));
}

function parseManifest(bytes: Buffer, uri: string, runId: string, step: number): CheckpointManifest {
  let m: CheckpointManifest;
  try {
    m = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new CheckpointCorruptError(uri, MANIFEST, `not valid JSON (${(e as Error).message})`);
  }
  if (m?.format !== MANIFEST_FORMAT) throw new CheckpointCorruptError(uri, MANIFEST, `unknown format ${JSON.stringify(m?.format)}`);
  if (m.runId !== runId || m.step !== step) {
    throw new CheckpointCorruptError(uri, MANIFEST, `records run ${m.runId} step ${m.step}, not run ${runId} step ${step}`);
  }
  if (!Array.isArray(m.files)) throw new CheckpointCorruptError(uri, MANIFEST, 'has no file list');
  return m;
}

/** The manifest of a committed checkpoint and its ref; StoreError NotFound when uncommitted. */
export async function readManifest(
  store: ArtifactStore,
  runId: string,
  step: number,
): Promise<{ ref: CheckpointRef; manifest: CheckpointManifest }> {
  const dir = checkpointPrefix(runId, step);
  const bytes = await store.get(dir + MANIFEST);
  const uri = store.uriOf(dir);
  return { ref: { uri, step, sha256: sha256Hex(bytes) }, manifest: parseManifest(bytes, uri, runId, step) };
}

/** A read that the S3 client already found corrupt (CRC mismatch) is a corrupt checkpoint file. */
function corruptRead(e: unknown, uri: string, file: string): unknown {
  return e instanceof StoreError && e.code === 'Corrupt' ? new CheckpointCorruptError(uri, file, e.message) : e;
}

/** Hashes every file of a committed checkpoint in the store; throws CheckpointCorruptError. */
export async function verifyCheckpoint(store: ArtifactStore, runId: string, step: number) {
  const found = await readManifest(store, runId, step);
  const dir = checkpointPrefix(runId, step);
  for (const f of found.manifest.files) {
    const st = await store.stat(dir + f.name);
    if (!st) throw new CheckpointCorruptError(found.ref.uri, f.name, 'missing');
    if (st.size !== f.size) throw new CheckpointCorruptError(found.ref.uri, f.name, `size ${st.size}, manifest says ${f.size}`);
    const got = await hashStream(await store.getStream(dir + f.name)).catch((e) => {
      throw corruptRead(e, found.ref.uri, f.name);
    });
    if (got.sha256 !== f.sha256) {
      throw new CheckpointCorruptError(found.ref.uri, f.name, `sha256 ${got.sha256}, manifest says ${f.sha256}`);
    }
  }
  return found;
}

export interface SkippedCheckpoint {
  step: number;
  uri: string;
  reason: string;
}

/**
 * The newest checkpoint whose files all match their manifest hashes. Newer ones that fail are
 * returned in `skipped` with the reason; `checkpoint` is undefined when none is valid (the
 * caller then starts from the base model and says so).
 */
export async function latestValidCheckpoint(
  store: ArtifactStore,
  runId: string,
): Promise<{ checkpoint?: { ref: CheckpointRef; manifest: CheckpointManifest }; skipped: SkippedCheckpoint[] }> {
  const skipped: SkippedCheckpoint[] = [];
  for (const c of await listCheckpoints(store, runId)) {
    try {
      return { checkpoint: await verifyCheckpoint(store, runId, c.step), skipped };
    } catch (e) {
      // Store outages are not corruption: let them surface (and the activity retry).
      if (e instanceof StoreError && e.code !== 'NotFound') throw e;
      skipped.push({ step: c.step, uri: c.uri, reason: e instanceof CheckpointCorruptError ? `${e.file}: ${e.reason}` : String(e) });
    }
  }
  return { skipped };
}

/**
 * Downloads every file of `ref` into `destDir` (manifest.json last) and verifies each one.
 * Throws CheckpointCorruptError naming the file (the bad copy is deleted from destDir), also
 * when the manifest is no longer the one `ref` points to.
 */
export async function readCheckpoint(store: ArtifactStore, ref: CheckpointRef, destDir: string): Promise<CheckpointManifest> {
  const dir = store.keyOf(ref.uri.endsWith('/') ? ref.uri : `${ref.uri}/`);
  const m = /^runs\/([^/]+)\/checkpoints\/(\d+)\/$/.exec(dir);
  if (!m || Number(m[2]) !== ref.step) throw new StoreError('Invalid', `${ref.uri} is not a checkpoint folder of step ${ref.step}`, false);
  const bytes = await store.get(dir + MANIFEST);
  if (sha256Hex(bytes) !== ref.sha256) throw new CheckpointCorruptError(ref.uri, MANIFEST, 'sha256 differs from the ref');
  const manifest = parseManifest(bytes, ref.uri, m[1], ref.step);
  const dest = resolve(destDir);
  for (const f of manifest.files) {
    const path = join(dest, checkKey(f.name));
    const got = await store.getToFile(dir + f.name, path).catch((e) => {
      throw corruptRead(e, ref.uri, f.name);
    });
    if (got.sha256 !== f.sha256 || got.size !== f.size) {
      await fsp.rm(path, { force: true }); // never leave a bad file where a loader could find it
      throw new CheckpointCorruptError(ref.uri, f.name, `sha256 ${got.sha256} (${got.size} bytes), manifest says ${f.sha256} (${f.size} bytes)`);
    }
  }
  await fsp.writeFile(join(dest, MANIFEST), bytes);
  return manifest;
}

/** The keys under a run's checkpoints prefix, by step folder (committed or not). */
async function stepFolders(store: ArtifactStore, prefix: string): Promise<Map<number, string[]>> {
  const byStep = new Map<number, string[]>();
  for (const o of await store.list(prefix)) {
    const m = /^(\d+)\//.exec(o.key.slice(prefix.length));
    if (m) byStep.set(Number(m[1]), [...(byStep.get(Number(m[1])) ?? []), o.key]);
  }
  return byStep;
}

/**
 * Deletes every step folder of a run that has no manifest (an upload that never committed), for a
 * run that has ended: no write can be in progress any more. Committed checkpoints are untouched.
 */
export async function cleanUncommitted(store: ArtifactStore, runId: string): Promise<number[]> {
  const prefix = checkpointsPrefix(runId);
  const byStep = await stepFolders(store, prefix);
  const removed: number[] = [];
  for (const [step, keys] of [...byStep].sort((a, b) => a[0] - b[0])) {
    if (keys.includes(`${prefix}${step}/${MANIFEST}`)) continue;
    await store.delete(keys);
    removed.push(step);
  }
  return removed;
}

/**
 * Keeps the newest `keepLast` committed checkpoints and deletes the older ones (manifest first,
 * so a half-deleted checkpoint is invisible), plus uncommitted step folders older than the
 * newest commit (left by crashed writes whose chunk was redone). Newer uncommitted folders may be
 * writes in progress; cleanUncommitted removes them once the run has ended.
 */
export async function pruneCheckpoints(
  store: ArtifactStore,
  runId: string,
  keepLast: number,
): Promise<{ kept: number[]; deleted: number[] }> {
  if (!Number.isInteger(keepLast) || keepLast < 1) throw new StoreError('Invalid', `keepLast must be ≥ 1, got ${keepLast}`, false);
  const prefix = checkpointsPrefix(runId);
  const byStep = await stepFolders(store, prefix);
  const committed = [...byStep].filter(([s, keys]) => keys.includes(`${prefix}${s}/${MANIFEST}`)).map(([s]) => s);
  committed.sort((a, b) => b - a);
  const kept = committed.slice(0, keepLast);
  const newest = committed.length ? committed[0] : -1;
  const deleted: number[] = [];
  for (const [step, keys] of [...byStep].sort((a, b) => a[0] - b[0])) {
    // Uncommitted folders before the newest commit are left by interrupted uploads whose chunk was
    // redone; after it, one may be a write in progress (cleanUncommitted removes those when the run ends).
    if (kept.includes(step) || (!committed.includes(step) && step > newest)) continue;
    const manifest = `${prefix}${step}/${MANIFEST}`;
    if (keys.includes(manifest)) await store.delete([manifest]);
    await store.delete(keys.filter((k) => k !== manifest));
    deleted.push(step);
  }
  return { kept, deleted };
}
