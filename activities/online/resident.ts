/**
 * The models an online run keeps on its worker between stages: the actor (with its optimizer),
 * the reference (a frozen copy of the initial policy, or the actor with its LoRA adapters off),
 * the critic (PPO), the tokenizer and the prompts. Keyed by run and by the checkpoint the actor
 * descends from, like the offline residents: a worker that does not hold the run at the requested
 * checkpoint loads it (or the base models), so a re-placed run continues exactly.
 *
 * Checkpoint layout of an online run (runs/<id>/checkpoints/<iteration>/): the actor as the
 * offline recipes save it (HF folder, optimizer.safetensors, trainer_state.json, tokenizer), the
 * critic's files prefixed `critic.`, and loop_state.json (iteration, loop state such as the
 * adaptive β). Exports pick the actor's files only. A rollout replica (config.parallel.rollout)
 * loads the same checkpoint under its own slot, so its weights are the actor's, digest-checked.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { getOnlineRecipe } from '../../algorithms/recipes/index.js';
import type { OnlineConfig } from '../../algorithms/recipes/index.js';
import type { CriticSpec, LoopState, OnlineRecipe } from '../../algorithms/recipes/types.js';
import { ConfigError } from '../../algorithms/errors.js';
import type { TrainerConfig } from '../../algorithms/config/common.js';
import type { PromptExample } from '../../algorithms/data/prompts.js';
import type { CausalLM } from '../../models/causal-lm.js';
import { loadPretrained } from '../../models/pretrained.js';
import { Tokenizer } from '../../models/tokenizer.js';
import { TOKENIZER_FILES } from '../../store/export.js';
import type { RunStorePort } from '../../store/run-store-port.js';
import { openSplit } from '../data-source.js';
import type { ClosableSource } from '../data-source.js';
import type { ResidentRuns } from '../train.js';
import { baseTrainingState, loadTrainingState, saveTrainingState } from '../training-state.js';
import type { ModelSetup, TrainingState } from '../training-state.js';
import type { CheckpointRef } from '../types.js';
import type { IterationRequest } from './types.js';

const CRITIC_PREFIX = 'critic.';
const LOOP_STATE = 'loop_state.json';

export interface LoopResident {
  recipe: OnlineRecipe<OnlineConfig>;
  actor: TrainingState;
  actorSetup: ModelSetup;
  /** A frozen copy of the initial policy; null with LoRA (the adapters-off actor is the reference) or when the recipe has none. */
  reference: CausalLM | null;
  critic: TrainingState | null;
  criticSetup: ModelSetup | null;
  tok: Tokenizer;
  prompts: ClosableSource<PromptExample>;
  /** Iterations trained into the weights. */
  iteration: number;
  /** sha256 of the checkpoint the weights descend from (null = base models). */
  lineage: string | null;
  /** Optimizer steps taken (the learning-rate schedule's position). */
  optimizerSteps: number;
  /** weightsDigest of the actor as committed (or loaded): what generation must sample from. */
  digest: string;
  dispose(): void;
}

/** Above this many trained values, the digest reads every 1024th value (hashing a 7B model each iteration would cost seconds). */
const FULL_DIGEST_LIMIT = 64 * 1024 * 1024;

/**
 * A fingerprint of the weights a policy samples from: sha256 over its trained parameters (the
 * adapters under LoRA, with whether they are switched on). Generation checks it against the one
 * recorded when the weights were committed, so a policy that silently samples from other weights
 * (a failed adapter load, adapters left off: a known peer bug) fails loudly instead.
 */
export function weightsDigest(actor: TrainingState): string {
  const params = actor.model.namedParameters().filter(([, p]) => p.requiresGrad);
  const total = params.reduce((n, [, p]) => n + p.numel, 0);
  const stride = total > FULL_DIGEST_LIMIT ? 1024 : 1;
  const h = createHash('sha256');
  h.update(`lora:${actor.lora ? actor.lora.adapters.every(({ adapter }) => adapter.enabled) : 'none'};stride:${stride}`);
  for (const [name, p] of params) {
    const v = p.toArraySync();
    const f = new Float32Array(stride === 1 ? v.length : Math.ceil(v.length / stride));
    for (let i = 0, j = 0; i < v.length; i += stride, j++) f[j] = v[i];
    h.update(name).update(new Uint8Array(f.buffer));
  }
  return h.digest('hex');
}

