/**
 * Reward models as Hugging Face sequence classifiers: a SequenceScoreModel saved as a folder that
 * transformers loads with `AutoModelForSequenceClassification` (Llama/Mistral/Qwen2/GPT2
 * `…ForSequenceClassification`), and loaded back from such a folder or from a plain causal LM
 * (the base model a reward model is trained from, with a fresh `score` head).
 *
 * Folder layout, as transformers writes it: the backbone's tensors under its own prefix
 * (`model.*` for the Llama family, `transformer.*` for GPT-2), `score.weight` [N, C] with no bias,
 * and no `lm_head.weight`. config.json is the causal LM's with `architectures` set to the
 * classifier, `num_labels` N, `id2label` {"0": name, …} / `label2id` {name: 0, …}, `problem_type`
 * "regression" (the outputs are scores, not classes: transformers would otherwise train N > 1
 * outputs with a classification loss) and `pad_token_id`.
 *
 * Why pad_token_id matters: transformers' classifiers get no notion of "last real token" from the
 * attention mask; they read the score at the last position whose id is not `pad_token_id`, and
 * refuse batches of more than one row when it is unset. We read it at the last position whose
 * mask is 1. The two agree when padding uses pad_token_id and no sequence ends with that id, so
 * with the eos fallback below, sequences should not end with eos (or pass a dedicated pad id).
 *
 * Decisions:
 * - A folder is a classifier exactly when it holds `score.weight`; config.json's `architectures`
 *   is only checked for agreement (a "…ForSequenceClassification" config without the tensor is an error).
 * - A fresh head (causal-LM source) is N(0, 1/(C+1)), i.e. std 1/√(C+1), drawn from `gen`: the
 *   reward-head init of Ziegler et al. 2019 (openai/lm-human-preferences), which gives the initial
 *   score a variance near 1 for unit-RMS hidden states.
 * - The untied Llama LM head a backbone is built with is freed after loading: a classifier has no
 *   use for it (`model.backbone.logitsFrom` then fails with DisposedError).
 */
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Generator } from '../kernels/index.js';
import type { CreateOptions } from '../kernels/index.js';
import { HF_ARCHITECTURES, hfModelType, toHfConfig } from './config.js';
import type { ModelConfig } from './config.js';
import { SequenceScoreModel } from './heads.js';
import { INDEX_FILE, WEIGHTS_FILE, matchStateDict, readConfig, saveStateDict, writeConfig } from './hf/checkpoint.js';
import { CheckpointError } from './hf/errors.js';
import { LlamaForCausalLM } from './llama.js';
import { createModel, readPretrainedFolder } from './pretrained.js';
import type { SaveOptions } from './pretrained.js';

/** The head's tensor name in transformers' sequence classifiers. */
export const SCORE_WEIGHT = 'score.weight';

/** transformers' default label names: LABEL_0, LABEL_1, … */
export const defaultLabelNames = (n: number): string[] => Array.from({ length: n }, (_, i) => `LABEL_${i}`);

/** Init std of a fresh score head over hidden size C: 1/√(C+1) (see the decisions above). */
export const scoreInitStd = (hiddenSize: number): number => 1 / Math.sqrt(hiddenSize + 1);

/** A folder that a caller needs as a reward model holds a causal LM (no score head). */
export class NotARewardModelError extends CheckpointError {
  constructor(readonly dir: string, readonly architectures: readonly string[]) {
    super(
      `${dir}: not a reward model: config.json architectures is [${architectures.join(', ')}] and there is no ${SCORE_WEIGHT}; ` +
        'train one with `align run rm` (or load the folder with loadSequenceClassifier to start from a fresh head)',
      dir,
    );
  }
}

// ---- saving ----------------------------------------------------------------------------------------

export interface SaveSequenceClassifierOptions extends SaveOptions {
  /** One name per score row (e.g. SteerLM's attributes), written as id2label/label2id. Default LABEL_0 … LABEL_{N−1}. */
  labelNames?: readonly string[];
  /**
   * pad_token_id to write. Default: the backbone config's padTokenId, else its (first) eos id; it is
   * an error when there is neither. `null` writes none on purpose (transformers then scores one row at a time).
   */
  padTokenId?: number | null;
}

