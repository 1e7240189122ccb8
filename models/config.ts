/**
 * Model configurations and their mapping to and from Hugging Face `config.json`.
 * Supported `model_type`s: llama, mistral, qwen2 (the Llama family) and gpt2.
 */
import { ShapeError } from '../kernels/errors.js';

export interface RopeScaling {
  /** 'llama3' (Llama 3.1 frequency-dependent scaling) or 'linear' (positions divided by factor). */
  type: 'llama3' | 'linear';
  factor: number;
  lowFreqFactor?: number;
  highFreqFactor?: number;
  originalMaxPositionEmbeddings?: number;
}

export interface LlamaConfig {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  intermediateSize: number;
  /** Per-head size; default hiddenSize / numHeads. */
  headDim?: number;
  /** RMSNorm epsilon. Default 1e-5. */
  rmsNormEps?: number;
  /** RoPE base θ. Default 10000. */
  ropeTheta?: number;
  ropeScaling?: RopeScaling | null;
  /** Context window. Default 2048. */
  maxPositionEmbeddings?: number;
  /** Share the LM head with the token embedding. Default false. */
  tieWordEmbeddings?: boolean;
  /** Bias on q/k/v projections (Qwen2). Default false. */
  qkvBias?: boolean;
  /** Bias on the output projection (Llama `attention_bias`). Default false. */
  oBias?: boolean;
  /** Mistral sliding-window attention size; null or 0 = full causal attention. */
  slidingWindow?: number | null;
  /** Hugging Face model_type to write back. Default 'llama'. */
  modelType?: 'llama' | 'mistral' | 'qwen2';
  bosTokenId?: number | null;
  eosTokenId?: number | number[] | null;
  /** Hugging Face `pad_token_id` (sequence classifiers find the last real token with it). Default none. */
  padTokenId?: number | null;
}

export interface Gpt2Config {
  vocabSize: number;
  /** Context window (learned positions). */
  nPositions: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  /** MLP width. Default 4·hiddenSize. */
  intermediateSize?: number;
  /** LayerNorm epsilon. Default 1e-5. */
  layerNormEps?: number;
  bosTokenId?: number | null;
  eosTokenId?: number | number[] | null;
  /** Hugging Face `pad_token_id` (sequence classifiers find the last real token with it). Default none. */
  padTokenId?: number | null;
}

export type ModelConfig = ({ family: 'llama' } & LlamaConfig) | ({ family: 'gpt2' } & Gpt2Config);

export const headDimOf = (c: LlamaConfig): number => c.headDim ?? c.hiddenSize / c.numHeads;

export type HfModelType = 'llama' | 'mistral' | 'qwen2' | 'gpt2';

/** Hugging Face architecture names by model_type and head: the one table that spells them. */
export const HF_ARCHITECTURES: Readonly<Record<HfModelType, { causalLm: string; sequenceClassification: string }>> = {
  llama: { causalLm: 'LlamaForCausalLM', sequenceClassification: 'LlamaForSequenceClassification' },
  mistral: { causalLm: 'MistralForCausalLM', sequenceClassification: 'MistralForSequenceClassification' },
  qwen2: { causalLm: 'Qwen2ForCausalLM', sequenceClassification: 'Qwen2ForSequenceClassification' },
  gpt2: { causalLm: 'GPT2LMHeadModel', sequenceClassification: 'GPT2ForSequenceClassification' },
};

/** The Hugging Face model_type a configuration is written as. */
export const hfModelType = (cfg: ModelConfig): HfModelType => (cfg.family === 'gpt2' ? 'gpt2' : (cfg.modelType ?? 'llama'));

