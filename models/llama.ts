/**
 * The Llama family (Touvron et al. 2023): RMSNorm, rotary positions (Llama 3 scaling too),
 * SwiGLU MLP and grouped-query attention; Qwen2's q/k/v biases and Mistral's sliding window are
 * options. Parameter names are Hugging Face's (`model.layers.0.self_attn.q_proj.weight`, …),
 * so checkpoints map one to one.
 *
 * Dimension letters: B batch, T new positions, S all positions (cache + new), C hidden size,
 * H query heads, G kv heads, D head dim, F MLP hidden size, V vocab.
 */
import {
  Embedding, Linear, Module, RMSNorm, add, attention, crossEntropy, linear, permute, reshape, rope, swiglu,
} from '../kernels/index.js';
import type { Tensor } from '../kernels/index.js';
import type { InitOptions } from '../kernels/module.js';
import { ColumnParallelLinear, RowParallelLinear, VocabParallelEmbedding } from '../kernels/distributed/parallel-layers.js';
import type { TensorParallel } from '../kernels/distributed/tensor-parallel.js';
import { ShapeError } from '../kernels/errors.js';
import { defaultPositions, KVCache, vocabParallelLoss } from './causal-lm.js';
import { pipelineStage, vocabShardOf } from './causal-lm.js';
import type { CausalLM, ForwardOptions, PipelineStage, VocabShard } from './causal-lm.js';
import { headDimOf, validateLlamaConfig } from './config.js';
import type { LlamaConfig, ModelConfig } from './config.js';
import { inverseFrequencies, ropeTablesFor } from './rope.js';

export type { LlamaConfig } from './config.js';

type InitOpts = InitOptions;

/** A projection: the whole Linear, or under tensor parallel its column- or row-parallel shard. */
type Projection = Linear | ColumnParallelLinear | RowParallelLinear;

function projection(kind: 'column' | 'row', inF: number, outF: number, opts: InitOpts & { bias?: boolean }): Projection {
  if (!opts.tp) return new Linear(inF, outF, opts);
  return kind === 'column' ? new ColumnParallelLinear(opts.tp, inF, outF, opts) : new RowParallelLinear(opts.tp, inF, outF, opts);
}

/** Heads per rank under tensor parallel (Megatron splits query and KV heads alike). */
function headsPerRank(cfg: LlamaConfig, tp: TensorParallel | null | undefined): { H: number; G: number } {
  const world = tp?.world ?? 1;
  if (cfg.numHeads % world !== 0 || cfg.numKvHeads % world !== 0) {
    throw new ShapeError(`tensor parallel ${world}: num_attention_heads (${cfg.numHeads}) and num_key_value_heads (${cfg.numKvHeads}) must both divide by it`);
  }
  return { H: cfg.numHeads / world, G: cfg.numKvHeads / world };
}

class LlamaAttention extends Module {
  readonly q: Projection;
  readonly k: Projection;
  readonly v: Projection;
  readonly o: Projection;
  private readonly heads: { H: number; G: number };

  constructor(readonly cfg: LlamaConfig, opts: InitOpts) {
    super();
    const D = headDimOf(cfg);
    this.heads = headsPerRank(cfg, opts.tp);
    this.q = this.child('q_proj', projection('column', cfg.hiddenSize, cfg.numHeads * D, { ...opts, bias: cfg.qkvBias }));
    this.k = this.child('k_proj', projection('column', cfg.hiddenSize, cfg.numKvHeads * D, { ...opts, bias: cfg.qkvBias }));
    this.v = this.child('v_proj', projection('column', cfg.hiddenSize, cfg.numKvHeads * D, { ...opts, bias: cfg.qkvBias }));
    this.o = this.child('o_proj', projection('row', cfg.numHeads * D, cfg.hiddenSize, { ...opts, bias: cfg.oBias }));
  }

  forward(x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | null, cache: KVCache | null, layer: number): Tensor {
    const [B, T] = x.shape;
    const { H, G } = this.heads, D = headDimOf(this.cfg); // this rank's heads
    const heads = (y: Tensor, n: number): Tensor => permute(reshape(y, [B, T, n, D]), [0, 2, 1, 3]); // [B, n, T, D]
    const q = rope(heads(this.q.forward(x), H), cos, sin); // [B, H, T, D]
    let k = rope(heads(this.k.forward(x), G), cos, sin); // [B, G, T, D]
    let v = heads(this.v.forward(x), G); // [B, G, T, D]
    if (cache) ({ k, v } = cache.append(layer, k, v)); // [B, G, S, D]
    const o = attention(q, k, v, { causal: true, mask, window: this.cfg.slidingWindow ?? 0 }); // [B, H, T, D]
    return this.o.forward(reshape(permute(o, [0, 2, 1, 3]), [B, T, H * D])); // [B, T, C]
  }
}

