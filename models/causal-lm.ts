/**
 * What every causal LM offers to heads, generation and the recipes: hidden states, logits, and
 * an optional KV cache for incremental decoding.
 */
import { AlignerError } from '../kernels/errors.js';
import { IGNORE_INDEX, concat, isGradEnabled, mulScalar, neg, sum, tensor, tokenLogprobs, zeros } from '../kernels/index.js';
import { shardRange, vocabParallelTokenLogprobs } from '../kernels/distributed/tensor-parallel.js';
import type { TensorParallel } from '../kernels/distributed/tensor-parallel.js';
import { kernel } from '../kernels/op.js';
import type { Module, Tensor } from '../kernels/index.js';
import type { ModelConfig } from './config.js';

export interface ForwardOptions {
  /** f32 [B, S] over cached + new positions: 1 = real token, 0 = padding. */
  mask?: Tensor | null;
  /** Position of each new token per row, [B][T]; default past … past+T−1 for every row. */
  positions?: readonly (readonly number[])[] | null;
  /** Extended in place with this call's keys and values (inference only). */
  cache?: KVCache | null;
}

export interface CausalLM extends Module {
  readonly config: ModelConfig;
  /** ids i32 [B, T] → final hidden states [B, T, C] (after the last norm). */
  hidden(ids: Tensor, opts?: ForwardOptions): Tensor;
  /** hidden [..., C] → logits [..., V]. */
  logitsFrom(hidden: Tensor): Tensor;
  /** ids i32 [B, T] → logits [B, T, V]. */
  forward(ids: Tensor, opts?: ForwardOptions): Tensor;
  /** A KV cache; with a capacity, buffers are allocated once (see KVCache). */
  newCache(capacity?: number): KVCache;
  /** Longest sequence the model's positions cover. */
  readonly contextWindow: number;
  /** Set on one rank's tensor-parallel shard: `logitsFrom` then gives this rank's vocabulary columns only. */
  readonly tensorParallel?: VocabShard | null;
  /** Set when the model holds one pipeline stage; `stageForward` then runs it. */
  readonly pipeline?: PipelineStage | null;
  /**
   * One pipeline stage: ids [B, T] (first stage) or hidden [B, T, C] from the stage before, to
   * hidden [B, T, C] for the next stage or, on the last, logits [B, T, V].
   */
  stageForward?(input: Tensor): Tensor;
}

/** Which part of the model a pipeline stage holds. */
export interface PipelineStage {
  stage: number;
  stages: number;
  /** Decoder layers [from, to) of the whole model. */
  layers: [number, number];
  first: boolean;
  last: boolean;
}

/** The tied embedding's name in each family (the first and the last pipeline stage both hold it). */
export const TIED_EMBEDDING: Record<'llama' | 'gpt2', string> = { llama: 'model.embed_tokens.weight', gpt2: 'transformer.wte.weight' };

/** Whether the LM head is the token embedding (GPT-2 always; Llama when tie_word_embeddings). */
export function hasTiedEmbedding(config: ModelConfig): boolean {
  return config.family === 'gpt2' || config.tieWordEmbeddings === true;
}

/** Whether this is the last stage's copy of the tied embedding, which the clip and the checkpoint skip. */
export function isTiedCopy(model: Pick<CausalLM, 'pipeline' | 'config'>, name: string): boolean {
  const stage = model.pipeline;
  return !!stage && stage.last && !stage.first && hasTiedEmbedding(model.config) && name === TIED_EMBEDDING[model.config.family];
}

/** Stage s of S holds layers [⌊s·L/S⌋, ⌊(s+1)·L/S⌋): consecutive, as even as L allows. */
export function pipelineStage(numLayers: number, pp: { stage: number; stages: number } | null | undefined): PipelineStage {
  const { stage, stages } = pp ?? { stage: 0, stages: 1 };
  if (!(stages >= 1 && stage >= 0 && stage < stages) || stages > numLayers) {
    throw new AlignerError(`pipeline stage ${stage} of ${stages}: a model of ${numLayers} layers allows 1 … ${numLayers} stages`);
  }
  return { stage, stages, layers: [Math.floor((stage * numLayers) / stages), Math.floor(((stage + 1) * numLayers) / stages)], first: stage === 0, last: stage === stages - 1 };
}

