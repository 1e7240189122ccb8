/**
 * trainChunk: advance a run from `fromStep` to `toStep` on this worker and commit a checkpoint,
 * for any offline recipe of the table. The model stays resident between chunks (keyed by run and
 * checkpoint lineage); a worker that does not hold the run at `fromStep` loads the given
 * checkpoint, or the base model when there is none. Examples are streamed from the prepared
 * token shards. Heartbeats carry the step, so a silent worker is noticed and the run re-placed.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { getOfflineRecipe } from '../algorithms/recipes/index.js';
import type { OfflineRecipe, RecipeConfig } from '../algorithms/recipes/index.js';
import type { StepContext } from '../algorithms/recipes/types.js';
import { optimizerStep } from '../algorithms/train/runner.js';
import type { StepMetrics } from '../algorithms/train/runner.js';
import { writeMetricsChunk } from '../store/metrics-ledger.js';
import { trackMetrics } from './tracking/index.js';
import type { StepRow, ValidationRow } from '../store/metrics-ledger.js';
import type { RunStorePort } from '../store/run-store-port.js';
import { heartbeat, keepAlive } from './heartbeat.js';
import { WorkerDrainingError } from './drain.js';
import type { Drain } from './drain.js';
import { openParts, openSplit } from './data-source.js';
import { isShardedDataset, prepareDataset } from './dataset.js';
import { precompute } from './precompute.js';
import type { ClosableSource } from './data-source.js';
import { TOKENIZER_FILES } from '../store/export.js';
import { baseTrainingState, loadTrainingState, saveTrainingState } from './training-state.js';
import type { ModelSetup, TrainingState } from './training-state.js';
import type { ChunkRequest, ChunkResult, CheckpointRef, PrecomputedIndex, StepSummary, Validation } from './types.js';

interface Resident {
  state: TrainingState;
  /** How the model was built; saving it needs the same (LoRA merges, the base folder). */
  setup: ModelSetup;
  /** sha256 of the checkpoint the state descends from at `state.step` (null = base model). */
  lineage: string | null;
  train: ClosableSource<unknown>;
  valid: ClosableSource<unknown>;
  pre: { train: ClosableSource<unknown>; valid: ClosableSource<unknown> } | null;
}

/**
 * Models held by this worker, by run, least recently used first. At most `capacity` stay
 * resident: a run evicted here (one that moved to another worker, or waits its turn behind
 * others) reloads from its last checkpoint, exactly, when it comes back.
 */
export class ResidentRuns {
  private readonly runs = new Map<string, Resident>();
  /** Online runs' models (actor, critic, reference: activities/online/resident.ts), by run. */
  private readonly loops = new Map<string, { dispose(): void }>();
  /** Runs placed on this worker (each holds a slot until it is released): when each last trained, and the workflow that placed it. */
  private readonly placed = new Map<string, { at: number; owner: string }>();

  constructor(readonly capacity = Number(process.env.ALIGN_RESIDENT_RUNS) || 2) {}

  /**
   * Takes a slot for a run (idempotent per run); false when every slot is held. A slot whose run
   * has not trained for `idleMs` (its workflow ended without releasing, or moved) is taken back.
   * `owner` is the workflow that placed it (an online run's critic is placed by the run's workflow).
   */
  place(runId: string, slots: number, idleMs: number, now = Date.now(), owner = runId): boolean {
    const held = this.placed.get(runId);
    if (held) {
      held.at = now;
      return true;
    }
    for (const [id, { at }] of this.placed) if (now - at > idleMs) this.release(id);
    if (this.placed.size >= slots) return false;
    this.placed.set(runId, { at: now, owner });
    return true;
  }

  /** A run trained here now (keeps its slot fresh). */
  touch(runId: string, now = Date.now()): void {
    const held = this.placed.get(runId);
    if (held) held.at = now;
  }

  /** Frees the run's slot and its resident model. */
  release(runId: string): void {
    this.placed.delete(runId);
    this.drop(runId);
  }

  get slotsInUse(): number {
    return this.placed.size;
  }

  /** The runs holding slots here, with the workflow that placed each. */
  get placedRuns(): { runId: string; owner: string }[] {
    return [...this.placed].map(([runId, { owner }]) => ({ runId, owner }));
  }

  get(runId: string): Resident | undefined {
    const r = this.runs.get(runId);
    if (r) {
      this.runs.delete(runId); // most recently used last
      this.runs.set(runId, r);
    }
    return r;
  }

  set(runId: string, r: Resident): void {
    this.drop(runId);
    this.runs.set(runId, r);
    for (const oldest of this.runs.keys()) {
      if (this.runs.size <= this.capacity) break;
      this.drop(oldest);
    }
  }

  /** The online run's resident models, if this worker holds them. */
  getLoop<T extends { dispose(): void }>(runId: string): T | undefined {
    return this.loops.get(runId) as T | undefined;
  }

