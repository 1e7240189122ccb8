/**
 * Build a model from a configuration, and load or save it as a Hugging Face folder
 * (config.json + safetensors, sharded with an index when large).
 */
import { Generator } from '../kernels/index.js';
import type { CreateOptions } from '../kernels/index.js';
import { isTiedCopy } from './causal-lm.js';
import type { CausalLM, PipelineStage } from './causal-lm.js';
import type { ProcessGroup } from '../kernels/distributed/process-group.js';
import { fromHfConfig, toHfConfig } from './config.js';
import type { ModelConfig } from './config.js';
import { Gpt2LMHeadModel } from './gpt2.js';
import { finishShardedSave, loadStateDict, matchStateDict, readConfig, saveStateDict, saveStateDictShard, writeConfig } from './hf/checkpoint.js';
import { LlamaForCausalLM } from './llama.js';
import { CheckpointError } from './hf/errors.js';
import type { StoredTensor } from './hf/safetensors.js';
import type { TensorParallel } from '../kernels/distributed/tensor-parallel.js';
import { gatherTensorParallelState, shardState } from './tensor-parallel.js';

export interface ModelOptions extends CreateOptions {
  gen?: Generator;
  init?: 'normal' | 'none';
  /** Build this rank's tensor-parallel shard (whole checkpoints are cut on load). */
  tp?: TensorParallel | null;
  /** Build one pipeline stage (its layers of a whole checkpoint are taken on load). */
  pp?: { stage: number; stages: number } | null;
}

export function createModel(config: ModelConfig, opts: ModelOptions = {}): CausalLM {
  const init = { ...opts, gen: opts.gen ?? new Generator(0) };
  return config.family === 'gpt2' ? new Gpt2LMHeadModel(config, init) : new LlamaForCausalLM(config, init);
}

/** Tensors that Hugging Face checkpoints may carry but that are not parameters here. */
function isIgnorable(name: string, config: ModelConfig): boolean {
  if (name.endsWith('.rotary_emb.inv_freq')) return true; // old Llama checkpoints saved the RoPE buffer
  if (config.family === 'gpt2') return /\.attn\.(masked_)?bias$/.test(name) || name === 'lm_head.weight'; // causal-mask buffers; tied head
  return config.tieWordEmbeddings === true && name === 'lm_head.weight';
}

/** Top-level heads: never under GPT-2's `transformer.` prefix. */
const HEAD_NAMES = new Set(['lm_head.weight', 'score.weight', 'score.bias']);

/** GPT-2 checkpoints saved from GPT2Model lack the `transformer.` prefix of GPT2LMHeadModel. */
function canonicalName(name: string, config: ModelConfig): string {
  return config.family === 'gpt2' && !name.startsWith('transformer.') && !HEAD_NAMES.has(name) ? `transformer.${name}` : name;
}

/** A Hugging Face model folder, read: config.json raw and parsed, and its tensors under our parameter names. */
export interface PretrainedFolder {
  /** config.json as stored. */
  hfConfig: Record<string, unknown>;
  config: ModelConfig;
  /** Tensors by our names; buffers that are not parameters (see isIgnorable) are left out. */
  state: Map<string, StoredTensor>;
}

/** Read a model folder without building a model (loadPretrained and loadSequenceClassifier share it). */
export async function readPretrainedFolder(dir: string): Promise<PretrainedFolder> {
  const hfConfig = await readConfig(dir);
  let config: ModelConfig;
  try {
    config = fromHfConfig(hfConfig);
  } catch (err) {
    if (err instanceof CheckpointError) throw err;
    throw new CheckpointError(`${dir}: ${(err as Error).message}`, dir);
  }
  const raw = await loadStateDict(dir);
  const state = new Map([...raw].filter(([n]) => !isIgnorable(n, config)).map(([n, t]) => [canonicalName(n, config), t]));
  return { hfConfig, config, state };
}

