/**
 * gangChunk: one rank's part of a chunk of a run that trains as a gang of dp × tp × pp ranks
 * (config.parallel). Every rank runs this activity on its own worker process at the same time;
 * the ranks meet at the rendezvous the workflow handed out (a fresh name per gang attempt) and
 * open their groups: the whole gang, and the tensor-, pipeline- and data-parallel groups that
 * pass through this rank (rank = (dpRank · pp + stage) · tp + tpRank).
 *
 * The rank keeps its shard of the model, its optimizer and its groups between chunks while the
 * gang lives; a new attempt (a rank was lost) starts from the last checkpoint. Checkpoints are
 * one ordinary Hugging Face folder whatever the layout, assembled by every rank in a folder on
 * this host (a shared-memory gang lives on one host) and committed by rank 0. The optimizer's
 * moments are stored whole, per parameter, like the weights, so a checkpoint also restores at
 * another layout.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { layoutOf } from '../algorithms/config/common.js';
import { getOfflineRecipe } from '../algorithms/recipes/index.js';
import type { OfflineRecipe, RecipeConfig } from '../algorithms/recipes/index.js';
import type { StepContext } from '../algorithms/recipes/types.js';
import type { DataParallel } from '../algorithms/train/data-parallel.js';
import type { PipelineParallel } from '../algorithms/train/pipeline.js';
import { optimizerStep } from '../algorithms/train/runner.js';
import { GradBuckets, ShardedAdamW, TensorParallel, openShmGroup } from '../kernels/distributed/index.js';
import type { ProcessGroup, Rendezvous } from '../kernels/distributed/index.js';
import { AdamW } from '../kernels/index.js';
import type { Tensor } from '../kernels/index.js';
import type { CausalLM } from '../models/causal-lm.js';
import { isTiedCopy } from '../models/causal-lm.js';
import { shardFileName } from '../models/hf/checkpoint.js';
import { writeSafetensors } from '../models/hf/safetensors.js';
import { loadPretrained, savePretrained } from '../models/pretrained.js';
import { gatherTensorParallelState, shardTensor, tensorParallelSpec } from '../models/tensor-parallel.js';
import { loadModel, readOptimizerFiles, saveModelFolder } from './training-state.js';
import type { ModelSetup } from './training-state.js';
import type { TrainableModel } from '../algorithms/recipes/model.js';
import type { RunStorePort } from '../store/run-store-port.js';
import { TOKENIZER_FILES } from '../store/export.js';
import { heartbeat, keepAlive } from './heartbeat.js';
import { openParts, openSplit } from './data-source.js';
import type { ClosableSource } from './data-source.js';
import { rankSlot } from '../workflows/gang-names.js';
import { modelSetup, recordChunkMetrics, summary, validate } from './train.js';
import type { ResidentRuns } from './train.js';
import type { ChunkRequest, ChunkResult, CheckpointRef, PrecomputedIndex, StepSummary, Validation } from './types.js';

/** Which rank of which gang attempt an activity is. */
export interface GangSeat {
  rank: number;
  rendezvous: Rendezvous;
}

export type GangChunkRequest = ChunkRequest & { gang: GangSeat };

/** Rank 0's result carries the committed checkpoint; the others report their steps and null. */
export type GangChunkResult = Omit<ChunkResult, 'checkpoint'> & { rank: number; checkpoint: CheckpointRef | null };

interface Coordinates {
  dpRank: number;
  stage: number;
  tpRank: number;
}

export function coordinatesOf(rank: number, layout: { dp: number; tp: number; pp: number }): Coordinates {
  return { tpRank: rank % layout.tp, stage: Math.floor(rank / layout.tp) % layout.pp, dpRank: Math.floor(rank / (layout.tp * layout.pp)) };
}

interface Groups {
  world: ProcessGroup;
  tp: TensorParallel | null;
  pp: ProcessGroup | null;
  dp: ProcessGroup | null;
  /** The first and last stage (the tied embedding's copies); the pipeline group itself at pp = 2. */
  embedding: ProcessGroup | null;
}

