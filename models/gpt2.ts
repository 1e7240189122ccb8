/**
 * The GPT-2 family (Radford et al. 2019): learned positions, pre-LayerNorm blocks, GELU (tanh)
 * MLP, multi-head attention, LM head tied to the token embedding. Parameters keep Hugging Face's
 * names and its Conv1D layout (weights stored [in, out]), so checkpoints load without transposes.
 */
import {
  Embedding, LayerNorm, Module, add, attention, crossEntropy, gelu, linear, matmul, permute, reshape, slice, tensor, zeros,
} from '../kernels/index.js';
import { initWeight } from '../kernels/module.js';
import type { InitOptions } from '../kernels/module.js';
import type { Tensor } from '../kernels/index.js';
import { ColumnParallelLinear, RowParallelLinear, VocabParallelEmbedding } from '../kernels/distributed/parallel-layers.js';
import { ShapeError } from '../kernels/errors.js';
import { defaultPositions, KVCache, vocabParallelLoss } from './causal-lm.js';
import { pipelineStage, vocabShardOf } from './causal-lm.js';
import type { CausalLM, ForwardOptions, PipelineStage, VocabShard } from './causal-lm.js';
import type { Gpt2Config, ModelConfig } from './config.js';

type InitOpts = InitOptions;

/** Hugging Face's Conv1D: y = x·W + b with W [in, out]. */
class Conv1D extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(inFeatures: number, outFeatures: number, opts: InitOpts) {
    super();
    this.weight = this.param('weight', initWeight([inFeatures, outFeatures], opts)); // [in, out]
    this.bias = this.param('bias', zeros([outFeatures], opts)); // [out]
  }

  forward(x: Tensor): Tensor {
    return add(matmul(x, this.weight), this.bias); // [..., out]
  }
}

type Projection = Conv1D | ColumnParallelLinear | RowParallelLinear;

/** Conv1D, or under tensor parallel its column- or row-parallel shard (`outLocal`: the fused q|k|v's parts). */
function conv1d(kind: 'column' | 'row', inF: number, outF: number, opts: InitOpts, outLocal?: number): Projection {
  if (!opts.tp) return new Conv1D(inF, outF, opts);
  const o = { ...opts, bias: true, conv1d: true };
  return kind === 'column' ? new ColumnParallelLinear(opts.tp, inF, outF, o, outLocal) : new RowParallelLinear(opts.tp, inF, outF, o);
}

class Gpt2Attention extends Module {
  readonly cAttn: Projection;
  readonly cProj: Projection;
  /** Heads on this rank. */
  private readonly heads: number;

  constructor(readonly cfg: Gpt2Config, opts: InitOpts) {
    super();
    const world = opts.tp?.world ?? 1;
    if (cfg.numHeads % world !== 0) throw new ShapeError(`tensor parallel ${world}: n_head (${cfg.numHeads}) must divide by it`);
    this.heads = cfg.numHeads / world;
    const C = cfg.hiddenSize, D = C / cfg.numHeads;
    // The fused projection holds q | k | v; each part splits by heads, so a rank holds 3 × its heads.
    this.cAttn = this.child('c_attn', conv1d('column', C, 3 * C, opts, 3 * this.heads * D));
    this.cProj = this.child('c_proj', conv1d('row', C, C, opts));
  }

  forward(x: Tensor, mask: Tensor | null, cache: KVCache | null, layer: number): Tensor {
    const [B, T, C] = x.shape;
    const H = this.heads, D = C / this.cfg.numHeads; // this rank's heads
    const qkv = permute(reshape(this.cAttn.forward(x), [B, T, 3, H, D]), [2, 0, 3, 1, 4]); // [3, B, H, T, D]
    const part = (i: number): Tensor => reshape(slice(qkv, 0, i, i + 1), [B, H, T, D]); // [B, H, T, D]
    let k = part(1), v = part(2);
    if (cache) ({ k, v } = cache.append(layer, k, v)); // [B, H, S, D]
    const o = attention(part(0), k, v, { causal: true, mask }); // [B, H, T, D]
    return this.cProj.forward(reshape(permute(o, [0, 2, 1, 3]), [B, T, H * D])); // [B, T, C]
  }
}

class Gpt2MLP extends Module {
  readonly cFc: Projection;
  readonly cProj: Projection;

  constructor(cfg: Gpt2Config, opts: InitOpts) {
    super();
    const F = cfg.intermediateSize ?? 4 * cfg.hiddenSize;
    this.cFc = this.child('c_fc', conv1d('column', cfg.hiddenSize, F, opts));
    this.cProj = this.child('c_proj', conv1d('row', F, cfg.hiddenSize, opts));
  }

  forward(x: Tensor): Tensor {
    return this.cProj.forward(gelu(this.cFc.forward(x))); // [B, T, F] → [B, T, C]
  }
}

class Gpt2Block extends Module {
  readonly ln1: LayerNorm;
  readonly attn: Gpt2Attention;
  readonly ln2: LayerNorm;
  readonly mlp: Gpt2MLP;

  constructor(cfg: Gpt2Config, opts: InitOpts) {
    super();
    const eps = cfg.layerNormEps ?? 1e-5;
    this.ln1 = this.child('ln_1', new LayerNorm(cfg.hiddenSize, eps, opts));
    this.attn = this.child('attn', new Gpt2Attention(cfg, opts));
    this.ln2 = this.child('ln_2', new LayerNorm(cfg.hiddenSize, eps, opts));
    this.mlp = this.child('mlp', new Gpt2MLP(cfg, opts));
  }