/** Reject configurations the model cannot be built from, naming the field. */
export function validateLlamaConfig(c: LlamaConfig): void {
  const positive = ['vocabSize', 'hiddenSize', 'numLayers', 'numHeads', 'numKvHeads', 'intermediateSize'] as const;
  for (const k of positive) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) throw new ShapeError(`LlamaConfig.${k} must be a positive integer, got ${c[k]}`);
  }
  if (c.numHeads % c.numKvHeads !== 0) throw new ShapeError(`LlamaConfig: numHeads (${c.numHeads}) must be a multiple of numKvHeads (${c.numKvHeads})`);
  const d = headDimOf(c);
  if (!Number.isInteger(d) || d % 2 !== 0) throw new ShapeError(`LlamaConfig: head dim ${d} must be an even integer (RoPE rotates pairs)`);
}

type Json = Record<string, unknown>;

function req(json: Json, key: string, where: string): number {
  const v = json[key];
  if (typeof v !== 'number') throw new ShapeError(`${where}: config.json is missing numeric "${key}"`);
  return v;
}

/** transformers ≥ 5 nests θ and scaling in `rope_parameters`; older configs use the top level. */
function ropeThetaFrom(json: Json): number {
  const params = json.rope_parameters as Json | undefined;
  return (params?.rope_theta as number | undefined) ?? (json.rope_theta as number | undefined) ?? 10000;
}

function ropeScalingFrom(json: Json): RopeScaling | null {
  const rs = (json.rope_scaling ?? json.rope_parameters) as Json | null | undefined;
  if (!rs) return null;
  const type = (rs.rope_type ?? rs.type) as string;
  if (type === 'default' || type === undefined) return null;
  if (type !== 'llama3' && type !== 'linear') throw new ShapeError(`config.json: rope_scaling type "${type}" is not supported (llama3, linear)`);
  return {
    type,
    factor: Number(rs.factor),
    lowFreqFactor: rs.low_freq_factor as number | undefined,
    highFreqFactor: rs.high_freq_factor as number | undefined,
    originalMaxPositionEmbeddings: rs.original_max_position_embeddings as number | undefined,
  };
}

const padTokenIdFrom = (json: Json): number | null => (typeof json.pad_token_id === 'number' ? json.pad_token_id : null);

/** Parse a Hugging Face config.json object. */
export function fromHfConfig(json: Json): ModelConfig {
  const type = json.model_type as string;
  if (type === 'llama' || type === 'mistral' || type === 'qwen2') {
    const where = `${type} config`;
    const numHeads = req(json, 'num_attention_heads', where);
    const cfg: LlamaConfig = {
      modelType: type,
      vocabSize: req(json, 'vocab_size', where),
      hiddenSize: req(json, 'hidden_size', where),
      numLayers: req(json, 'num_hidden_layers', where),
      numHeads,
      numKvHeads: (json.num_key_value_heads as number | undefined) ?? numHeads,
      intermediateSize: req(json, 'intermediate_size', where),
      headDim: (json.head_dim as number | undefined) ?? undefined,
      rmsNormEps: (json.rms_norm_eps as number | undefined) ?? 1e-6,
      ropeTheta: ropeThetaFrom(json),
      ropeScaling: ropeScalingFrom(json),
      maxPositionEmbeddings: (json.max_position_embeddings as number | undefined) ?? 2048,
      tieWordEmbeddings: (json.tie_word_embeddings as boolean | undefined) ?? false,
      qkvBias: type === 'qwen2' ? true : Boolean(json.attention_bias),
      oBias: type === 'qwen2' ? false : Boolean(json.attention_bias),
      slidingWindow: type === 'qwen2' && !json.use_sliding_window ? null : ((json.sliding_window as number | null | undefined) ?? null),
      bosTokenId: (json.bos_token_id as number | null | undefined) ?? null,
      eosTokenId: (json.eos_token_id as number | number[] | null | undefined) ?? null,
      padTokenId: padTokenIdFrom(json),
    };
    validateLlamaConfig(cfg);
    return { family: 'llama', ...cfg };
  }
  if (type === 'gpt2') {
    const act = (json.activation_function as string | undefined) ?? 'gelu_new';
    if (act !== 'gelu_new' && act !== 'gelu_pytorch_tanh') throw new ShapeError(`gpt2 config: activation_function "${act}" is not supported (gelu_new)`);
    const hiddenSize = req(json, 'n_embd', 'gpt2 config');
    return {
      family: 'gpt2',
      vocabSize: req(json, 'vocab_size', 'gpt2 config'),
      nPositions: req(json, 'n_positions', 'gpt2 config'),
      hiddenSize,
      numLayers: req(json, 'n_layer', 'gpt2 config'),
      numHeads: req(json, 'n_head', 'gpt2 config'),
      intermediateSize: (json.n_inner as number | null | undefined) ?? 4 * hiddenSize,
      layerNormEps: (json.layer_norm_epsilon as number | undefined) ?? 1e-5,
      bosTokenId: (json.bos_token_id as number | null | undefined) ?? null,
      eosTokenId: (json.eos_token_id as number | null | undefined) ?? null,
      padTokenId: padTokenIdFrom(json),
    };
  }
  throw new ShapeError(`config.json: model_type "${String(type)}" is not supported; supported: llama, mistral, qwen2, gpt2`);
}