/** Joins every group this rank belongs to; each group's name extends the rendezvous'. */
async function openGroups(seat: GangSeat, layout: { dp: number; tp: number; pp: number }): Promise<Groups> {
  const { dpRank, stage, tpRank } = coordinatesOf(seat.rank, layout);
  const join = (suffix: string, rank: number, world: number) => openShmGroup({ ...seat.rendezvous, name: `${seat.rendezvous.name}.${suffix}`, world }, rank);
  const world = await join('world', seat.rank, layout.dp * layout.tp * layout.pp);
  const tp = layout.tp > 1 ? new TensorParallel(await join(`tp-d${dpRank}-s${stage}`, tpRank, layout.tp)) : null;
  const pp = layout.pp > 1 ? await join(`pp-d${dpRank}-t${tpRank}`, stage, layout.pp) : null;
  const dp = layout.dp > 1 ? await join(`dp-s${stage}-t${tpRank}`, dpRank, layout.dp) : null;
  let embedding: ProcessGroup | null = null;
  if (layout.pp === 2) embedding = pp;
  else if (layout.pp > 2 && (stage === 0 || stage === layout.pp - 1)) embedding = await join(`emb-d${dpRank}-t${tpRank}`, stage === 0 ? 0 : 1, 2);
  return { world, tp, pp, dp, embedding };
}

async function closeGroups(g: Groups): Promise<void> {
  const all = new Set([g.world, g.tp?.group, g.pp, g.dp, g.embedding].filter((x): x is ProcessGroup => !!x));
  for (const x of all) await x.close().catch(() => undefined);
}

interface GangResident {
  rendezvous: string;
  setup: ModelSetup;
  groups: Groups;
  model: TrainableModel;
  opt: AdamW;
  dataParallel: DataParallel | null;
  pipeline: PipelineParallel | null;
  step: number;
  train: ClosableSource<unknown>;
  valid: ClosableSource<unknown>;
  pre: { train: ClosableSource<unknown>; valid: ClosableSource<unknown> } | null;
  dispose(): void;
}

const trainedParams = (model: TrainableModel): [string, Tensor][] => model.namedParameters().filter(([, p]) => p.requiresGrad);

/** The gang's working folder for the checkpoint of `step`, shared by its ranks (ALIGN_GANG_DIR: a folder every worker of the host sees). */
const gangFolder = (seat: GangSeat, step: number): string =>
  path.join(process.env.ALIGN_GANG_DIR ?? path.join(os.tmpdir(), 'aligner-gang'), seat.rendezvous.name, `step-${step}`);

export function gangChunk(store: RunStorePort, runs: ResidentRuns, req: GangChunkRequest): Promise<GangChunkResult> {
  return keepAlive(() => runGangChunk(store, runs, req), { hangSeconds: req.config.trainer.hangSeconds });
}

async function runGangChunk(store: RunStorePort, runs: ResidentRuns, req: GangChunkRequest): Promise<GangChunkResult> {
  const t0 = performance.now();
  const slot = rankSlot(req.runId, req.gang.rank);
  runs.touch(slot);
  const recipe = getOfflineRecipe(req.recipe);
  heartbeat({ step: req.fromStep, phase: 'loading', rank: req.gang.rank }, { watch: false });
  const { r, loadedFrom } = await gangResident(store, runs, req, recipe);
  const phases: Record<string, number> = { loading: (performance.now() - t0) / 1000 };
  const ctx: StepContext<RecipeConfig> = {
    model: r.model, opt: r.opt, trainer: req.config.trainer, config: req.config, seed: req.config.seed, dataParallel: r.dataParallel, pipeline: r.pipeline,
  };
  const steps: StepSummary[] = [];
  let validationBefore: Validation | null = null;
  const leader = req.gang.rank === 0;
  try {
    if (req.validateBefore) validationBefore = await validate(recipe, ctx, { valid: r.valid, pre: r.pre, state: r });
    heartbeat({ step: req.fromStep, phase: 'training', rank: req.gang.rank });
    const tTrain = performance.now();
    for (let step = req.fromStep; step < req.toStep; step++) {
      const m = await optimizerStep(recipe, ctx, r.train, r.pre?.train ?? null, step);
      r.step = step + 1;
      steps.push(summary(m));
      heartbeat({ step: step + 1, loss: m.loss, rank: req.gang.rank });
    }
    phases.training = (performance.now() - tTrain) / 1000;
    const validation = req.validate ? await validate(recipe, ctx, { valid: r.valid, pre: r.pre, state: r }) : null;
    if (leader) await recordChunkMetrics(store, req, r.step, { validationBefore, steps, validation });
    heartbeat({ step: r.step, phase: 'checkpointing', rank: req.gang.rank }, { watch: false });
    const tSave = performance.now();
    const checkpoint = await saveGangCheckpoint(store, req, r);
    phases.checkpointing = (performance.now() - tSave) / 1000;
    return {
      rank: req.gang.rank, step: r.step, steps, checkpoint, validation, loadedFrom, seconds: (performance.now() - t0) / 1000, phases,
      ...(req.validateBefore ? { validationBefore } : {}),
    };
  } catch (err) {
    runs.dropLoop(slot); // a half-trained shard, or a group that broke, must not be reused
    throw err;
  }
}