export interface SavedSequenceClassifier {
  /** e.g. "LlamaForSequenceClassification". */
  architecture: string;
  numLabels: number;
  labelNames: string[];
  padTokenId: number | null;
  /** The weight files written. */
  files: string[];
}

function choosePadTokenId(cfg: ModelConfig, given: number | null | undefined, dir: string): number | null {
  if (given !== undefined) return given;
  if (cfg.padTokenId !== undefined && cfg.padTokenId !== null) return cfg.padTokenId;
  const eos = Array.isArray(cfg.eosTokenId) ? (cfg.eosTokenId[0] ?? null) : (cfg.eosTokenId ?? null);
  if (eos !== null) return eos;
  throw new CheckpointError(
    `${dir}: no pad token id for the classifier: the config has neither padTokenId nor eosTokenId; pass opts.padTokenId ` +
      '(transformers needs one to find the last token when batch > 1), or null to write none',
    dir,
  );
}

/** The config.json of a sequence classifier over `cfg` (what saveSequenceClassifier writes). */
export function sequenceClassifierConfig(cfg: ModelConfig, labelNames: readonly string[], padTokenId: number | null): Record<string, unknown> {
  return {
    ...toHfConfig(cfg),
    architectures: [HF_ARCHITECTURES[hfModelType(cfg)].sequenceClassification],
    num_labels: labelNames.length,
    id2label: Object.fromEntries(labelNames.map((name, i) => [String(i), name])),
    label2id: Object.fromEntries(labelNames.map((name, i) => [name, i])),
    problem_type: 'regression',
    pad_token_id: padTokenId,
  };
}

/** Save a reward model as a Hugging Face sequence-classifier folder (config.json + safetensors). */
export async function saveSequenceClassifier(model: SequenceScoreModel, dir: string, opts: SaveSequenceClassifierOptions = {}): Promise<SavedSequenceClassifier> {
  const cfg = model.backbone.config;
  const N = model.numLabels;
  const labelNames = opts.labelNames ? [...opts.labelNames] : defaultLabelNames(N);
  if (labelNames.length !== N) throw new CheckpointError(`${dir}: ${labelNames.length} label names for a score head of ${N} labels`, dir);
  const dup = labelNames.find((n, i) => labelNames.indexOf(n) !== i);
  if (dup !== undefined) throw new CheckpointError(`${dir}: label name "${dup}" appears twice (label2id needs unique names)`, dir);
  const padTokenId = choosePadTokenId(cfg, opts.padTokenId, dir);
  if (padTokenId !== null && !(Number.isInteger(padTokenId) && padTokenId >= 0 && padTokenId < cfg.vocabSize)) {
    throw new CheckpointError(`${dir}: pad token id ${padTokenId} is not a token id of the vocabulary (0 … ${cfg.vocabSize - 1})`, dir);
  }
  const params = model.namedParameters();
  const adapter = params.find(([n]) => /\.lora_[AB]\./.test(n));
  if (adapter) {
    throw new CheckpointError(`${dir}: ${adapter[0]} is a LoRA adapter, which transformers' sequence classifiers do not have: merge the adapters into the base weights before saving`, dir);
  }
  const tensors = new Map(params.map(([n, p]) => [n, { shape: [...p.shape], data: p.toArraySync() }]));
  const { files } = await saveStateDict(dir, tensors, { dtype: opts.dtype ?? 'f32', maxShardBytes: opts.maxShardBytes, metadata: { format: 'pt' } });
  const config = sequenceClassifierConfig(cfg, labelNames, padTokenId);
  await writeConfig(dir, config);
  return { architecture: (config.architectures as string[])[0], numLabels: N, labelNames, padTokenId, files };
}

// ---- loading ---------------------------------------------------------------------------------------

export interface LoadSequenceClassifierOptions extends CreateOptions {
  /** Labels expected (a classifier folder must have this many) or wanted (a fresh head). Default: the folder's, or labelNames.length, or 1. */
  numLabels?: number;
  /** Draws a fresh head's weights (causal-LM folders only). Default new Generator(0). */
  gen?: Generator;
  /** Label names for a fresh head, or for a classifier whose config has only the default LABEL_i names; a classifier's own names must agree. */
  labelNames?: readonly string[];
}

