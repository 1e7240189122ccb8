/**
 * A PPO critic on a worker of its own (ppo.criticWorker = own), as NeMo-Aligner's critic server:
 * it holds only the critic, computes the values stage there, and trains in parallel with the actor
 * on the same mini-batches (same order, same schedule, so the result is the same as a critic that
 * lives with the actor). Its checkpoints are a run of their own in the store, `<run>-critic`, one
 * per iteration, which the workflow carries next to the actor's.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { OnlineConfig } from '../../algorithms/recipes/index.js';
import type { RunStorePort } from '../../store/run-store-port.js';
import type { ResidentRuns } from '../train.js';
import { baseTrainingState, loadTrainingState, saveTrainingState } from '../training-state.js';
import type { ModelSetup, TrainingState } from '../training-state.js';
import type { CheckpointRef } from '../types.js';
import { criticOf, criticSetupOf, criticTrainer } from './resident.js';
import { getOnlineRecipe } from '../../algorithms/recipes/index.js';
import type { IterationRequest } from './types.js';

const LOOP_STATE = 'loop_state.json';

/** The store run (and resident key, and slot) of a run's own-worker critic. */
export const criticRunId = (runId: string): string => `${runId}-critic`;

export interface CriticResident {
  critic: TrainingState;
  setup: ModelSetup;
  lineage: string | null;
  iteration: number;
  optimizerSteps: number;
  dispose(): void;
}

/** The critic at the request's critic checkpoint, loaded when this worker does not hold it. */
export async function criticFor(store: RunStorePort, runs: ResidentRuns, req: IterationRequest): Promise<{ cr: CriticResident; loadedFrom: 'resident' | 'checkpoint' | 'base' }> {
  const key = criticRunId(req.runId);
  const ref = req.critic?.checkpoint ?? null;
  const held = runs.getLoop<CriticResident>(key);
  if (held && held.lineage === (ref?.sha256 ?? null)) return { cr: held, loadedFrom: 'resident' };
  const config = req.config as unknown as OnlineConfig;
  const recipe = getOnlineRecipe(req.recipe);
  const setup = await criticSetupOf(store, recipe, config);
  const t = criticTrainer(config.trainer, criticOf(recipe, config).lr);
  let cr: CriticResident;
  if (ref) {
    const tmp = await mkdtemp(path.join(os.tmpdir(), 'aligner-critic-'));
    try {
      await store.openCheckpoint(ref, tmp);
      const critic = await loadTrainingState(tmp, t, { ...setup, baseDir: tmp });
      const s = JSON.parse(await readFile(path.join(tmp, LOOP_STATE), 'utf8')) as { iteration: number; optimizerSteps: number };
      cr = { critic, setup, lineage: ref.sha256, iteration: s.iteration, optimizerSteps: s.optimizerSteps, dispose };
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  } else {
    cr = { critic: await baseTrainingState(t, setup), setup, lineage: null, iteration: 0, optimizerSteps: 0, dispose };
  }
  if (cr.iteration !== req.iteration) {
    cr.dispose();
    throw Object.assign(new Error(`run ${req.runId}: the critic's checkpoint is after iteration ${cr.iteration}, the request is for iteration ${req.iteration}`), { name: 'CheckpointError' });
  }
  runs.setLoop(key, cr);
  return { cr, loadedFrom: ref ? 'checkpoint' : 'base' };
}

function dispose(this: CriticResident): void {
  this.critic.model.dispose();
  this.critic.opt.dispose();
}

export async function commitCritic(store: RunStorePort, req: IterationRequest, cr: CriticResident): Promise<CheckpointRef> {
  const config = req.config as unknown as OnlineConfig;
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'aligner-critic-save-'));
  try {
    await saveTrainingState(cr.critic, tmp, { ...cr.setup, baseUri: criticOf(getOnlineRecipe(req.recipe), config).modelUri });
    await writeFile(path.join(tmp, LOOP_STATE), JSON.stringify({ iteration: cr.iteration, optimizerSteps: cr.optimizerSteps }, null, 2));
    const id = criticRunId(req.runId);
    const ref = await store.commitCheckpoint(id, cr.iteration, tmp, { runId: id, recipe: req.recipe, config: req.config, parent: req.critic?.checkpoint ?? null });
    cr.lineage = ref.sha256;
    await store.pruneCheckpoints(id, config.trainer.keepCheckpoints);
    return ref;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