  forward(x: Tensor, mask: Tensor | null, cache: KVCache | null, layer: number): Tensor {
    const h = add(x, this.attn.forward(this.ln1.forward(x), mask, cache, layer)); // [B, T, C]
    return add(h, this.mlp.forward(this.ln2.forward(h))); // [B, T, C]
  }
}

class Gpt2Backbone extends Module {
  /** On the first pipeline stage, and on the last for the tied head; absent on the middle ones. */
  readonly tokenEmbedding: Embedding | VocabParallelEmbedding | null;
  readonly positionEmbedding: Embedding | null;
  /** This stage's blocks; `h[k]` is block `stage.layers[0] + k` of the whole model. */
  readonly h: Gpt2Block[];
  readonly finalNorm: LayerNorm | null;

  constructor(cfg: Gpt2Config, opts: InitOpts, readonly stage: PipelineStage) {
    super();
    this.tokenEmbedding = stage.first || stage.last
      ? this.child('wte', opts.tp ? new VocabParallelEmbedding(opts.tp, cfg.vocabSize, cfg.hiddenSize, opts) : new Embedding(cfg.vocabSize, cfg.hiddenSize, opts))
      : null;
    this.positionEmbedding = stage.first ? this.child('wpe', new Embedding(cfg.nPositions, cfg.hiddenSize, { ...opts, std: 0.01 })) : null;
    const [from, to] = stage.layers;
    this.h = Array.from({ length: to - from }, (_, k) => this.child(`h.${from + k}`, new Gpt2Block(cfg, opts)));
    this.finalNorm = stage.last ? this.child('ln_f', new LayerNorm(cfg.hiddenSize, cfg.layerNormEps ?? 1e-5, opts)) : null;
  }

  get wte(): Embedding | VocabParallelEmbedding {
    return held(this.tokenEmbedding, this.stage, 'token embedding');
  }

  get wpe(): Embedding {
    return held(this.positionEmbedding, this.stage, 'position embedding');
  }

  get lnF(): LayerNorm {
    return held(this.finalNorm, this.stage, 'final norm');
  }
}

function held<T>(m: T | null, stage: PipelineStage, what: string): T {
  if (!m) throw new ShapeError(`pipeline stage ${stage.stage} of ${stage.stages} holds no ${what}`);
  return m;
}

export class Gpt2LMHeadModel extends Module implements CausalLM {
  readonly config: ModelConfig;
  readonly transformer: Gpt2Backbone;
  /** Set when this is one rank's tensor-parallel shard: logits are then this rank's vocabulary columns. */
  readonly tensorParallel: VocabShard | null;
  readonly pipeline: PipelineStage | null;

  constructor(readonly cfg: Gpt2Config, readonly opts: InitOpts) {
    super();
    this.config = { family: 'gpt2', ...cfg };
    const stage = pipelineStage(cfg.numLayers, opts.pp);
    this.pipeline = opts.pp ? stage : null;
    this.transformer = this.child('transformer', new Gpt2Backbone(cfg, opts, stage));
    this.tensorParallel = vocabShardOf(opts.tp, cfg.vocabSize);
  }

  get contextWindow(): number {
    return this.cfg.nPositions;
  }

  newCache(capacity?: number): KVCache {
    return new KVCache(this.cfg.numLayers, capacity ?? null);
  }

  stageForward(input: Tensor): Tensor {
    const stage = this.pipeline ?? pipelineStage(this.cfg.numLayers, null);
    let h = stage.first ? this.embed(input, {}) : input; // [B, T, C]
    this.transformer.h.forEach((block, k) => {
      h = block.forward(h, null, null, stage.layers[0] + k); // [B, T, C]
    });
    return stage.last ? this.logitsFrom(this.transformer.lnF.forward(h)) : h; // [B, T, V] or [B, T, C]
  }

  private embed(ids: Tensor, opts: ForwardOptions): Tensor {
    const [B, T] = ids.shape;
    const positions = opts.positions ?? defaultPositions(B, T, opts.cache?.length ?? 0);
    const posIds = tensor(positions.flat(), [B, T], { ...this.opts, dtype: 'i32' }); // [B, T]
    return add(this.transformer.wte.forward(ids), this.transformer.wpe.forward(posIds)); // [B, T, C]
  }

  hidden(ids: Tensor, opts: ForwardOptions = {}): Tensor {
    const [B, T] = ids.shape;
    const mask = opts.cache ? opts.cache.maskFor(opts.mask ?? null, B, T) : (opts.mask ?? null);
    let h = this.embed(ids, opts); // [B, T, C]
    this.transformer.h.forEach((block, i) => {
      h = block.forward(h, mask, opts.cache ?? null, i); // [B, T, C]
    });
    return this.transformer.lnF.forward(h); // [B, T, C]
  }

  logitsFrom(hidden: Tensor): Tensor {
    const x = this.tensorParallel ? this.tensorParallel.tp.copyIn(hidden) : hidden; // the tied head is column-parallel under TP
    return linear(x, this.transformer.wte.weight); // [..., V] tied head (or [..., V/tp])
  }

  forward(ids: Tensor, opts: ForwardOptions = {}): Tensor {
    return this.logitsFrom(this.hidden(ids, opts));
  }

  loss(ids: Tensor, targets: Tensor, count?: number): Tensor {
    if (!this.tensorParallel) return crossEntropy(this.forward(ids), targets, { count }).loss; // []
    return vocabParallelLoss(this.tensorParallel, this.forward(ids), targets, count); // []
  }
}
