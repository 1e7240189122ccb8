/**
 * A run's training state on disk, in the checkpoint folder layout: the model as a Hugging Face
 * folder (a causal LM, or a sequence classifier for reward models), the AdamW moments of the
 * trained parameters as optimizer.safetensors (names `m.<param>` / `v.<param>`, f32), and
 * trainer_state.json (step, optimizer step). With LoRA the folder holds the merged model (what an
 * export is) and the adapters in PEFT's layout; the base weights, which LoRA never changes, are
 * reloaded from the run's `model`. Loading restores the run exactly: f32 values bit for bit.
 */
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AdamW, Generator } from '../kernels/index.js';
import type { Tensor } from '../kernels/index.js';
import { isClassifier } from '../algorithms/recipes/model.js';
import type { TrainableModel } from '../algorithms/recipes/model.js';
import type { ModelKind } from '../algorithms/recipes/types.js';
import type { LoraSettings, TrainerConfig } from '../algorithms/config/common.js';
import { ConfigError } from '../algorithms/errors.js';
import { readSafetensors, writeSafetensors } from '../models/hf/safetensors.js';
import type { StoredTensor } from '../models/hf/safetensors.js';
import { applyLora } from '../models/lora.js';
import type { LoraHandle } from '../models/lora.js';
import { loadAdapters, saveAdapters, saveMerged } from '../models/lora-io.js';
import { loadPretrained, savePretrained } from '../models/pretrained.js';
import { loadSequenceClassifier, saveSequenceClassifier } from '../models/sequence-classification.js';
import { Tokenizer } from '../models/tokenizer.js';

export interface TrainingState {
  model: TrainableModel;
  opt: AdamW;
  step: number;
  lora: LoraHandle | null;
}

/** How a run builds its model: the recipe's kind, the seed of fresh parameters, LoRA, and the base folder. */
export interface ModelSetup {
  kind: ModelKind;
  seed: number;
  lora?: LoraSettings | null;
  /** The run's `model`, fetched (LoRA reloads the base from it). */
  baseDir: string;
}

/** The parameters the run trains (all of them, or the adapters under LoRA), with their names. */
const trained = (model: TrainableModel): [string, Tensor][] => model.namedParameters().filter(([, p]) => p.requiresGrad);

export function newOptimizer(model: TrainableModel, t: TrainerConfig): AdamW {
  return new AdamW(trained(model).map(([, p]) => p), { lr: t.lr, beta1: t.beta1, beta2: t.beta2, weightDecay: t.weightDecay });
}

/** A model folder as the recipe's model kind; a fresh score head is seeded from `seed`. */
export async function loadModel(dir: string, kind: ModelKind, seed: number): Promise<TrainableModel> {
  if (kind.kind === 'causal-lm') return loadPretrained(dir);
  const { model } = await loadSequenceClassifier(dir, { numLabels: kind.numLabels, labelNames: kind.labelNames, gen: new Generator(seed ^ 0x5c0e) });
  return model;
}

/** The base model, with fresh adapters when the run trains LoRA (A from the seed, B zero). */
async function baseModel(setup: ModelSetup): Promise<{ model: TrainableModel; lora: LoraHandle | null }> {
  const model = await loadModel(setup.baseDir, setup.kind, setup.seed);
  if (!setup.lora) return { model, lora: null };
  if (isClassifier(model)) {
    model.dispose();
    throw new ConfigError('lora: reward models (rm) train every weight; LoRA is for the causal-LM recipes');
  }
  try {
    return { model, lora: applyLora(model, { rank: setup.lora.rank, alpha: setup.lora.alpha, targetModules: setup.lora.targetModules }, new Generator(setup.seed ^ 0x10a)) };
  } catch (err) {
    model.dispose();
    // No linear matches lora.targetModules (or GPT-2, whose projections are Conv1D): a config error.
    throw new ConfigError(`lora.targetModules: ${(err as Error).message}`);
  }
}

export async function saveTrainingState(s: TrainingState, dir: string, setup: ModelSetup & { baseUri: string }): Promise<void> {
  await saveModelFolder(s, dir, setup);
  await saveOptimizerState(s, dir);
}