class LlamaMLP extends Module {
  readonly gate: Projection;
  readonly up: Projection;
  readonly down: Projection;

  constructor(cfg: LlamaConfig, opts: InitOpts) {
    super();
    this.gate = this.child('gate_proj', projection('column', cfg.hiddenSize, cfg.intermediateSize, opts));
    this.up = this.child('up_proj', projection('column', cfg.hiddenSize, cfg.intermediateSize, opts));
    this.down = this.child('down_proj', projection('row', cfg.intermediateSize, cfg.hiddenSize, opts));
  }

  forward(x: Tensor): Tensor {
    return this.down.forward(swiglu(this.gate.forward(x), this.up.forward(x))); // [B, T, F] → [B, T, C]
  }
}

class LlamaDecoderLayer extends Module {
  readonly attn: LlamaAttention;
  readonly mlp: LlamaMLP;
  readonly inputNorm: RMSNorm;
  readonly postNorm: RMSNorm;

  constructor(cfg: LlamaConfig, opts: InitOpts) {
    super();
    this.attn = this.child('self_attn', new LlamaAttention(cfg, opts));
    this.mlp = this.child('mlp', new LlamaMLP(cfg, opts));
    this.inputNorm = this.child('input_layernorm', new RMSNorm(cfg.hiddenSize, cfg.rmsNormEps ?? 1e-5, opts));
    this.postNorm = this.child('post_attention_layernorm', new RMSNorm(cfg.hiddenSize, cfg.rmsNormEps ?? 1e-5, opts));
  }

  forward(x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | null, cache: KVCache | null, layer: number): Tensor {
    const h = add(x, this.attn.forward(this.inputNorm.forward(x), cos, sin, mask, cache, layer)); // [B, T, C]
    return add(h, this.mlp.forward(this.postNorm.forward(h))); // [B, T, C]
  }
}

class LlamaBackbone extends Module {
  /** Absent on the middle pipeline stages (and on the last unless the head is tied to it). */
  readonly embedding: Embedding | VocabParallelEmbedding | null;
  /** This stage's layers; `layers[k]` is layer `stage.layers[0] + k` of the whole model. */
  readonly layers: LlamaDecoderLayer[];
  readonly finalNorm: RMSNorm | null;

  constructor(cfg: LlamaConfig, opts: InitOpts, readonly stage: PipelineStage) {
    super();
    const withEmbedding = stage.first || (stage.last && cfg.tieWordEmbeddings === true);
    this.embedding = withEmbedding
      ? this.child('embed_tokens', opts.tp ? new VocabParallelEmbedding(opts.tp, cfg.vocabSize, cfg.hiddenSize, opts) : new Embedding(cfg.vocabSize, cfg.hiddenSize, opts))
      : null;
    const [from, to] = stage.layers;
    this.layers = Array.from({ length: to - from }, (_, k) => this.child(`layers.${from + k}`, new LlamaDecoderLayer(cfg, opts)));
    this.finalNorm = stage.last ? this.child('norm', new RMSNorm(cfg.hiddenSize, cfg.rmsNormEps ?? 1e-5, opts)) : null;
  }

  get embed(): Embedding | VocabParallelEmbedding {
    if (!this.embedding) throw new ShapeError(`pipeline stage ${this.stage.stage} holds no token embedding`);
    return this.embedding;
  }

  get norm(): RMSNorm {
    if (!this.finalNorm) throw new ShapeError(`pipeline stage ${this.stage.stage} holds no final norm (only the last stage does)`);
    return this.finalNorm;
  }
}

export class LlamaForCausalLM extends Module implements CausalLM {
  readonly config: ModelConfig;
  readonly model: LlamaBackbone;
  readonly lmHead: Linear | ColumnParallelLinear | null;
  /** Set when this is one rank's tensor-parallel shard: logits are then this rank's vocabulary columns. */
  readonly tensorParallel: VocabShard | null;
  readonly pipeline: PipelineStage | null;
  private readonly invFreq: Float64Array;
  /** Shared cos/sin tables for the plain case (positions 0 … T−1), by T. */
  private readonly tables = new Map<number, { cos: Tensor; sin: Tensor }>();

