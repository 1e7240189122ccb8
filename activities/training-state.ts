/**
 * A run's training state on disk, in the checkpoint folder layout: the model as a Hugging Face
 * folder (a causal LM, or a sequence classifier for reward models), the AdamW moments as
 * optimizer.safetensors (names `m.<param>` / `v.<param>`, f32), and trainer_state.json (step,
 * optimizer step). Loading it back restores the run exactly: f32 values are stored bit for bit.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AdamW, Generator } from '../kernels/index.js';
import { isClassifier } from '../algorithms/recipes/model.js';
import type { TrainableModel } from '../algorithms/recipes/model.js';
import type { ModelKind } from '../algorithms/recipes/types.js';
import { readSafetensors, writeSafetensors } from '../models/hf/safetensors.js';
import { loadPretrained, savePretrained } from '../models/pretrained.js';
import { loadSequenceClassifier, saveSequenceClassifier } from '../models/sequence-classification.js';
import type { TrainerConfig } from '../algorithms/config/common.js';

export interface TrainingState {
  model: TrainableModel;
  opt: AdamW;
  step: number;
}

export function newOptimizer(model: TrainableModel, t: TrainerConfig): AdamW {
  return new AdamW(model.parameters(), { lr: t.lr, beta1: t.beta1, beta2: t.beta2, weightDecay: t.weightDecay });
}

/** A model folder as the recipe's model kind; a fresh score head is seeded from `seed`. */
export async function loadModel(dir: string, kind: ModelKind, seed: number): Promise<TrainableModel> {
  if (kind.kind === 'causal-lm') return loadPretrained(dir);
  const { model } = await loadSequenceClassifier(dir, { numLabels: kind.numLabels, labelNames: kind.labelNames, gen: new Generator(seed ^ 0x5c0e) });
  return model;
}

export async function saveModel(model: TrainableModel, dir: string): Promise<void> {
  if (isClassifier(model)) await saveSequenceClassifier(model, dir);
  else await savePretrained(model, dir);
}

export async function saveTrainingState(s: TrainingState, dir: string): Promise<void> {
  await saveModel(s.model, dir);
  const { m, v } = s.opt.state();
  const names = s.model.namedParameters().map(([n]) => n);
  const tensors = new Map<string, { dtype: 'F32'; shape: number[]; data: ArrayLike<number> }>();
  names.forEach((n, i) => {
    tensors.set(`m.${n}`, { dtype: 'F32', shape: [...m[i].shape], data: m[i].toArraySync() });
    tensors.set(`v.${n}`, { dtype: 'F32', shape: [...v[i].shape], data: v[i].toArraySync() });
  });
  await writeSafetensors(path.join(dir, 'optimizer.safetensors'), tensors, { format: 'pt' });
  await writeFile(path.join(dir, 'trainer_state.json'), JSON.stringify({ step: s.step, optimizerStep: s.opt.step }, null, 2));
}

export async function loadTrainingState(dir: string, t: TrainerConfig, kind: ModelKind, seed: number): Promise<TrainingState> {
  const model = await loadModel(dir, kind, seed);
  const opt = newOptimizer(model, t);
  const { tensors } = await readSafetensors(path.join(dir, 'optimizer.safetensors'));
  const names = model.namedParameters().map(([n]) => n);
  const get = (k: string) => {
    const x = tensors.get(k);
    if (!x) throw Object.assign(new Error(`${dir}/optimizer.safetensors: missing ${k}`), { name: 'CheckpointError' });
    return x.data;
  };
  const state = JSON.parse(await readFile(path.join(dir, 'trainer_state.json'), 'utf8')) as { step: number; optimizerStep: number };
  opt.loadState({ step: state.optimizerStep, m: names.map((n) => get(`m.${n}`)), v: names.map((n) => get(`v.${n}`)) });
  return { model, opt, step: state.step };
}

export async function baseTrainingState(modelDir: string, t: TrainerConfig, kind: ModelKind, seed: number): Promise<TrainingState> {
  const model = await loadModel(modelDir, kind, seed);
  return { model, opt: newOptimizer(model, t), step: 0 };
}
