/**
 * What every causal LM offers to heads, generation and the recipes: hidden states, logits, and
 * an optional KV cache for incremental decoding.
 */
import { AlignerError } from '../kernels/errors.js';
import { concat, isGradEnabled } from '../kernels/index.js';
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
  newCache(): KVCache;
  /** Longest sequence the model's positions cover. */
  readonly contextWindow: number;
}

/** Keys and values of past positions, per layer: [B, G, S, D] each. */
export class KVCache {
  private readonly k: (Tensor | null)[];
  private readonly v: (Tensor | null)[];

  constructor(numLayers: number) {
    this.k = new Array<Tensor | null>(numLayers).fill(null);
    this.v = new Array<Tensor | null>(numLayers).fill(null);
  }

  /** Number of cached positions. */
  get length(): number {
    return this.k[0]?.shape[2] ?? 0;
  }

  /** Append this step's k, v [B, G, T, D] and return the full [B, G, S+T, D] pair. */
  append(layer: number, k: Tensor, v: Tensor): { k: Tensor; v: Tensor } {
    if (isGradEnabled()) throw new AlignerError('KVCache: the cache is for inference; run generation inside noGrad()');
    const oldK = this.k[layer], oldV = this.v[layer];
    const fullK = (oldK ? concat([oldK, k], 2) : k.detach()).keep();
    const fullV = (oldV ? concat([oldV, v], 2) : v.detach()).keep();
    oldK?.dispose();
    oldV?.dispose();
    this.k[layer] = fullK;
    this.v[layer] = fullV;
    return { k: fullK, v: fullV };
  }

  dispose(): void {
    for (const t of [...this.k, ...this.v]) t?.dispose();
    this.k.fill(null);
    this.v.fill(null);
  }
}

/** Default positions: past … past+T−1 for each of B rows. */
export function defaultPositions(B: number, T: number, past: number): number[][] {
  return Array.from({ length: B }, () => Array.from({ length: T }, (_, t) => past + t));
}
