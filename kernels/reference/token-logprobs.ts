/**
 * Fused log-softmax + gather over the vocabulary: the log-probability of each target token.
 * Cross-entropy is its negative mean over unmasked tokens; RL recipes use the log-probs directly.
 */
import type { Storage } from '../backend.js';
import { IndexError } from '../errors.js';
import { rowLogSumExp } from './softmax.js';
import { arr } from './storage.js';

function targetOf(op: string, ts: ArrayLike<number>, r: number, V: number, ignoreIndex: number): number {
  const t = ts[r]!;
  if (t === ignoreIndex) return -1;
  if (!(t >= 0 && t < V)) throw new IndexError(`${op}: target ${t} out of range [0, ${V}) at row ${r}`);
  return t;
}

// logits [rows, V], targets [rows] → out [rows], lse [rows]
export function tokenLogprobs(logits: Storage, targets: Storage, out: Storage, lse: Storage, rows: number, V: number, ignoreIndex: number): void {
  const xs = arr(logits), ts = arr(targets), o = arr(out), l = arr(lse);
  for (let r = 0; r < rows; r++) {
    const t = targetOf('tokenLogprobs', ts, r, V, ignoreIndex);
    const z = rowLogSumExp(xs, r * V, V);
    l[r] = z;
    o[r] = t < 0 ? 0 : xs[r * V + t]! - z;
  }
}

// logits [rows, V], targets, lse, g [rows] → gx [rows, V]
export function tokenLogprobsBackward(
  logits: Storage, targets: Storage, lse: Storage, g: Storage, gx: Storage, rows: number, V: number, ignoreIndex: number,
): void {
  const xs = arr(logits), ts = arr(targets), l = arr(lse), gs = arr(g), o = arr(gx);
  for (let r = 0; r < rows; r++) {
    const t = targetOf('tokenLogprobsBackward', ts, r, V, ignoreIndex);
    for (let v = 0; v < V; v++) {
      o[r * V + v] = t < 0 ? 0 : gs[r]! * ((v === t ? 1 : 0) - Math.exp(xs[r * V + v]! - l[r]!));
    }
  }
}
