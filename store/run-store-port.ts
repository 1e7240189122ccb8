/**
 * What the activities need from storage, as one small port: JSON documents under a run, inputs
 * fetched from a path or s3:// URI, and checkpoints committed manifest-last. `run-store.ts`
 * implements it over the ArtifactStore (filesystem or S3); tests may pass another.
 */
import type { ArtifactStore } from './artifact-store.js';
import type { CheckpointRef } from './checkpoints.js';

export interface CheckpointMeta {
  runId: string;
  recipe: string;
  config: unknown;
  parent: CheckpointRef | null;
}

export interface RunStorePort {
  /** The store itself (token shards, the rollout ledger). */
  readonly store: ArtifactStore;
  /** A local folder for downloaded inputs and shards. */
  readonly cacheDir: string;
  /** A JSON document at `key` (relative to the store root), or null when absent. */
  getJson<T>(key: string): Promise<T | null>;
  /** Write a JSON document; returns its URI. */
  putJson(key: string, value: unknown): Promise<string>;
  /** Make an input (a file or a folder, given as a local path or a store URI) available locally; returns the local path. */
  fetchInput(uri: string): Promise<string>;
  /** Upload every file of a local folder as checkpoint `step` of the run, manifest last. */
  commitCheckpoint(runId: string, step: number, localDir: string, meta: CheckpointMeta): Promise<CheckpointRef>;
  /** Download and verify a checkpoint into a local folder; throws a CheckpointError naming a corrupt file. */
  openCheckpoint(ref: CheckpointRef, localDir: string): Promise<void>;
  /** Keep the newest `keep` checkpoints of a run. */
  pruneCheckpoints(runId: string, keep: number): Promise<void>;
  /** A run has ended: delete its step folders that never committed; returns their steps. */
  cleanUncommitted(runId: string): Promise<number[]>;
  /** Write a checkpoint, verified, as a complete Hugging Face folder under the run's export/ (store/export.ts); returns its URI. */
  exportCheckpoint(runId: string, ref: CheckpointRef): Promise<string>;
}
