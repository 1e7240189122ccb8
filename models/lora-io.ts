/**
 * LoRA adapters on disk, in PEFT's layout (adapter_model.safetensors with names
 * `base_model.model.<module>.lora_A.weight`, adapter_config.json), and the model with its
 * adapters merged (W + (α/r)·B·A) as a plain Hugging Face folder, which is what an export holds.
 * The base weights never change under LoRA, so a run's checkpoint keeps the adapters (exact) and
 * the merged model (for export); resuming reloads the base from the run's `model`.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { add, matmul, mulScalar, noGrad, tidy } from '../kernels/index.js';
import type { Module } from '../kernels/index.js';
import { AlignerError } from '../kernels/errors.js';
import type { CausalLM } from './causal-lm.js';
import { toHfConfig } from './config.js';
import { saveStateDict, writeConfig } from './hf/checkpoint.js';
import type { SaveTensor } from './hf/checkpoint.js';
import { readSafetensors, writeSafetensors } from './hf/safetensors.js';
import type { LoraConfig, LoraHandle } from './lora.js';

export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
export const ADAPTER_CONFIG = 'adapter_config.json';
const PEFT_PREFIX = 'base_model.model.';

const isAdapterParam = (name: string) => /\.lora_[AB]\.weight$/.test(name);

/** The base model's parameters with every adapter folded into its linear: W + scale·B·A. */
export function mergedStateDict(model: Module, lora: LoraHandle): Map<string, SaveTensor> {
  const merged = new Map<string, SaveTensor>();
  noGrad(() => {
    for (const { name, adapter } of lora.adapters) {
      const weight = model.namedParameters().find(([n]) => n === `${name}.weight`)?.[1];
      if (!weight) throw new AlignerError(`mergedStateDict: no weight ${name}.weight for its adapter`);
      const w = tidy(() => add(weight, mulScalar(matmul(adapter.B.weight, adapter.A.weight), adapter.scale))); // [out, r]·[r, in] → [out, in]
      merged.set(`${name}.weight`, { shape: [...w.shape], data: w.toArraySync() });
      w.dispose();
    }
  });
  const out = new Map<string, SaveTensor>();
  for (const [n, p] of model.namedParameters()) {
    if (isAdapterParam(n)) continue;
    out.set(n, merged.get(n) ?? { shape: [...p.shape], data: p.toArraySync() });
  }
  return out;
}

/** Save the merged model as a Hugging Face folder (config.json + safetensors). */
export async function saveMerged(model: CausalLM, lora: LoraHandle, dir: string): Promise<void> {
  await saveStateDict(dir, mergedStateDict(model, lora), { dtype: 'f32', metadata: { format: 'pt' } });
  await writeConfig(dir, toHfConfig(model.config));
}

/** The adapters' weights (exact f32) and PEFT's adapter_config.json. */
export async function saveAdapters(model: Module, config: Pick<LoraConfig, 'rank' | 'alpha' | 'targetModules'>, dir: string, baseModel: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tensors = new Map<string, { dtype: 'F32'; shape: number[]; data: ArrayLike<number> }>();
  for (const [n, p] of model.namedParameters()) {
    if (isAdapterParam(n)) tensors.set(PEFT_PREFIX + n, { dtype: 'F32', shape: [...p.shape], data: p.toArraySync() });
  }
  await writeSafetensors(path.join(dir, ADAPTER_WEIGHTS), tensors, { format: 'pt' });
  await writeFile(path.join(dir, ADAPTER_CONFIG), JSON.stringify({
    peft_type: 'LORA', task_type: 'CAUSAL_LM', base_model_name_or_path: baseModel, r: config.rank, lora_alpha: config.alpha,
    lora_dropout: 0, target_modules: [...config.targetModules], bias: 'none', fan_in_fan_out: false, inference_mode: false,
  }, null, 2));
}

/** Load adapter weights saved by saveAdapters into a model that has the same adapters. */
export async function loadAdapters(model: Module, dir: string): Promise<void> {
  const { tensors } = await readSafetensors(path.join(dir, ADAPTER_WEIGHTS));
  for (const [n, p] of model.namedParameters()) {
    if (!isAdapterParam(n)) continue;
    const t = tensors.get(PEFT_PREFIX + n);
    if (!t) throw Object.assign(new Error(`${dir}/${ADAPTER_WEIGHTS}: missing ${PEFT_PREFIX + n}`), { name: 'CheckpointError' });
    p.backend.write(p.storageFor('loadAdapters'), t.data);
  }
}
