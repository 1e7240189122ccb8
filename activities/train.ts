/**
 * trainChunk: advance a run from `fromStep` to `toStep` on this worker and commit a checkpoint.
 * The model stays resident between chunks (keyed by run and checkpoint lineage); a worker that
 * does not hold the run at `fromStep` loads the given checkpoint, or the base model when there
 * is none. Heartbeats carry the step, so a silent worker is noticed and the run re-placed.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import type { DpoConfig } from '../algorithms/config/recipes.js';
import type { PreferenceExample } from '../algorithms/data/preference.js';
import type { SftExample } from '../algorithms/data/sft.js';
import { dpoEvaluate, dpoStep, preferenceLogps, sftEvaluate, sftStep } from '../algorithms/train/steps.js';
import type { DpoOptions, RefLogps, StepMetrics, TrainContext } from '../algorithms/train/steps.js';
import { loadPretrained } from '../models/pretrained.js';
import type { RunStorePort } from '../store/run-store-port.js';
import { baseTrainingState, loadTrainingState, saveTrainingState } from './training-state.js';
import type { TrainingState } from './training-state.js';
import type { ChunkRequest, ChunkResult, CheckpointRef, StepSummary, Validation } from './types.js';

interface Resident {
  state: TrainingState;
  /** sha256 of the checkpoint the state descends from at `state.step` (null = base model). */
  lineage: string | null;
  train: unknown[];
  valid: unknown[];
  refs: { train: RefLogps[]; valid: RefLogps[] } | null;
}

/** Models held by this worker, by run. */
export class ResidentRuns {
  private readonly runs = new Map<string, Resident>();

  get(runId: string): Resident | undefined {
    return this.runs.get(runId);
  }

  set(runId: string, r: Resident): void {
    this.drop(runId);
    this.runs.set(runId, r);
  }

  drop(runId: string): void {
    const r = this.runs.get(runId);
    r?.state.model.dispose();
    r?.state.opt.dispose();
    this.runs.delete(runId);
  }

  get size(): number {
    return this.runs.size;
  }
}

function heartbeat(details: unknown): void {
  try {
    Context.current().heartbeat(details);
  } catch {
    // Outside an activity (direct calls in tests): nothing to report to.
  }
}