/** The check before sampling: the weights in memory are the committed ones. */
export function checkGeneratingWeights(loop: LoopResident, runId: string): void {
  const now = weightsDigest(loop.actor);
  if (now !== loop.digest) {
    throw Object.assign(new Error(`run ${runId}: the policy about to generate iteration ${loop.iteration} has weights ${now.slice(0, 12)}…, not the trained ones committed as ${loop.digest.slice(0, 12)}… (adapters off, or weights changed outside training)`), { name: 'CheckpointError' });
  }
}

/** The critic's trainer: the actor's schedule with the critic's learning rate. */
export function criticTrainer(t: TrainerConfig, criticLr: number): TrainerConfig {
  return { ...t, lr: criticLr, minLr: (t.minLr / t.lr) * criticLr };
}

/** The recipe's critic (PPO); a ConfigError for a recipe without one. */
export function criticOf(recipe: OnlineRecipe<OnlineConfig>, config: OnlineConfig): CriticSpec {
  const c = recipe.critic?.(config);
  if (!c) throw new ConfigError(`recipe ${recipe.name} has no critic`);
  return c;
}

async function loadFromCheckpoint(store: RunStorePort, ref: CheckpointRef, build: (dir: string) => Promise<Omit<LoopResident, 'dispose' | 'prompts'>>): Promise<Omit<LoopResident, 'dispose' | 'prompts'>> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'aligner-loop-'));
  try {
    await store.openCheckpoint(ref, tmp);
    return await build(tmp);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** How the critic is built: a one-label classifier from ppo.criticModel (default reward.model, else model). */
export async function criticSetupOf(store: RunStorePort, recipe: OnlineRecipe<OnlineConfig>, config: OnlineConfig): Promise<ModelSetup> {
  return { kind: { kind: 'classifier', numLabels: 1 }, seed: config.seed ^ 0xc1, lora: null, baseDir: await store.fetchInput(criticOf(recipe, config).modelUri) };
}

/** The slot the request's resident models live under on this worker: the run's, or its rollout replica's. */
export const residentKey = (req: Pick<IterationRequest, 'runId' | 'slot'>): string => req.slot ?? req.runId;

/**
 * The run's resident models at the request's checkpoint, loaded when this worker does not hold
 * them. A rollout replica (req.slot) samples and scores log-probs only: it holds no critic.
 */
export async function loopFor(store: RunStorePort, runs: ResidentRuns, req: IterationRequest): Promise<{ loop: LoopResident; loadedFrom: 'resident' | 'checkpoint' | 'base' }> {
  const lineage = req.checkpoint?.sha256 ?? null;
  const key = residentKey(req);
  const replica = key !== req.runId;
  const held = runs.getLoop<LoopResident>(key);
  // The iteration too: weights trained past the checkpoint whose commit then failed must not be reused.
  if (held && held.lineage === lineage && held.iteration === req.iteration) return { loop: held, loadedFrom: 'resident' };
  const recipe = getOnlineRecipe(req.recipe);
  const config = req.config as unknown as OnlineConfig;
  const baseDir = await store.fetchInput(config.model);
  const actorSetup: ModelSetup = { kind: { kind: 'causal-lm' }, seed: config.seed, lora: config.lora ?? null, baseDir };
  // A critic on a worker of its own (req.critic) is not held here (activities/online/critic.ts).
  const criticSetup: ModelSetup | null = recipe.critic && !req.critic && !replica ? await criticSetupOf(store, recipe, config) : null;
  const ct = criticTrainer(config.trainer, recipe.critic?.(config).lr ?? config.trainer.lr);
  const parts = req.checkpoint
    ? await loadFromCheckpoint(store, req.checkpoint, async (dir) => {
      const actor = await loadTrainingState(dir, config.trainer, actorSetup);
      let critic: TrainingState | null = null;
      if (criticSetup) {
        const cdir = path.join(dir, 'critic');
        await mkdir(cdir);
        for (const f of await readdir(dir)) if (f.startsWith(CRITIC_PREFIX)) await rename(path.join(dir, f), path.join(cdir, f.slice(CRITIC_PREFIX.length)));
        critic = await loadTrainingState(cdir, ct, { ...criticSetup, baseDir: cdir });
      }
      const s = JSON.parse(await readFile(path.join(dir, LOOP_STATE), 'utf8')) as { iteration: number; optimizerSteps: number; weightsDigest?: string };
      const digest = weightsDigest(actor);
      if (s.weightsDigest && s.weightsDigest !== digest) {
        actor.model.dispose();
        critic?.model.dispose();
        throw Object.assign(new Error(`checkpoint ${req.checkpoint!.uri}: the actor loaded from it has weights ${digest.slice(0, 12)}…, but ${s.weightsDigest.slice(0, 12)}… were committed (the adapters or weights did not load as saved)`), { name: 'CheckpointError' });
      }
      return { recipe, actor, actorSetup, critic, criticSetup, reference: null, tok: Tokenizer.fromDir(baseDir), iteration: s.iteration, lineage, optimizerSteps: s.optimizerSteps, digest };
    })
    : await (async () => {
      const actor = await baseTrainingState(config.trainer, actorSetup);
      return {
        recipe, actor, actorSetup, critic: criticSetup ? await baseTrainingState(ct, criticSetup) : null, criticSetup,
        reference: null, tok: Tokenizer.fromDir(baseDir), iteration: 0, lineage: null, optimizerSteps: 0, digest: weightsDigest(actor),
      };
    })();
  if (parts.iteration !== req.iteration) {
    parts.actor.model.dispose();
    parts.critic?.model.dispose();
    throw Object.assign(new Error(`run ${req.runId}: checkpoint is after iteration ${parts.iteration}, the request is for iteration ${req.iteration}`), { name: 'CheckpointError' });
  }
  // The reference is the initial policy: a frozen copy, unless LoRA's adapters-off actor is it.
  const reference = recipe.roles.reference && !config.lora ? await loadPretrained(baseDir) : null;
  const prompts = await openSplit<PromptExample>(store, req.dataset.train);
  const loop: LoopResident = {
    ...parts, reference, prompts,
    dispose() {
      this.actor.model.dispose();
      this.actor.opt.dispose();
      this.critic?.model.dispose();
      this.critic?.opt.dispose();
      this.reference?.dispose();
      void this.prompts.close();
    },
  };
  runs.setLoop(key, loop);
  return { loop, loadedFrom: req.checkpoint ? 'checkpoint' : 'base' };
}

/** Commits the weights after an iteration: actor, critic (prefixed), loop state, tokenizer. */
export async function commitLoop(store: RunStorePort, req: IterationRequest, loop: LoopResident, state: LoopState): Promise<CheckpointRef> {
  const config = req.config as unknown as OnlineConfig;
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'aligner-loop-save-'));
  try {
    await saveTrainingState(loop.actor, tmp, { ...loop.actorSetup, baseUri: config.model });
    for (const f of TOKENIZER_FILES) {
      if (existsSync(path.join(loop.actorSetup.baseDir, f))) await copyFile(path.join(loop.actorSetup.baseDir, f), path.join(tmp, f));
    }
    if (loop.critic && loop.criticSetup) {
      const cdir = path.join(tmp, 'critic-tmp');
      await mkdir(cdir);
      await saveTrainingState(loop.critic, cdir, { ...loop.criticSetup, baseUri: criticOf(loop.recipe, config).modelUri });
      for (const f of await readdir(cdir)) await rename(path.join(cdir, f), path.join(tmp, CRITIC_PREFIX + f));
      await rm(cdir, { recursive: true });
    }
    loop.digest = weightsDigest(loop.actor);
    await writeFile(path.join(tmp, LOOP_STATE), JSON.stringify({ iteration: loop.iteration, optimizerSteps: loop.optimizerSteps, state, weightsDigest: loop.digest }, null, 2));
    const ref = await store.commitCheckpoint(req.runId, loop.iteration, tmp, { runId: req.runId, recipe: req.recipe, config: req.config, parent: req.checkpoint });
    loop.lineage = ref.sha256;
    return ref;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