function scalingJson(rs: RopeScaling): Json {
  return rs.type === 'linear'
    ? { rope_type: 'linear', factor: rs.factor }
    : { rope_type: 'llama3', factor: rs.factor, low_freq_factor: rs.lowFreqFactor ?? 1, high_freq_factor: rs.highFreqFactor ?? 4, original_max_position_embeddings: rs.originalMaxPositionEmbeddings ?? 8192 };
}

/** The Hugging Face config.json object for a configuration (what transformers reads back). */
export function toHfConfig(cfg: ModelConfig): Json {
  if (cfg.family === 'gpt2') {
    return {
      architectures: [HF_ARCHITECTURES.gpt2.causalLm], model_type: 'gpt2', vocab_size: cfg.vocabSize, n_positions: cfg.nPositions,
      n_embd: cfg.hiddenSize, n_layer: cfg.numLayers, n_head: cfg.numHeads, n_inner: cfg.intermediateSize ?? null,
      activation_function: 'gelu_new', layer_norm_epsilon: cfg.layerNormEps ?? 1e-5, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0,
      bos_token_id: cfg.bosTokenId ?? null, eos_token_id: cfg.eosTokenId ?? null, pad_token_id: cfg.padTokenId ?? null,
      tie_word_embeddings: true, torch_dtype: 'float32',
    };
  }
  const type = cfg.modelType ?? 'llama';
  const arch = HF_ARCHITECTURES[type].causalLm;
  const rs = cfg.ropeScaling;
  return {
    architectures: [arch], model_type: type, vocab_size: cfg.vocabSize, hidden_size: cfg.hiddenSize,
    num_hidden_layers: cfg.numLayers, num_attention_heads: cfg.numHeads, num_key_value_heads: cfg.numKvHeads,
    intermediate_size: cfg.intermediateSize, head_dim: headDimOf(cfg), hidden_act: 'silu', rms_norm_eps: cfg.rmsNormEps ?? 1e-5,
    max_position_embeddings: cfg.maxPositionEmbeddings ?? 2048,
    // Both spellings: transformers < 5 reads rope_theta/rope_scaling, ≥ 5 reads rope_parameters.
    rope_theta: cfg.ropeTheta ?? 10000,
    rope_scaling: rs ? scalingJson(rs) : null,
    rope_parameters: { rope_theta: cfg.ropeTheta ?? 10000, ...(rs ? scalingJson(rs) : { rope_type: 'default' }) },
    tie_word_embeddings: cfg.tieWordEmbeddings ?? false,
    ...(type === 'llama' ? { attention_bias: Boolean(cfg.qkvBias), mlp_bias: false } : {}),
    ...(type === 'mistral' ? { sliding_window: cfg.slidingWindow ?? null } : {}),
    ...(type === 'qwen2' ? { use_sliding_window: false, sliding_window: null } : {}),
    bos_token_id: cfg.bosTokenId ?? null, eos_token_id: cfg.eosTokenId ?? null, pad_token_id: cfg.padTokenId ?? null, torch_dtype: 'float32',
  };
}
