/**
 * The activities, built by a factory that receives their dependencies (the store, this worker's
 * own task queue, its resident models), so that tests can pass fakes. Workflows import the
 * `Activities` type only.
 */
import { prepareDataset } from './dataset.js';
import { classified } from './errors.js';
import type { RunStorePort } from '../store/run-store-port.js';
import { ResidentRuns, trainChunk } from './train.js';
import type { CheckpointRef, ChunkRequest, ChunkResult, DatasetRef, RecipeConfig, RecipeName } from './types.js';

export interface ActivityDeps {
  store: RunStorePort;
  /** The task queue only this worker listens on (model residency). */
  workerQueue: string;
  runs?: ResidentRuns;
}

export function createActivities(deps: ActivityDeps) {
  const runs = deps.runs ?? new ResidentRuns();
  return classified({
    async prepareDataset(args: { runId: string; recipe: RecipeName; config: RecipeConfig }): Promise<DatasetRef> {
      return prepareDataset(deps.store, args);
    },
    /** Runs on the shared compute queue: whoever takes it hosts the run from now on. */
    async placeRun(_args: { runId: string }): Promise<string> {
      return deps.workerQueue;
    },
    async trainChunk(req: ChunkRequest): Promise<ChunkResult> {
      return trainChunk(deps.store, runs, req);
    },
    async exportModel(args: { runId: string; checkpoint: CheckpointRef }): Promise<string> {
      return deps.store.exportCheckpoint(args.runId, args.checkpoint);
    },
  });
}

export type Activities = ReturnType<typeof createActivities>;