/** Load a Hugging Face model folder. Unknown architectures and missing/extra/mis-shaped tensors are errors that list the names. */
export async function loadPretrained(dir: string, opts: CreateOptions & Pick<ModelOptions, 'tp' | 'pp'> = {}): Promise<CausalLM> {
  const { hfConfig, config, state } = await readPretrainedFolder(dir);
  if (state.has('score.weight')) {
    const arch = JSON.stringify(hfConfig.architectures ?? null);
    throw new CheckpointError(`${dir}: is a sequence classifier (architectures ${arch}, score.weight present), not a causal LM: load it with loadSequenceClassifier`, dir);
  }
  const model = createModel(config, { ...opts, init: 'none' });
  // A pipeline stage takes the tensors of its own layers (the others belong to other stages).
  const names = new Set(model.namedParameters().map(([n]) => n));
  const staged = opts.pp ? new Map([...state].filter(([n]) => names.has(n))) : state;
  const local = opts.tp ? shardState(config.family, staged, opts.tp.rank, opts.tp.world) : staged;
  matchStateDict(new Map(model.namedParameters().map(([n, p]) => [n, [...p.shape]])), local, dir);
  model.loadStateDict(local);
  return model;
}

export interface SaveOptions {
  /** Stored element type. Default 'f32'. */
  dtype?: 'f32' | 'bf16' | 'f16';
  /** The pipeline group, when the model is one stage: each stage writes its shard, stage 0 the index. */
  pipeline?: ProcessGroup | null;
  /** Largest shard; bigger models are split with model.safetensors.index.json. Default 2 GiB. */
  maxShardBytes?: number;
}

/** Save as a Hugging Face folder that transformers' from_pretrained loads. */
export async function savePretrained(model: CausalLM, dir: string, opts: SaveOptions = {}): Promise<void> {
  const shard = model.tensorParallel;
  if (model.pipeline) return savePipelineStage(model, model.pipeline, dir, opts);
  if (shard) {
    // One whole checkpoint whatever the layout: every rank takes part in the gather, rank 0 writes.
    const whole = await gatherTensorParallelState(model, shard.tp);
    if (shard.tp.rank !== 0) return;
    await saveStateDict(dir, whole, { dtype: opts.dtype ?? 'f32', maxShardBytes: opts.maxShardBytes, metadata: { format: 'pt' } });
    await writeConfig(dir, toHfConfig(model.config));
    return;
  }
  const tensors = new Map(model.namedParameters().map(([n, p]) => [n, { shape: [...p.shape], data: p.toArraySync() }]));
  await saveStateDict(dir, tensors, { dtype: opts.dtype ?? 'f32', maxShardBytes: opts.maxShardBytes, metadata: { format: 'pt' } });
  await writeConfig(dir, toHfConfig(model.config));
}

/**
 * One checkpoint from a pipeline: every stage writes its layers as shard stage+1 of S (gathered
 * over tensor parallel first, written by its rank 0), and stage 0 writes the index and the
 * config once all shards are on disk. The result loads like any sharded Hugging Face folder.
 */
async function savePipelineStage(model: CausalLM, stage: PipelineStage, dir: string, opts: SaveOptions): Promise<void> {
  const group = opts.pipeline;
  if (!group) throw new CheckpointError(`${dir}: saving a pipeline stage needs its pipeline group (SaveOptions.pipeline)`, dir);
  const shard = model.tensorParallel;
  const all = shard ? await gatherTensorParallelState(model, shard.tp) : new Map(model.namedParameters().map(([n, p]) => [n, { shape: [...p.shape], data: p.toArraySync() }]));
  const mine = new Map([...all].filter(([n]) => !isTiedCopy(model, n)));
  const writer = !shard || shard.tp.rank === 0;
  if (writer) await saveStateDictShard(dir, stage.stage + 1, stage.stages, mine, { dtype: opts.dtype ?? 'f32', metadata: { format: 'pt' } });
  await group.barrier(); // every shard on disk
  if (writer && stage.first) {
    await finishShardedSave(dir, stage.stages);
    await writeConfig(dir, toHfConfig(model.config));
  }
  await group.barrier(); // the index too, before anyone reads the folder
}