/** Which vocabulary columns a tensor-parallel rank's logits hold: [vocabFrom, vocabFrom + logits' last dim). */
export interface VocabShard {
  tp: TensorParallel;
  vocabFrom: number;
}

/** This rank's vocabulary columns under tensor parallel (null without). */
export function vocabShardOf(tp: TensorParallel | null | undefined, vocabSize: number): VocabShard | null {
  return tp ? { tp, vocabFrom: shardRange(vocabSize, tp.rank, tp.world)[0] } : null;
}

/** log p(target) for each target, whether the logits are whole or one rank's vocabulary columns. */
export function targetLogprobs(model: Pick<CausalLM, 'tensorParallel'>, logits: Tensor, targets: Tensor): Tensor {
  const shard = model.tensorParallel;
  return shard ? vocabParallelTokenLogprobs(shard.tp, logits, targets, shard.vocabFrom) : tokenLogprobs(logits, targets); // [...targets]
}

/** Mean next-token cross-entropy over vocabulary-parallel logits (crossEntropy's semantics). */
export function vocabParallelLoss(shard: VocabShard, logits: Tensor, targets: Tensor, count?: number): Tensor {
  const lp = vocabParallelTokenLogprobs(shard.tp, logits, targets, shard.vocabFrom); // [...targets]
  let n = count;
  if (n === undefined) {
    n = 0;
    for (const t of targets.toArraySync()) if (t !== IGNORE_INDEX) n++;
  }
  return mulScalar(neg(sum(lp)), 1 / Math.max(n, 1)); // []
}

/**
 * Keys and values of past positions, per layer: [B, G, S, D] each.
 *
 * Without a capacity, each step concatenates (simple, any step size). With a capacity, buffers
 * [B, G, capacity, D] are allocated once and each step writes its keys in place, so a decode
 * step costs O(1) copies instead of O(S); attention then reads the whole buffer and the mask
 * (see `maskFor`) hides the positions not yet written. After the first fill, such a cache takes
 * one token per step, and it must not be used with sliding-window attention (whose window is
 * measured from the end of the key axis).
 */
export class KVCache {
  private readonly k: (Tensor | null)[];
  private readonly v: (Tensor | null)[];
  private readonly lens: number[];

  constructor(numLayers: number, readonly capacity: number | null = null) {
    this.k = new Array<Tensor | null>(numLayers).fill(null);
    this.v = new Array<Tensor | null>(numLayers).fill(null);
    this.lens = new Array<number>(numLayers).fill(0);
  }

  /** Number of cached positions (as seen by the first layer). */
  get length(): number {
    return this.lens[0];
  }

  /**
   * The key mask to use with this step's keys: the caller's mask [B, length + T] as is, or
   * padded with zeros to [B, capacity] when the keys come from the fixed buffers.
   */
  maskFor(mask: Tensor | null, B: number, T: number): Tensor | null {
    const past = this.length;
    if (this.capacity === null || past === 0) return mask;
    const filled = mask ?? tensor(new Array<number>(B * (past + T)).fill(1), [B, past + T]);
    const rest = this.capacity - (past + T);
    return rest === 0 ? filled : concat([filled, zeros([B, rest], { backend: filled.backend })], 1); // [B, capacity]
  }

  /** Append this step's k, v [B, G, T, D]; returns the keys and values attention should read. */
  append(layer: number, k: Tensor, v: Tensor): { k: Tensor; v: Tensor } {
    if (isGradEnabled()) throw new AlignerError('KVCache: the cache is for inference; run generation inside noGrad()');
    const T = k.shape[2], past = this.lens[layer];
    this.lens[layer] += T;
    if (this.capacity === null) return this.concatStep(layer, k, v);
    const cap = this.capacity;
    if (past + T > cap) throw new AlignerError(`KVCache: ${past + T} positions exceed the capacity of ${cap}`);
    if (past > 0 && T !== 1) throw new AlignerError(`KVCache: after the first fill a fixed-capacity cache takes one token per step, got ${T}`);
    const [B, G, , D] = k.shape;
    for (const [src, bufs] of [[k, this.k], [v, this.v]] as const) {
      bufs[layer] ??= zeros([B, G, cap, D], { backend: src.backend }).keep(); // [B, G, cap, D]
      kernel(src.backend, 'copyBlock', 'KVCache.append')(
        src.storageFor('KVCache.append'), bufs[layer]!.storageFor('KVCache.append'), B * G, T, D, T, 0, cap, past,
      );
    }
    return past === 0 ? { k, v } : { k: this.k[layer]!, v: this.v[layer]! };
  }