async function residentFor(store: RunStorePort, runs: ResidentRuns, req: ChunkRequest): Promise<{ r: Resident; loadedFrom: ChunkResult['loadedFrom'] }> {
  const current = runs.get(req.runId);
  const lineage = req.checkpoint?.sha256 ?? null;
  if (current && current.state.step === req.fromStep && current.lineage === lineage) return { r: current, loadedFrom: 'resident' };
  let state: TrainingState;
  let loadedFrom: ChunkResult['loadedFrom'];
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'aligner-ckpt-'));
  try {
    if (req.checkpoint) {
      await store.openCheckpoint(req.checkpoint, tmp);
      state = await loadTrainingState(tmp, req.config.trainer);
      loadedFrom = 'checkpoint';
    } else {
      state = await baseTrainingState(await store.fetchInput(req.config.model), req.config.trainer);
      loadedFrom = 'base';
      console.log(`run ${req.runId}: no checkpoint yet, starting from the base model ${req.config.model}`);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  if (state.step !== req.fromStep) {
    throw Object.assign(new Error(`run ${req.runId}: checkpoint is at step ${state.step}, the chunk starts at ${req.fromStep}`), { name: 'CheckpointError' });
  }
  const train = (await store.getJson<unknown[]>(req.dataset.trainKey)) ?? [];
  const valid = (await store.getJson<unknown[]>(req.dataset.validKey)) ?? [];
  const r: Resident = { state, lineage, train, valid, refs: null };
  runs.set(req.runId, r);
  return { r, loadedFrom };
}

/** DPO reference log-probs under the initial policy (the base model), computed once per run and stored. */
async function referenceLogps(store: RunStorePort, req: ChunkRequest, r: Resident): Promise<{ train: RefLogps[]; valid: RefLogps[] }> {
  if (r.refs) return r.refs;
  const key = `runs/${req.runId}/data/ref-logps.json`;
  let refs = await store.getJson<{ train: RefLogps[]; valid: RefLogps[] }>(key);
  if (!refs) {
    const cfg = req.config as DpoConfig;
    const base = r.state.step === 0 && r.lineage === null ? r.state.model : await loadPretrained(await store.fetchInput(cfg.model));
    const mb = cfg.trainer.microBatchSize;
    refs = {
      train: await preferenceLogps(base, r.train as PreferenceExample[], cfg.dpo.averageLogProbs, mb),
      valid: await preferenceLogps(base, r.valid as PreferenceExample[], cfg.dpo.averageLogProbs, mb),
    };
    if (base !== r.state.model) base.dispose();
    await store.putJson(key, refs);
  }
  r.refs = refs;
  return refs;
}

const summary = (m: StepMetrics): StepSummary => ({ step: m.step, loss: m.loss, lr: m.lr, gradNorm: m.gradNorm, tokens: m.tokens, ...(m.preference ? { preference: m.preference } : {}) });

export async function trainChunk(store: RunStorePort, runs: ResidentRuns, req: ChunkRequest): Promise<ChunkResult> {
  const t0 = performance.now();
  heartbeat({ step: req.fromStep, phase: 'loading' });
  const { r, loadedFrom } = await residentFor(store, runs, req);
  const ctx: TrainContext = { model: r.state.model, opt: r.state.opt, trainer: req.config.trainer, seed: req.config.seed };
  const dpo = req.recipe === 'dpo' ? (req.config as DpoConfig).dpo : null;
  const dpoOpts: DpoOptions | null = dpo ? { beta: dpo.beta, loss: dpo.loss as DpoOptions['loss'], sftWeight: dpo.sftWeight, gtRewardScale: dpo.gtRewardScale, averageLogProbs: dpo.averageLogProbs } : null;
  const refs = dpoOpts ? await referenceLogps(store, req, r) : null;
  const steps: StepSummary[] = [];
  try {
    for (let step = req.fromStep; step < req.toStep; step++) {
      const m = dpoOpts
        ? await dpoStep(ctx, r.train as PreferenceExample[], refs!.train, dpoOpts, step)
        : await sftStep(ctx, r.train as SftExample[], step);
      r.state.step = step + 1;
      steps.push(summary(m));
      heartbeat({ step: step + 1, loss: m.loss });
    }
  } catch (err) {
    runs.drop(req.runId); // a half-trained resident model must not be reused
    throw err;
  }
  let validation: Validation | null = null;
  if (req.validate) {
    const evaluated = dpoOpts ? dpoEvaluate(ctx, r.valid as PreferenceExample[], refs!.valid, dpoOpts) : null;
    validation = evaluated
      ? { step: r.state.step, loss: evaluated.loss, preference: evaluated.metrics }
      : { step: r.state.step, loss: await sftEvaluate(r.state.model, r.valid as SftExample[], req.config.trainer.microBatchSize) };
  }
  heartbeat({ step: r.state.step, phase: 'checkpointing' });
  const checkpoint = await commit(store, req, r);
  // Retention in the same activity: one round trip per chunk instead of two.
  await store.pruneCheckpoints(req.runId, req.config.trainer.keepCheckpoints);
  return { step: r.state.step, steps, checkpoint, validation, loadedFrom, seconds: (performance.now() - t0) / 1000 };
}

async function commit(store: RunStorePort, req: ChunkRequest, r: Resident): Promise<CheckpointRef> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'aligner-save-'));
  try {
    await saveTrainingState(r.state, tmp);
    // The tokenizer travels with every checkpoint, so that an export is a complete HF folder.
    const base = await store.fetchInput(req.config.model);
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
      if (existsSync(path.join(base, f))) await copyFile(path.join(base, f), path.join(tmp, f));
    }
    const ref = await store.commitCheckpoint(req.runId, r.state.step, tmp, { runId: req.runId, recipe: req.recipe, config: req.config, parent: req.checkpoint });
    r.lineage = ref.sha256;
    return ref;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