  setLoop(runId: string, loop: { dispose(): void }): void {
    const old = this.loops.get(runId);
    if (old && old !== loop) old.dispose();
    this.loops.set(runId, loop);
    for (const oldest of this.loops.keys()) {
      if (this.loops.size <= this.capacity) break;
      this.dropLoop(oldest);
    }
  }

  dropLoop(runId: string): void {
    this.loops.get(runId)?.dispose();
    this.loops.delete(runId);
  }

  drop(runId: string): void {
    this.dropLoop(runId);
    const r = this.runs.get(runId);
    if (!r) return;
    r.state.model.dispose();
    r.state.opt.dispose();
    for (const s of [r.train, r.valid, r.pre?.train, r.pre?.valid]) void s?.close();
    this.runs.delete(runId);
  }

  get size(): number {
    return this.runs.size;
  }
}


export async function modelSetup(store: RunStorePort, req: ChunkRequest, recipe: OfflineRecipe<RecipeConfig>): Promise<ModelSetup> {
  return { kind: recipe.model(req.config), seed: req.config.seed, lora: req.config.lora ?? null, baseDir: await store.fetchInput(req.config.model) };
}

async function residentFor(store: RunStorePort, runs: ResidentRuns, req: ChunkRequest, recipe: OfflineRecipe<RecipeConfig>): Promise<{ r: Resident; loadedFrom: ChunkResult['loadedFrom'] }> {
  const current = runs.get(req.runId);
  const lineage = req.checkpoint?.sha256 ?? null;
  if (current && current.state.step === req.fromStep && current.lineage === lineage) return { r: current, loadedFrom: 'resident' };
  let state: TrainingState;
  let loadedFrom: ChunkResult['loadedFrom'];
  const setup = await modelSetup(store, req, recipe);
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'aligner-ckpt-'));
  try {
    if (req.checkpoint) {
      await store.openCheckpoint(req.checkpoint, tmp);
      state = await loadTrainingState(tmp, req.config.trainer, setup);
      loadedFrom = 'checkpoint';
    } else {
      state = await baseTrainingState(req.config.trainer, setup);
      loadedFrom = 'base';
      console.log(`run ${req.runId}: no checkpoint yet, starting from the base model ${req.config.model}`);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  try {
    if (state.step !== req.fromStep) {
      throw Object.assign(new Error(`run ${req.runId}: checkpoint is at step ${state.step}, the chunk starts at ${req.fromStep}`), { name: 'CheckpointError' });
    }
    // A request without its precomputed inputs (a run started before the precompute stage existed)
    // computes them here, once: the activity is idempotent and stores what it computes.
    const precomputed = req.precomputed ?? (await precompute(store, { runId: req.runId, recipe: req.recipe, config: req.config, dataset: req.dataset }));
    const index = precomputed ? await store.getJson<PrecomputedIndex>(precomputed.indexKey) : null;
    if (precomputed && !index) throw Object.assign(new Error(`run ${req.runId}: the precomputed ${precomputed.name} has no index at ${precomputed.indexKey}`), { name: 'CheckpointError' });
    const pre = index ? { train: openParts(store, index.train), valid: openParts(store, index.valid) } : null;
    const r: Resident = { state, setup, lineage, train: await openSplit(store, req.dataset.train), valid: await openSplit(store, req.dataset.valid), pre };
    runs.set(req.runId, r);
    return { r, loadedFrom };
  } catch (err) {
    // Not resident yet: nobody else will free what was loaded.
    state.model.dispose();
    state.opt.dispose();
    throw err;
  }
}

/**
 * A chunk's metrics to the ledger (and the trackers), before its checkpoint commits: a committed
 * step always has its row.
 */
export async function recordChunkMetrics(
  store: RunStorePort, req: ChunkRequest, toStep: number, m: { validationBefore: Validation | null; steps: StepSummary[]; validation: Validation | null },
): Promise<void> {
  const rows = [
    ...(m.validationBefore ? [validationRow(m.validationBefore)] : []),
    ...m.steps.map((s): StepRow => ({ type: 'step', ...s })),
    ...(m.validation ? [validationRow(m.validation)] : []),
  ];
  await writeMetricsChunk(store.store, req.runId, { fromStep: req.fromStep, toStep, parent: req.checkpoint ? { uri: req.checkpoint.uri, step: req.checkpoint.step } : null }, rows);
  await trackMetrics(store.store, { runId: req.runId, step: toStep, kind: 'steps', rows, config: req.config });
}

export const summary = (m: StepMetrics): StepSummary => ({ step: m.step, loss: m.loss, lr: m.lr, gradNorm: m.gradNorm, tokens: m.tokens, metrics: m.metrics });

export async function validate(recipe: OfflineRecipe<RecipeConfig>, ctx: StepContext<RecipeConfig>, r: Pick<Resident, 'valid' | 'pre'> & { state: { step: number } }): Promise<Validation> {
  const { loss, metrics } = await recipe.evaluate(ctx, r.valid, r.pre?.valid ?? null);
  const h = recipe.headline(ctx.config);
  return { step: r.state.step, loss, metrics, headline: { ...h, value: h.metric === 'loss' ? loss : metrics[h.metric] } };
}

export const validationRow = (v: Validation): ValidationRow => ({ type: 'validation', step: v.step, loss: v.loss, metrics: v.metrics, headline: v.headline });

export function trainChunk(store: RunStorePort, runs: ResidentRuns, req: ChunkRequest, drain?: Drain): Promise<ChunkResult> {
  return keepAlive(() => runChunk(store, runs, req, drain), { hangSeconds: req.config.trainer.hangSeconds });
}

async function runChunk(store: RunStorePort, runs: ResidentRuns, request: ChunkRequest, drain?: Drain): Promise<ChunkResult> {
  // A run in flight since before token shards carries a JSON-array dataset: prepare it as shards (once).
  const req = isShardedDataset(request.dataset) ? request : { ...request, dataset: await prepareDataset(store, request) };
  const t0 = performance.now();
  runs.touch(req.runId);
  const recipe = getOfflineRecipe(req.recipe);
  heartbeat({ step: req.fromStep, phase: 'loading' }, { watch: false });
  const { r, loadedFrom } = await residentFor(store, runs, req, recipe);
  // Seconds by phase, for the run's usage (workflows/usage.ts).
  const phases: Record<string, number> = { loading: (performance.now() - t0) / 1000 };
  const timed = async <T>(phase: string, fn: () => Promise<T>): Promise<T> => {
    const t = performance.now();
    try {
      return await fn();
    } finally {
      phases[phase] = (phases[phase] ?? 0) + (performance.now() - t) / 1000;
    }
  };
  const ctx: StepContext<RecipeConfig> = { model: r.state.model, lora: r.state.lora, opt: r.state.opt, trainer: req.config.trainer, config: req.config, seed: req.config.seed };
  const steps: StepSummary[] = [];
  let validationBefore: Validation | null = null;
  try {
    if (req.validateBefore) {
      heartbeat({ step: req.fromStep, phase: 'validating' }, { watch: false });
      validationBefore = await timed('validating', () => validate(recipe, ctx, r));
    }
    heartbeat({ step: req.fromStep, phase: 'training' }); // the watchdog watches the steps from here
    for (let step = req.fromStep; step < req.toStep; step++) {
      // The worker is being taken away: stop after the step just completed and commit it.
      if (drain?.requested) {
        if (step === req.fromStep) throw new WorkerDrainingError(`worker is shutting down (${drain.reason}) before step ${step + 1} of run ${req.runId}; the run moves to another worker`);
        break;
      }
      const m = await timed('training', () => optimizerStep(recipe, ctx, r.train, r.pre?.train ?? null, step));
      r.state.step = step + 1;
      steps.push(summary(m));
      heartbeat({ step: step + 1, loss: m.loss });
    }
  } catch (err) {
    runs.drop(req.runId); // a half-trained resident model must not be reused
    throw err;
  }
  const preempted = r.state.step < req.toStep;
  if (req.validate && !preempted) heartbeat({ step: r.state.step, phase: 'validating' }, { watch: false });
  const validation = req.validate && !preempted ? await timed('validating', () => validate(recipe, ctx, r)) : null;
  await recordChunkMetrics(store, req, r.state.step, { validationBefore, steps, validation });
  heartbeat({ step: r.state.step, phase: 'checkpointing' }, { watch: false });
  const checkpoint = await timed('checkpointing', async () => {
    const ref = await commit(store, req, r);
    // Retention in the same activity: one round trip per chunk instead of two.
    await store.pruneCheckpoints(req.runId, req.config.trainer.keepCheckpoints);
    return ref;
  });
  if (preempted) runs.release(req.runId); // handed back: this worker is going away
  return {
    step: r.state.step, steps, checkpoint, validation, loadedFrom, seconds: (performance.now() - t0) / 1000, phases,
    ...(req.validateBefore ? { validationBefore } : {}), ...(preempted ? { preempted: true } : {}),
  };
}

async function commit(store: RunStorePort, req: ChunkRequest, r: Resident): Promise<CheckpointRef> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'aligner-save-'));
  try {
    await saveTrainingState(r.state, tmp, { ...r.setup, baseUri: req.config.model });
    // The tokenizer travels with every checkpoint, so that an export is a complete HF folder.
    const base = r.setup.baseDir;
    for (const f of TOKENIZER_FILES) {
      if (existsSync(path.join(base, f))) await copyFile(path.join(base, f), path.join(tmp, f));
    }
    const ref = await store.commitCheckpoint(req.runId, r.state.step, tmp, { runId: req.runId, recipe: req.recipe, config: req.config, parent: req.checkpoint });
    r.lineage = ref.sha256;
    return ref;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
