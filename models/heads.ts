/**
 * Heads on a causal LM's hidden states: a scalar reward at the last real token (Bradley-Terry
 * reward models), N regression attributes there (SteerLM), and a per-token value (PPO critic).
 * Parameter names follow Hugging Face's sequence-classification models (`score.weight`).
 */
import { Linear, Module, embedding, reshape, tensor } from '../kernels/index.js';
import type { Tensor } from '../kernels/index.js';
import type { InitOptions } from '../kernels/module.js';
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

/**
 * A backbone plus `score` [N, C] read at the last real token: N = 1 for a reward model.
 *
 * `namedParameters()` are exactly transformers' `…ForSequenceClassification` names: the
 * backbone's (`model.*` for the Llama family, `transformer.*` for GPT-2) and `score.weight`.
 * An untied Llama backbone's `lm_head` is not part of a sequence classifier (transformers' has
 * none), so it is left out: it is neither trained, saved, nor loaded. `dispose()` frees the whole
 * backbone (its cached tables and its lm_head included) and the head; so do not dispose a model
 * whose backbone another model still uses.
 */
export class SequenceScoreModel extends Module {
  readonly score: Linear;

  /** opts.std: the head's init std (default 0.02); opts.init 'none' gives zeros, for weights about to be loaded. */
  constructor(readonly backbone: CausalLM, numLabels: number, opts: InitOptions) {
    super();
    this.child('', backbone as unknown as Module); // names unprefixed: model.* (Llama), transformer.* (GPT-2)
    this.score = this.child('score', new Linear(backbone.config.hiddenSize, numLabels, { ...opts, bias: false }));
  }

  /** N, the rows of `score`. */
  get numLabels(): number {
    return this.score.weight.shape[0];
  }

  override namedParameters(prefix = ''): [string, Tensor][] {
    return super.namedParameters(prefix).filter(([n]) => !n.startsWith(`${prefix}lm_head.`));
  }

  /** ids [B, T], mask [B][T] (right padding) → scores [B, N]. */
  forward(ids: Tensor, mask: readonly (readonly number[])[], opts: ForwardOptions = {}): Tensor {
    const h = this.backbone.hidden(ids, opts); // [B, T, C]
    return this.score.forward(gatherLast(h, lastTokenIndex(mask))); // [B, N]
  }

  override dispose(): void {
    this.backbone.dispose();
    this.score.dispose();
  }
}

/** A backbone plus a value head giving one value per position (the PPO critic). */
export class ValueModel extends Module {
  readonly valueHead: Linear;

  constructor(readonly backbone: CausalLM, opts: InitOptions) {
    super();
    this.child('', backbone as unknown as Module); // the backbone's names unprefixed, then value_head.*
    this.valueHead = this.child('value_head', new Linear(backbone.config.hiddenSize, 1, { ...opts, bias: true }));
  }

  /** ids [B, T] → values [B, T]. */
  forward(ids: Tensor, opts: ForwardOptions = {}): Tensor {
    const [B, T] = ids.shape;
    return reshape(this.valueHead.forward(this.backbone.hidden(ids, opts)), [B, T]); // [B, T, 1] → [B, T]
  }

  /** Frees the backbone (its cached tables too) and the head. */
  override dispose(): void {
    this.backbone.dispose();
    this.valueHead.dispose();
  }
}