export interface LoadedSequenceClassifier {
  model: SequenceScoreModel;
  numLabels: number;
  labelNames: string[];
  /** 'classifier': score.weight came from the folder; 'causal-lm': a base model with a fresh head. */
  source: 'classifier' | 'causal-lm';
  /** The folder's pad_token_id (null when it has none). */
  padTokenId: number | null;
}

/** id2label as a list by index, or null when the config has none. */
function labelNamesOf(hfConfig: Record<string, unknown>, dir: string): string[] | null {
  const id2label = hfConfig.id2label;
  if (id2label === undefined || id2label === null) return null;
  if (typeof id2label !== 'object' || Array.isArray(id2label)) throw new CheckpointError(`${dir}: config.json id2label is not an object`, dir);
  const entries = Object.entries(id2label as Record<string, unknown>);
  const names: string[] = [];
  for (const [k, v] of entries) {
    const i = Number(k);
    if (!Number.isInteger(i) || i < 0 || i >= entries.length || typeof v !== 'string') {
      throw new CheckpointError(`${dir}: config.json id2label entry ${JSON.stringify(k)}: ${JSON.stringify(v)} is not "index": "name" with indices 0 … ${entries.length - 1}`, dir);
    }
    names[i] = v;
  }
  return names;
}

const architecturesOf = (hfConfig: Record<string, unknown>): string[] =>
  Array.isArray(hfConfig.architectures) ? hfConfig.architectures.map(String) : [];

/** Free an untied Llama LM head: a classifier never reads it. */
function dropLmHead(model: SequenceScoreModel): void {
  if (model.backbone instanceof LlamaForCausalLM) model.backbone.lmHead?.weight.dispose();
}

/**
 * Load a reward model from a sequence-classifier folder, or start one from a causal-LM folder
 * (backbone loaded, lm_head ignored, fresh score head N(0, 1/(C+1)) drawn from opts.gen).
 * Mismatches (numLabels, label names, missing or extra tensors) are CheckpointErrors naming the folder.
 */
export async function loadSequenceClassifier(dir: string, opts: LoadSequenceClassifierOptions = {}): Promise<LoadedSequenceClassifier> {
  const { numLabels: wantLabels, gen, labelNames: wantNames, ...create } = opts;
  const { hfConfig, config, state } = await readPretrainedFolder(dir);
  state.delete('lm_head.weight'); // a causal LM's head, not part of a classifier
  const score = state.get(SCORE_WEIGHT);
  const architectures = architecturesOf(hfConfig);
  const padTokenId = config.padTokenId ?? null;

  if (score) {
    const N = score.shape[0];
    if (wantLabels !== undefined && wantLabels !== N) {
      throw new CheckpointError(`${dir}: the classifier has ${N} labels (${SCORE_WEIGHT} is [${score.shape.join(',')}]) but numLabels ${wantLabels} was asked for`, dir);
    }
    const own = labelNamesOf(hfConfig, dir);
    if (own && own.length !== N) throw new CheckpointError(`${dir}: config.json id2label has ${own.length} labels but ${SCORE_WEIGHT} has ${N} rows`, dir);
    let labelNames = own ?? defaultLabelNames(N);
    if (wantNames) {
      if (wantNames.length !== N) throw new CheckpointError(`${dir}: ${wantNames.length} label names given for a classifier of ${N} labels`, dir);
      const ownAreDefault = labelNames.every((n, i) => n === `LABEL_${i}`);
      if (!ownAreDefault && labelNames.some((n, i) => n !== wantNames[i])) {
        throw new CheckpointError(`${dir}: config.json labels are [${labelNames.join(', ')}] but [${wantNames.join(', ')}] were given`, dir);
      }
      labelNames = [...wantNames];
    }
    const model = new SequenceScoreModel(createModel(config, { ...create, init: 'none' }), N, { ...create, gen: new Generator(0), init: 'none' });
    matchStateDict(new Map(model.namedParameters().map(([n, p]) => [n, [...p.shape]])), state, dir);
    model.loadStateDict(state);
    dropLmHead(model);
    return { model, numLabels: N, labelNames, source: 'classifier', padTokenId };
  }

  if (architectures.some((a) => a.endsWith('ForSequenceClassification'))) {
    throw new CheckpointError(`${dir}: config.json architectures is [${architectures.join(', ')}] but there is no ${SCORE_WEIGHT} in the weights`, dir);
  }
  const N = wantLabels ?? wantNames?.length ?? 1;
  if (!Number.isInteger(N) || N <= 0) throw new CheckpointError(`${dir}: numLabels must be a positive integer, got ${N}`, dir);
  if (wantNames && wantNames.length !== N) throw new CheckpointError(`${dir}: ${wantNames.length} label names given but numLabels is ${N}`, dir);
  const backbone = createModel(config, { ...create, init: 'none' });
  const model = new SequenceScoreModel(backbone, N, { ...create, gen: gen ?? new Generator(0), std: scoreInitStd(config.hiddenSize) });
  const expected = new Map(model.namedParameters().filter(([n]) => n !== SCORE_WEIGHT).map(([n, p]) => [n, [...p.shape]]));
  matchStateDict(expected, state, dir);
  const head = model.score.weight;
  const values = new Map<string, { shape: readonly number[]; data: ArrayLike<number> }>(state);
  values.set(SCORE_WEIGHT, { shape: head.shape, data: head.toArraySync() }); // the head keeps its draw
  model.loadStateDict(values);
  dropLmHead(model);
  return { model, numLabels: N, labelNames: wantNames ? [...wantNames] : defaultLabelNames(N), source: 'causal-lm', padTokenId };
}