/** This rank's resident shard when it belongs to this gang attempt at this step; else built anew from the checkpoint. */
async function gangResident(store: RunStorePort, runs: ResidentRuns, req: GangChunkRequest, recipe: OfflineRecipe<RecipeConfig>): Promise<{ r: GangResident; loadedFrom: ChunkResult['loadedFrom'] }> {
  const slot = rankSlot(req.runId, req.gang.rank);
  const current = runs.getLoop<GangResident>(slot);
  if (current && current.rendezvous === req.gang.rendezvous.name && current.step === req.fromStep) return { r: current, loadedFrom: 'resident' };
  runs.dropLoop(slot);
  const layout = layoutOf(req.config);
  const setup = await modelSetup(store, req, recipe);
  const groups = await openGroups(req.gang, layout);
  const { stage, stages } = { stage: coordinatesOf(req.gang.rank, layout).stage, stages: layout.pp };
  const built: { model?: TrainableModel; opt?: AdamW; zero?: ShardedAdamW; buckets?: GradBuckets } = {};
  try {
    const tmp = await mkdtemp(path.join(os.tmpdir(), 'aligner-gang-load-'));
    let step = 0;
    try {
      let dir = setup.baseDir;
      if (req.checkpoint) {
        await store.openCheckpoint(req.checkpoint, tmp);
        dir = tmp;
      }
      const split = layout.tp > 1 || layout.pp > 1;
      built.model = split ? await loadPretrained(dir, { tp: groups.tp, pp: layout.pp > 1 ? { stage, stages } : null }) : await loadModel(dir, setup.kind, setup.seed);
      const params = trainedParams(built.model);
      const t = req.config.trainer;
      const adam = { lr: t.lr, beta1: t.beta1, beta2: t.beta2, weightDecay: t.weightDecay };
      built.opt = new AdamW(params.map(([, p]) => p), adam);
      if (groups.dp) {
        built.buckets = new GradBuckets(groups.dp, built.opt.params);
        if (layout.shardOptimizer) built.zero = new ShardedAdamW(groups.dp, built.opt.params, adam);
      }
      if (req.checkpoint) step = await loadMoments(tmp, built.model, params, groups, built.opt, built.zero ?? null);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
    if (step !== req.fromStep) throw Object.assign(new Error(`run ${req.runId}: checkpoint is at step ${step}, the chunk starts at ${req.fromStep}`), { name: 'CheckpointError' });
    const index = req.precomputed ? await store.getJson<PrecomputedIndex>(req.precomputed.indexKey) : null;
    const model = built.model, opt = built.opt, zero = built.zero ?? null, buckets = built.buckets ?? null;
    const train = await openSplit(store, req.dataset.train), valid = await openSplit(store, req.dataset.valid);
    const r: GangResident = {
      rendezvous: req.gang.rendezvous.name, setup, groups, model, opt, step, train, valid,
      pre: index ? { train: openParts(store, index.train), valid: openParts(store, index.valid) } : null,
      dataParallel: groups.dp && buckets ? { group: groups.dp, buckets, zero } : null,
      pipeline: groups.pp ? { group: groups.pp, embeddingGroup: groups.embedding } : null,
      dispose() {
        model.dispose();
        opt.dispose();
        zero?.dispose();
        buckets?.dispose();
        for (const s of [train, valid, this.pre?.train, this.pre?.valid]) void s?.close();
        void closeGroups(groups);
      },
    };
    runs.setLoop(slot, r);
    return { r, loadedFrom: req.checkpoint ? 'checkpoint' : 'base' };
  } catch (err) {
    built.model?.dispose();
    built.opt?.dispose();
    built.zero?.dispose();
    built.buckets?.dispose();
    await closeGroups(groups);
    throw err;
  }
}

/** Restores this rank's moments (its shard of each whole one) and returns the checkpoint's step. */
async function loadMoments(dir: string, model: TrainableModel, params: [string, Tensor][], g: Groups, opt: AdamW, zero: ShardedAdamW | null): Promise<number> {
  const whole = await readOptimizerFiles(dir);
  const family = (model as CausalLM).config?.family;
  const local = (key: string, name: string): ArrayLike<number> => {
    const t = whole.get(key);
    if (!t) throw Object.assign(new Error(`${dir}: the optimizer state has no ${key}`), { name: 'CheckpointError' });
    const spec = g.tp && family ? tensorParallelSpec(family, name) : null;
    return spec ? shardTensor(t, spec, g.tp!.rank, g.tp!.world).data : t.data;
  };
  const state = JSON.parse(await readFile(path.join(dir, 'trainer_state.json'), 'utf8')) as { step: number; optimizerStep: number };
  const moments = { step: state.optimizerStep, m: params.map(([n]) => local(`m.${n}`, n)), v: params.map(([n]) => local(`v.${n}`, n)) };
  if (zero) zero.loadState(moments);
  else opt.loadState(moments);
  return state.step;
}

/**
 * Every rank writes its part into the gang's folder on this host (the weights through
 * savePretrained, gathered over tensor parallel and one shard per pipeline stage; the moments
 * whole, per stage), then rank 0 commits the folder once all have written.
 */
async function saveGangCheckpoint(store: RunStorePort, req: GangChunkRequest, r: GangResident): Promise<CheckpointRef | null> {
  const layout = layoutOf(req.config);
  const { dpRank, tpRank, stage } = coordinatesOf(req.gang.rank, layout);
  const dir = gangFolder(req.gang, r.step);
  if (req.gang.rank === 0) await rm(dir, { recursive: true, force: true });
  await r.groups.world.barrier();
  await mkdir(dir, { recursive: true });
  const model = r.model as CausalLM;
  const params = trainedParams(r.model);
  // The moments whole: gathered over the data-parallel shards (ZeRO-1), then over tensor parallel.
  const zero = r.dataParallel?.zero ?? null;
  const moments = zero ? await zero.gatherState() : null;
  const momentOf = (which: 'm' | 'v', i: number) => (moments ? moments[which][i] : null);
  if (dpRank === 0) {
    // A split model gathers its shards (and writes a shard per stage); a whole one (dp only) is
    // saved like a one-worker run's, reward models included.
    if (layout.tp > 1 || layout.pp > 1) await savePretrained(model, dir, { pipeline: r.groups.pp });
    else await saveModelFolder({ model: r.model, lora: null }, dir, { ...r.setup, baseUri: req.config.model });
    const tensors = new Map<string, { dtype: 'F32'; shape: number[]; data: ArrayLike<number> }>();
    const state = zero ? null : r.opt.state(); // ZeRO's moments come gathered; AdamW's own stay unallocated
    for (const which of ['m', 'v'] as const) {
      const byParam = new Map(params.map(([, p], i) => [p, i]));
      const whole = r.groups.tp
        ? await gatherTensorParallelState(model, r.groups.tp, (p) => {
          const i = byParam.get(p)!;
          return moments ? { data: async () => momentOf(which, i)! } : state![which][i];
        })
        : new Map(params.map(([n, p], i) => [n, { shape: [...p.shape], data: moments ? momentOf(which, i)! : state![which][i].toArraySync() }]));
      for (const [n, t] of whole) if (!isTiedCopy(model, n)) tensors.set(`${which}.${n}`, { dtype: 'F32', shape: [...t.shape], data: t.data });
    }
    if (tpRank === 0) {
      const file = layout.pp > 1 ? optimizerShardName(stage + 1, layout.pp) : 'optimizer.safetensors';
      await writeSafetensors(path.join(dir, file), tensors, { format: 'pt' });
    }
  }
  await r.groups.world.barrier(); // every part is on disk
  if (req.gang.rank !== 0) return null;
  try {
    await writeFile(path.join(dir, 'trainer_state.json'), JSON.stringify({ step: r.step, optimizerStep: zero ? zero.step : r.opt.step }, null, 2));
    const base = r.setup.baseDir; // fetched when the shard was built
    for (const f of TOKENIZER_FILES) if (existsSync(path.join(base, f))) await copyFile(path.join(base, f), path.join(dir, f));
    const ref = await store.commitCheckpoint(req.runId, r.step, dir, { runId: req.runId, recipe: req.recipe, config: req.config, parent: req.checkpoint });
    await store.pruneCheckpoints(req.runId, req.config.trainer.keepCheckpoints);
    return ref;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** `optimizer-00001-of-00002.safetensors`: stage k's moments, named like the weight shards. */
const optimizerShardName = (k: number, n: number): string => shardFileName(k, n).replace(/^model-/, 'optimizer-');
