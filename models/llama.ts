/**
 * A Llama-style decoder-only transformer (Touvron et al. 2023): RMSNorm, rotary positions,
 * SwiGLU MLP and grouped-query attention, with Hugging Face parameter names
 * (`model.layers.0.self_attn.q_proj.weight`, …) so that checkpoints map one to one.
 *
 * Dimension letters: B batch, T time, C hidden size, H query heads, G kv heads, D head dim,
 * F MLP hidden size, V vocab.
 */
import {
  Embedding, Linear, Module, RMSNorm, add as addResidual, attention, crossEntropy, linear, permute, reshape, rope, swiglu, tensor,
} from '../kernels/index.js';
import type { CreateOptions, Generator, Tensor } from '../kernels/index.js';

export interface LlamaConfig {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  intermediateSize: number;
  /** RMSNorm epsilon. Default 1e-5. */
  rmsNormEps?: number;
  /** RoPE base θ. Default 10000. */
  ropeTheta?: number;
  /** Share the LM head with the token embedding. Default false. */
  tieWordEmbeddings?: boolean;
}

/** cos/sin tables [T, D/2] for positions offset … offset+T−1 (Su et al. 2021, eq. 15). */
export function ropeTables(T: number, D: number, theta: number, opts: CreateOptions = {}, offset = 0): { cos: Tensor; sin: Tensor } {
  const half = D / 2;
  const cos = new Float64Array(T * half), sin = new Float64Array(T * half);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const angle = (offset + t) * Math.pow(theta, (-2 * i) / D);
      cos[t * half + i] = Math.cos(angle);
      sin[t * half + i] = Math.sin(angle);
    }
  }
  return { cos: tensor(cos, [T, half], opts), sin: tensor(sin, [T, half], opts) };
}

class LlamaAttention extends Module {
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly o: Linear;

  constructor(readonly cfg: LlamaConfig, opts: CreateOptions & { gen: Generator }) {
    super();
    const D = cfg.hiddenSize / cfg.numHeads;
    this.q = this.child('q_proj', new Linear(cfg.hiddenSize, cfg.numHeads * D, opts));
    this.k = this.child('k_proj', new Linear(cfg.hiddenSize, cfg.numKvHeads * D, opts));
    this.v = this.child('v_proj', new Linear(cfg.hiddenSize, cfg.numKvHeads * D, opts));
    this.o = this.child('o_proj', new Linear(cfg.numHeads * D, cfg.hiddenSize, opts));
  }

  forward(x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | null): Tensor {
    const [B, T] = x.shape;
    const H = this.cfg.numHeads, G = this.cfg.numKvHeads, D = this.cfg.hiddenSize / H;
    const heads = (y: Tensor, n: number): Tensor => permute(reshape(y, [B, T, n, D]), [0, 2, 1, 3]); // [B, n, T, D]
    const q = rope(heads(this.q.forward(x), H), cos, sin); // [B, H, T, D]
    const k = rope(heads(this.k.forward(x), G), cos, sin); // [B, G, T, D]
    const v = heads(this.v.forward(x), G); // [B, G, T, D]
    const o = attention(q, k, v, { causal: true, mask }); // [B, H, T, D]
    return this.o.forward(reshape(permute(o, [0, 2, 1, 3]), [B, T, H * D])); // [B, T, C]
  }
}

class LlamaMLP extends Module {
  readonly gate: Linear;
  readonly up: Linear;
  readonly down: Linear;

  constructor(cfg: LlamaConfig, opts: CreateOptions & { gen: Generator }) {
    super();
    this.gate = this.child('gate_proj', new Linear(cfg.hiddenSize, cfg.intermediateSize, opts));
    this.up = this.child('up_proj', new Linear(cfg.hiddenSize, cfg.intermediateSize, opts));
    this.down = this.child('down_proj', new Linear(cfg.intermediateSize, cfg.hiddenSize, opts));
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

  constructor(cfg: LlamaConfig, opts: CreateOptions & { gen: Generator }) {
    super();
    this.attn = this.child('self_attn', new LlamaAttention(cfg, opts));
    this.mlp = this.child('mlp', new LlamaMLP(cfg, opts));
    this.inputNorm = this.child('input_layernorm', new RMSNorm(cfg.hiddenSize, cfg.rmsNormEps ?? 1e-5, opts));
    this.postNorm = this.child('post_attention_layernorm', new RMSNorm(cfg.hiddenSize, cfg.rmsNormEps ?? 1e-5, opts));
  }

  forward(x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | null): Tensor {
    const h = addResidual(x, this.attn.forward(this.inputNorm.forward(x), cos, sin, mask)); // [B, T, C]
    return addResidual(h, this.mlp.forward(this.postNorm.forward(h))); // [B, T, C]
  }
}

class LlamaBackbone extends Module {
  readonly embed: Embedding;
  readonly layers: LlamaDecoderLayer[];
  readonly norm: RMSNorm;

  constructor(cfg: LlamaConfig, opts: CreateOptions & { gen: Generator }) {
    super();
    this.embed = this.child('embed_tokens', new Embedding(cfg.vocabSize, cfg.hiddenSize, opts));
    this.layers = Array.from({ length: cfg.numLayers }, (_, i) => this.child(`layers.${i}`, new LlamaDecoderLayer(cfg, opts)));
    this.norm = this.child('norm', new RMSNorm(cfg.hiddenSize, cfg.rmsNormEps ?? 1e-5, opts));
  }
}

export class LlamaForCausalLM extends Module {
  readonly model: LlamaBackbone;
  readonly lmHead: Linear | null;
  private tables = new Map<number, { cos: Tensor; sin: Tensor }>();

  constructor(readonly config: LlamaConfig, readonly opts: CreateOptions & { gen: Generator }) {
    super();
    this.model = this.child('model', new LlamaBackbone(config, opts));
    this.lmHead = config.tieWordEmbeddings ? null : this.child('lm_head', new Linear(config.hiddenSize, config.vocabSize, opts));
  }

  private ropeFor(T: number): { cos: Tensor; sin: Tensor } {
    let t = this.tables.get(T);
    if (!t) {
      const D = this.config.hiddenSize / this.config.numHeads;
      t = ropeTables(T, D, this.config.ropeTheta ?? 10000, this.opts);
      t.cos.keep();
      t.sin.keep();
      this.tables.set(T, t);
    }
    return t;
  }

  /** ids i32 [B, T] → logits [B, T, V]. `mask` f32 [B, T] marks real tokens (1) and padding (0). */
  forward(ids: Tensor, mask: Tensor | null = null): Tensor {
    const { cos, sin } = this.ropeFor(ids.shape[1]);
    let h = this.model.embed.forward(ids); // [B, T, C]
    for (const layer of this.model.layers) h = layer.forward(h, cos, sin, mask); // [B, T, C]
    h = this.model.norm.forward(h); // [B, T, C]
    return this.lmHead ? this.lmHead.forward(h) : linear(h, this.model.embed.weight); // [B, T, V]
  }

  /** Mean next-token cross-entropy; targets i32 [B, T] with −100 on positions to skip. */
  loss(ids: Tensor, targets: Tensor, count?: number): Tensor {
    return crossEntropy(this.forward(ids), targets, { count }).loss; // []
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