// ---- checking a folder without loading it --------------------------------------------------------

/** Tensor names of a model folder, from the safetensors header or the shard index (no tensor data is read). */
async function tensorNames(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    throw new CheckpointError(`${dir}: cannot read the model folder: ${err.code ?? err.message}`, dir);
  });
  if (names.includes(WEIGHTS_FILE)) return safetensorsHeaderNames(join(dir, WEIGHTS_FILE));
  if (names.includes(INDEX_FILE)) {
    const index = await readJsonObject(join(dir, INDEX_FILE));
    const map = index.weight_map;
    if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new CheckpointError(`${join(dir, INDEX_FILE)}: no "weight_map" object`, join(dir, INDEX_FILE));
    return Object.keys(map);
  }
  throw new CheckpointError(`${dir}: no ${WEIGHTS_FILE} or ${INDEX_FILE} in the model folder`, dir);
}

async function readJsonObject(path: string): Promise<Record<string, unknown>> {
  const fh = await open(path, 'r').catch((err: NodeJS.ErrnoException) => {
    throw new CheckpointError(`${path}: cannot read: ${err.code ?? err.message}`, path);
  });
  try {
    const value: unknown = JSON.parse(await fh.readFile('utf8'));
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('expected a JSON object');
    return value as Record<string, unknown>;
  } catch (err) {
    throw new CheckpointError(`${path}: not a JSON object: ${(err as Error).message}`, path);
  } finally {
    await fh.close();
  }
}

/** The tensor names in a .safetensors header: 8-byte little-endian length, then that much JSON. */
async function safetensorsHeaderNames(path: string): Promise<string[]> {
  const fh = await open(path, 'r');
  try {
    const len = Buffer.alloc(8);
    const { bytesRead } = await fh.read(len, 0, 8, 0);
    const n = bytesRead === 8 ? Number(len.readBigUInt64LE(0)) : -1;
    if (n < 0 || n > 100 * 1024 * 1024) throw new CheckpointError(`${path}: not a safetensors file (bad header length)`, path);
    const header = Buffer.alloc(n);
    await fh.read(header, 0, n, 8);
    let parsed: unknown;
    try {
      parsed = JSON.parse(header.toString('utf8'));
    } catch (err) {
      throw new CheckpointError(`${path}: safetensors header is not valid JSON: ${(err as Error).message}`, path);
    }
    return Object.keys(parsed as object).filter((k) => k !== '__metadata__');
  } finally {
    await fh.close();
  }
}

/**
 * Check, without reading the weights, that `dir` holds a reward model (a `score.weight` tensor);
 * throws NotARewardModelError for a causal LM. Returns the folder's architectures.
 */
export async function requireClassifier(dir: string): Promise<{ architectures: string[] }> {
  const architectures = architecturesOf(await readConfig(dir));
  const names = await tensorNames(dir);
  if (!names.includes(SCORE_WEIGHT)) throw new NotARewardModelError(dir, architectures);
  return { architectures };
}
