/**
 * Heads on a causal LM's hidden states: a scalar reward at the last real token (Bradley-Terry
 * reward models), N regression attributes there (SteerLM), and a per-token value (PPO critic).
 * Parameter names follow Hugging Face's sequence-classification models (`score.weight`).
 */
import { Linear, Module, embedding, reshape, tensor } from '../kernels/index.js';
import type { CreateOptions, Generator, Tensor } from '../kernels/index.js';
import type { CausalLM, ForwardOptions } from './causal-lm.js';

/** Index of the last 1 in each row of a 0/1 mask [B][T] (the last real token, right padding). */
export function lastTokenIndex(mask: readonly (readonly number[])[]): number[] {
  return mask.map((row, b) => {
    for (let t = row.length - 1; t >= 0; t--) if (row[t]) return t;
    throw new RangeError(`lastTokenIndex: row ${b} has no real token`);
  });
}

/** Rows hidden[b, last[b], :] of hidden [B, T, C] → [B, C], with a scatter-add gradient. */
export function gatherLast(hidden: Tensor, last: readonly number[]): Tensor {
  const [B, T, C] = hidden.shape;
  const rows = tensor(last.map((t, b) => b * T + t), [B], { backend: hidden.backend, dtype: 'i32' }); // [B]
  return embedding(reshape(hidden, [B * T, C]), rows); // [B, C]
}

/** A backbone plus `score` [N, C] read at the last real token: N = 1 for a reward model. */
export class SequenceScoreModel extends Module {
  readonly score: Linear;

  constructor(readonly backbone: CausalLM, numLabels: number, opts: CreateOptions & { gen: Generator }) {
    super();
    this.child('', backbone as unknown as Module); // Hugging Face names: model.*, score.weight
    this.score = this.child('score', new Linear(backbone.config.hiddenSize, numLabels, { ...opts, bias: false }));
  }

  /** ids [B, T], mask [B][T] (right padding) → scores [B, N]. */
  forward(ids: Tensor, mask: readonly (readonly number[])[], opts: ForwardOptions = {}): Tensor {
    const h = this.backbone.hidden(ids, opts); // [B, T, C]
    return this.score.forward(gatherLast(h, lastTokenIndex(mask))); // [B, N]
  }
}

/** A backbone plus a value head giving one value per position (the PPO critic). */
export class ValueModel extends Module {
  readonly valueHead: Linear;

  constructor(readonly backbone: CausalLM, opts: CreateOptions & { gen: Generator }) {
    super();
    this.child('', backbone as unknown as Module); // Hugging Face names: model.*, score.weight
    this.valueHead = this.child('value_head', new Linear(backbone.config.hiddenSize, 1, { ...opts, bias: true }));
  }

  /** ids [B, T] → values [B, T]. */
  forward(ids: Tensor, opts: ForwardOptions = {}): Tensor {
    const [B, T] = ids.shape;
    return reshape(this.valueHead.forward(this.backbone.hidden(ids, opts)), [B, T]); // [B, T, 1] → [B, T]
  }
}