/** The model part of a checkpoint: a Hugging Face folder (merged model and adapters with LoRA, a sequence classifier for reward models). */
export async function saveModelFolder(s: Pick<TrainingState, 'model' | 'lora'>, dir: string, setup: ModelSetup & { baseUri: string }): Promise<void> {
  if (s.lora && !isClassifier(s.model)) {
    await saveMerged(s.model, s.lora, dir);
    await saveAdapters(s.model, setup.lora!, dir, setup.baseUri);
  } else if (isClassifier(s.model)) {
    // transformers' classifiers score the last token that is not pad_token_id: write the
    // tokenizer's own pad token (our sequences never contain it), not the eos fallback (every
    // reward-model sequence ends with eos, which transformers would then skip).
    const pad = Tokenizer.fromDir(setup.baseDir).padTokenId;
    // The attribute names (rm.attributes) name the score rows in id2label, so that scorers can check them.
    const labelNames = setup.kind.kind === 'classifier' ? setup.kind.labelNames : undefined;
    await saveSequenceClassifier(s.model, dir, { ...(pad === null ? {} : { padTokenId: pad }), ...(labelNames ? { labelNames } : {}) });
  }
  else await savePretrained(s.model, dir);
}

async function saveOptimizerState(s: TrainingState, dir: string): Promise<void> {
  const { m, v } = s.opt.state();
  const tensors = new Map<string, { dtype: 'F32'; shape: number[]; data: ArrayLike<number> }>();
  trained(s.model).forEach(([n], i) => {
    tensors.set(`m.${n}`, { dtype: 'F32', shape: [...m[i].shape], data: m[i].toArraySync() });
    tensors.set(`v.${n}`, { dtype: 'F32', shape: [...v[i].shape], data: v[i].toArraySync() });
  });
  await writeSafetensors(path.join(dir, 'optimizer.safetensors'), tensors, { format: 'pt' });
  await writeFile(path.join(dir, 'trainer_state.json'), JSON.stringify({ step: s.step, optimizerStep: s.opt.step }, null, 2));
}

export async function loadTrainingState(dir: string, t: TrainerConfig, setup: ModelSetup): Promise<TrainingState> {
  let model: TrainableModel, lora: LoraHandle | null = null;
  if (setup.lora) {
    ({ model, lora } = await baseModel(setup));
    await loadAdapters(model, dir);
  } else model = await loadModel(dir, setup.kind, setup.seed);
  const opt = newOptimizer(model, t);
  const tensors = await readOptimizerFiles(dir);
  const names = trained(model).map(([n]) => n);
  const get = (k: string) => {
    const x = tensors.get(k);
    if (!x) throw Object.assign(new Error(`${dir}/optimizer.safetensors: missing ${k}`), { name: 'CheckpointError' });
    return x.data;
  };
  const state = JSON.parse(await readFile(path.join(dir, 'trainer_state.json'), 'utf8')) as { step: number; optimizerStep: number };
  opt.loadState({ step: state.optimizerStep, m: names.map((n) => get(`m.${n}`)), v: names.map((n) => get(`v.${n}`)) });
  return { model, opt, step: state.step, lora };
}

/** The optimizer files of a checkpoint: one, or one per pipeline stage (a gang's), merged by name. */
export const OPTIMIZER_FILE = /^optimizer(-\d{5}-of-\d{5})?\.safetensors$/;

export async function readOptimizerFiles(dir: string): Promise<Map<string, StoredTensor>> {
  const merged = new Map<string, StoredTensor>();
  const files = (await readdir(dir)).filter((n) => OPTIMIZER_FILE.test(n)).sort();
  if (files.length === 0) throw Object.assign(new Error(`${dir}: no optimizer.safetensors`), { name: 'CheckpointError' });
  for (const f of files) for (const [k, t] of (await readSafetensors(path.join(dir, f))).tensors) merged.set(k, t);
  return merged;
}

export async function baseTrainingState(t: TrainerConfig, setup: ModelSetup): Promise<TrainingState> {
  const { model, lora } = await baseModel(setup);
  return { model, opt: newOptimizer(model, t), step: 0, lora };
}