  private concatStep(layer: number, k: Tensor, v: Tensor): { k: Tensor; v: Tensor } {
    const oldK = this.k[layer], oldV = this.v[layer];
    const fullK = (oldK ? concat([oldK, k], 2) : k.detach()).keep();
    const fullV = (oldV ? concat([oldV, v], 2) : v.detach()).keep();
    oldK?.dispose();
    oldV?.dispose();
    this.k[layer] = fullK;
    this.v[layer] = fullV;
    return { k: fullK, v: fullV };
  }

  /**
   * Continuous batching: the keys and values of `from` (a one-row cache without capacity, holding a
   * prompt of L positions just prefilled) become row `row` of this fixed-capacity cache at buffer
   * positions [end − L, end). The caller's mask must then open exactly those positions of the row.
   */
  insertRow(row: number, from: KVCache, end: number): void {
    if (this.capacity === null) throw new AlignerError('KVCache.insertRow: needs a fixed-capacity cache');
    const cap = this.capacity;
    this.k.forEach((buf, layer) => {
      const srcK = from.k[layer], srcV = from.v[layer];
      if (!buf || !srcK || !srcV) throw new AlignerError(`KVCache.insertRow: layer ${layer} has no keys yet`);
      const [B, G, , D] = buf.shape, L = srcK.shape[2];
      if (srcK.shape[0] !== 1) throw new AlignerError(`KVCache.insertRow: the source cache holds ${srcK.shape[0]} rows, not 1`);
      if (row < 0 || row >= B || end < L || end > cap) throw new AlignerError(`KVCache.insertRow: row ${row} positions [${end - L}, ${end}) do not fit [${B} rows, ${cap} positions]`);
      const copy = kernel(buf.backend, 'copyBlock', 'KVCache.insertRow');
      for (const [src, dst] of [[srcK, buf], [srcV, this.v[layer]!]] as const) {
        // Both viewed as one axis of D-vectors: head g of the source row → head g of row `row`.
        for (let g = 0; g < G; g++) copy(src.storageFor('KVCache.insertRow'), dst.storageFor('KVCache.insertRow'), 1, L, D, G * L, g * L, B * G * cap, (row * G + g) * cap + end - L);
      }
    });
  }

  /** Drops the first `n` buffer positions of every row (none of them still attended to), moving the rest to the front. */
  shiftLeft(n: number): void {
    if (this.capacity === null) throw new AlignerError('KVCache.shiftLeft: needs a fixed-capacity cache');
    const len = this.length;
    if (n <= 0 || n > len) throw new AlignerError(`KVCache.shiftLeft: cannot drop ${n} of ${len} positions`);
    const cap = this.capacity;
    for (const bufs of [this.k, this.v]) {
      bufs.forEach((buf, layer) => {
        if (!buf) return;
        const [B, G, , D] = buf.shape;
        const keep = len - n;
        const copy = kernel(buf.backend, 'copyBlock', 'KVCache.shiftLeft');
        const tmp = zeros([B, G, Math.max(1, keep), D], { backend: buf.backend }); // [B, G, keep, D]
        copy(buf.storageFor('KVCache.shiftLeft'), tmp.storageFor('KVCache.shiftLeft'), B * G, keep, D, cap, n, Math.max(1, keep), 0);
        copy(tmp.storageFor('KVCache.shiftLeft'), buf.storageFor('KVCache.shiftLeft'), B * G, keep, D, Math.max(1, keep), 0, cap, 0);
        tmp.dispose();
        this.lens[layer] = keep;
      });
    }
  }

  dispose(): void {
    for (const t of [...this.k, ...this.v]) t?.dispose();
    this.k.fill(null);
    this.v.fill(null);
    this.lens.fill(0);
  }
}

/** Default positions: past … past+T−1 for each of B rows. */
export function defaultPositions(B: number, T: number, past: number): number[][] {
  return Array.from({ length: B }, () => Array.from({ length: T }, (_, t) => past + t));
}