  constructor(readonly cfg: LlamaConfig, readonly opts: InitOpts) {
    super();
    validateLlamaConfig(cfg);
    this.config = { family: 'llama', ...cfg };
    const stage = pipelineStage(cfg.numLayers, opts.pp);
    this.pipeline = opts.pp ? stage : null;
    this.model = this.child('model', new LlamaBackbone(cfg, opts, stage));
    this.lmHead = cfg.tieWordEmbeddings || !stage.last ? null : this.child('lm_head', projection('column', cfg.hiddenSize, cfg.vocabSize, opts) as Linear | ColumnParallelLinear);
    this.tensorParallel = vocabShardOf(opts.tp, cfg.vocabSize);
    this.invFreq = inverseFrequencies(headDimOf(cfg), cfg.ropeTheta ?? 10000, cfg.ropeScaling ?? null);
  }

  get contextWindow(): number {
    return this.cfg.maxPositionEmbeddings ?? 2048;
  }

  newCache(capacity?: number): KVCache {
    // Sliding windows count back from the end of the key axis, which a fixed buffer does not have.
    return new KVCache(this.cfg.numLayers, this.cfg.slidingWindow ? null : (capacity ?? null));
  }

  /** cos/sin [T, D/2] for 0 … T−1 (cached), or [B, T, D/2] for explicit positions. */
  private ropeFor(B: number, T: number, opts: ForwardOptions): { cos: Tensor; sin: Tensor } {
    const past = opts.cache?.length ?? 0;
    if (!opts.positions && past === 0) {
      let t = this.tables.get(T);
      if (!t) {
        t = ropeTablesFor(defaultPositions(1, T, 0), this.invFreq, this.opts, true);
        t.cos.keep();
        t.sin.keep();
        this.tables.set(T, t);
      }
      return t;
    }
    const positions = opts.positions ?? defaultPositions(B, T, past);
    return ropeTablesFor(positions, this.invFreq, this.opts);
  }

  hidden(ids: Tensor, opts: ForwardOptions = {}): Tensor {
    const [B, T] = ids.shape;
    // Tables built for explicit positions belong to the caller's tidy scope (backward reads them).
    const { cos, sin } = this.ropeFor(B, T, opts);
    const mask = opts.cache ? opts.cache.maskFor(opts.mask ?? null, B, T) : (opts.mask ?? null);
    let h = this.model.embed.forward(ids); // [B, T, C]
    this.model.layers.forEach((layer, i) => {
      h = layer.forward(h, cos, sin, mask, opts.cache ?? null, i); // [B, T, C]
    });
    return this.model.norm.forward(h); // [B, T, C]
  }

  stageForward(input: Tensor): Tensor {
    const stage = this.pipeline ?? pipelineStage(this.cfg.numLayers, null);
    const [B, T] = input.shape;
    const { cos, sin } = this.ropeFor(B, T, {});
    let h = stage.first ? this.model.embed.forward(input) : input; // [B, T, C]
    this.model.layers.forEach((layer, k) => {
      h = layer.forward(h, cos, sin, null, null, stage.layers[0] + k); // [B, T, C]
    });
    return stage.last ? this.logitsFrom(this.model.norm.forward(h)) : h; // [B, T, V] or [B, T, C]
  }

  logitsFrom(hidden: Tensor): Tensor {
    if (this.lmHead) return this.lmHead.forward(hidden); // [..., V] (or [..., V/tp])
    const x = this.tensorParallel ? this.tensorParallel.tp.copyIn(hidden) : hidden; // the tied head is column-parallel too
    return linear(x, this.model.embed.weight); // [..., V] (or [..., V/tp])
  }

  /** ids i32 [B, T] → logits [B, T, V]. */
  forward(ids: Tensor, opts: ForwardOptions = {}): Tensor {
    return this.logitsFrom(this.hidden(ids, opts));
  }

  /** Mean next-token cross-entropy; targets i32 [B, T] with −100 on positions to skip. */
  loss(ids: Tensor, targets: Tensor, count?: number): Tensor {
    if (!this.tensorParallel) return crossEntropy(this.forward(ids), targets, { count }).loss; // []
    return vocabParallelLoss(this.tensorParallel, this.forward(ids), targets, count); // []
  }

  override dispose(): void {
    super.dispose();
    for (const { cos, sin } of this.tables.values()) {
      cos.dispose();
      sin.dispose();
    }
    this.tables.clear();
  }
}
