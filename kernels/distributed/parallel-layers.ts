/**
 * The tensor-parallel layers (Megatron-LM §3): each holds its rank's shard under the parameter
 * name the whole layer would have (`weight`, `bias`), so checkpoints map by name; which axis a
 * name is split on is models/tensor-parallel.ts's table.
 *
 * Weights are [out, in] (PyTorch's Linear) unless `conv1d` is set: Hugging Face GPT-2's Conv1D
 * stores [in, out].
 */
import { initWeight, Module } from '../module.js';
import type { InitOptions } from '../module.js';
import { zeros } from '../engine.js';
import { add } from '../ops/elementwise.js';
import { linear, matmul } from '../ops/matmul.js';
import { ShapeError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { shardRange, vocabParallelEmbedding } from './tensor-parallel.js';
import type { TensorParallel } from './tensor-parallel.js';

interface LayerOptions extends InitOptions {
  bias?: boolean;
  conv1d?: boolean;
}

const project = (x: Tensor, w: Tensor, conv1d: boolean): Tensor => (conv1d ? matmul(x, w) : linear(x, w)); // [..., out]

/** Output features split over the ranks: rank r computes out[from, to) of a whole input. */
export class ColumnParallelLinear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly outLocal: number;

  /** `outLocal` overrides the even split (fused q|k|v, whose parts split separately). */
  constructor(readonly tp: TensorParallel, inFeatures: number, outFeatures: number, private readonly opts: LayerOptions, outLocal?: number) {
    super();
    const [from, to] = shardRange(outFeatures, tp.rank, tp.world);
    this.outLocal = outLocal ?? to - from;
    this.weight = this.param('weight', initWeight(opts.conv1d ? [inFeatures, this.outLocal] : [this.outLocal, inFeatures], opts)); // [out/tp, in] or [in, out/tp]
    this.bias = opts.bias ? this.param('bias', zeros([this.outLocal], opts)) : null; // [out/tp]
  }

  forward(x: Tensor): Tensor {
    const y = project(this.tp.copyIn(x), this.weight, this.opts.conv1d ?? false); // [..., out/tp]
    return this.bias ? add(y, this.bias) : y;
  }
}

/** Input features split over the ranks: rank r multiplies its part of the input; the sum over ranks is the output. */
export class RowParallelLinear extends Module {
  readonly weight: Tensor;
  /** Whole on every rank, added once after the sum. */
  readonly bias: Tensor | null;

  constructor(readonly tp: TensorParallel, inFeatures: number, outFeatures: number, private readonly opts: LayerOptions) {
    super();
    const [from, to] = shardRange(inFeatures, tp.rank, tp.world);
    this.weight = this.param('weight', initWeight(opts.conv1d ? [to - from, outFeatures] : [outFeatures, to - from], opts)); // [out, in/tp] or [in/tp, out]
    this.bias = opts.bias ? this.param('bias', zeros([outFeatures], opts)) : null; // [out]
  }

  /** x [..., in/tp], this rank's part of the input features. */
  forward(x: Tensor): Tensor {
    const y = this.tp.reduceOut(project(x, this.weight, this.opts.conv1d ?? false)); // [..., out]
    return this.bias ? add(y, this.bias) : y;
  }
}

/** Rows [from, to) of the token embedding; the LM head tied to it gives logits over the same vocabulary columns. */
export class VocabParallelEmbedding extends Module {
  readonly weight: Tensor;
  readonly from: number;

  constructor(readonly tp: TensorParallel, vocab: number, dim: number, opts: InitOptions) {
    super();
    const [from, to] = shardRange(vocab, tp.rank, tp.world);
    if (to <= from) throw new ShapeError(`VocabParallelEmbedding: a vocabulary of ${vocab} leaves rank ${tp.rank} of ${tp.world} no rows`);
    this.from = from;
    this.weight = this.param('weight', initWeight([to - from, dim], opts)); // [V/tp, C]
  }

  forward(ids: Tensor): Tensor {
    return vocabParallelEmbedding(this.tp, this.weight, ids, this.from); // [..., C]
  }
}
