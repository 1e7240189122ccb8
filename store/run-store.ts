/**
 * The activities' storage port over an ArtifactStore (filesystem or S3): JSON documents,
 * inputs fetched from paths or s3:// URIs (cached locally), checkpoints committed manifest-last
 * and verified on load, retention, and Hugging Face exports.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openStore, StoreError } from './index.js';
import type { ArtifactStore } from './index.js';
import { cleanUncommitted, pruneCheckpoints, readCheckpoint, writeCheckpoint } from './checkpoints.js';
import { exportToStore } from './export.js';
import type { CheckpointMeta, RunStorePort } from './run-store-port.js';
import type { CheckpointRef } from './checkpoints.js';

/** A JSON object of the store, or null when the key does not exist (other failures throw). */
export async function readJsonIfPresent<T>(store: ArtifactStore, key: string): Promise<T | null> {
  try {
    return JSON.parse((await store.get(key)).toString('utf8')) as T;
  } catch (err) {
    if (err instanceof StoreError && err.code === 'NotFound') return null;
    throw err;
  }
}

export class RunStore implements RunStorePort {
  constructor(readonly store: ArtifactStore, readonly cacheDir: string) {}

  getJson<T>(key: string): Promise<T | null> {
    return readJsonIfPresent<T>(this.store, key);
  }

  async putJson(key: string, value: unknown): Promise<string> {
    await this.store.put(key, Buffer.from(JSON.stringify(value)));
    return this.store.uriOf(key);
  }

  /** Local paths pass through; s3:// files and folders are downloaded once into the cache. */
  async fetchInput(uri: string): Promise<string> {
    if (uri.startsWith('file://')) return fileURLToPath(uri);
    if (!uri.startsWith('s3://')) return uri;
    const m = /^s3:\/\/([^/]+)\/(.+?)\/?$/.exec(uri);
    if (!m) throw new StoreError('Invalid', `cannot fetch ${uri}: expected s3://bucket/key`, false);
    const src = uri.startsWith(this.store.uri) ? this.store : openStore(`s3://${m[1]}`);
    const key = uri.startsWith(this.store.uri) ? this.store.keyOf(uri) : m[2];
    const dest = path.join(this.cacheDir, createHash('sha256').update(uri).digest('hex').slice(0, 16), path.basename(key));
    if (existsSync(dest)) return dest;
    const folder = await src.list(`${key.replace(/\/$/, '')}/`);
    const tmp = `${dest}.partial`;
    await rm(tmp, { recursive: true, force: true });
    if (folder.length > 0) {
      for (const o of folder) await src.getToFile(o.key, path.join(tmp, o.key.slice(key.replace(/\/$/, '').length + 1)));
    } else {
      await mkdir(path.dirname(tmp), { recursive: true });
      await src.getToFile(key, tmp);
    }
    await rename(tmp, dest); // complete inputs only: a crash mid-download leaves a .partial
    return dest;
  }

  async commitCheckpoint(runId: string, step: number, localDir: string, meta: CheckpointMeta): Promise<CheckpointRef> {
    const names = (await readdir(localDir)).sort();
    const ref = await writeCheckpoint(this.store, runId, step, names.map((name) => ({ name, path: path.join(localDir, name) })), {
      config: meta.config, parent: meta.parent, meta: { recipe: meta.recipe },
    });
    return { uri: ref.uri, step: ref.step, sha256: ref.sha256 };
  }

  async openCheckpoint(ref: CheckpointRef, localDir: string): Promise<void> {
    await readCheckpoint(this.store, ref, localDir);
  }

  async pruneCheckpoints(runId: string, keep: number): Promise<void> {
    await pruneCheckpoints(this.store, runId, keep);
  }

  async cleanUncommitted(runId: string): Promise<number[]> {
    return cleanUncommitted(this.store, runId);
  }

  async exportCheckpoint(runId: string, ref: CheckpointRef): Promise<string> {
    await mkdir(this.cacheDir, { recursive: true });
    return exportToStore(this.store, runId, ref, this.cacheDir);
  }
}
