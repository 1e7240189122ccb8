/**
 * Scaled dot-product attention (Vaswani et al. 2017, eq. 1) with grouped-query KV heads
 * (Ainslie et al. 2023), a causal mask, a sliding window (Mistral; Jiang et al. 2023) and a key
 * padding mask. The backward pass recomputes the probabilities from the saved log-sum-exp, as
 * FlashAttention does (Dao et al. 2022, Alg. 2).
 */
import type { Storage } from '../backend.js';
import { arr } from './storage.js';
import type { RefArray } from './storage.js';

interface Dims {
  B: number; Hq: number; Hkv: number; T: number; S: number; D: number; scale: number; causal: boolean; window: number;
}

// Query t sits at absolute position pos = S − T + t: causal hides keys s > pos, a window hides s ≤ pos − window.
function visible(mask: RefArray | null, d: Dims, b: number, t: number, s: number): boolean {
  const pos = d.S - d.T + t;
  if (d.causal && s > pos) return false;
  if (d.window > 0 && s <= pos - d.window) return false;
  return mask === null || mask[b * d.S + s] !== 0;
}

function score(q: RefArray, k: RefArray, qBase: number, kBase: number, D: number, scale: number): number {
  let acc = 0;
  for (let i = 0; i < D; i++) acc += q[qBase + i]! * k[kBase + i]!;
  return acc * scale;
}

// q [B,Hq,T,D], k/v [B,Hkv,S,D], mask [B,S]|null → out [B,Hq,T,D], lse [B,Hq,T]
export function attention(
  q: Storage, k: Storage, v: Storage, mask: Storage | null, out: Storage, lse: Storage,
  B: number, Hq: number, Hkv: number, T: number, S: number, D: number, scale: number, causal: boolean, window: number,
): void {
  const d: Dims = { B, Hq, Hkv, T, S, D, scale, causal, window };
  const qs = arr(q), ks = arr(k), vs = arr(v), ms = mask ? arr(mask) : null, o = arr(out), l = arr(lse);
  const group = Hq / Hkv;
  const scores = new Float64Array(S);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const kvBase = (b * Hkv + Math.floor(h / group)) * S * D;
      for (let t = 0; t < T; t++) {
        const row = (b * Hq + h) * T + t;
        let m = -Infinity;
        for (let s = 0; s < S; s++) {
          scores[s] = visible(ms, d, b, t, s) ? score(qs, ks, row * D, kvBase + s * D, D, scale) : -Infinity;
          if (scores[s]! > m || Number.isNaN(scores[s]!)) m = scores[s]!;
        }
        let z = 0;
        if (m !== -Infinity) for (let s = 0; s < S; s++) z += Math.exp(scores[s]! - m);
        const rowLse = m === -Infinity ? -Infinity : m + Math.log(z);
        l[row] = rowLse;
        for (let i = 0; i < D; i++) o[row * D + i] = 0;
        if (rowLse === -Infinity) continue;
        for (let s = 0; s < S; s++) {
          const p = Math.exp(scores[s]! - rowLse);
          if (p === 0) continue;
          for (let i = 0; i < D; i++) o[row * D + i] += p * vs[kvBase + s * D + i]!;
        }
      }
    }
  }
}

// same dims; g [B,Hq,T,D] → gq [B,Hq,T,D], gk/gv [B,Hkv,S,D]
export function attentionBackward(
  q: Storage, k: Storage, v: Storage, mask: Storage | null, out: Storage, lse: Storage, g: Storage,
  gq: Storage, gk: Storage, gv: Storage,
  B: number, Hq: number, Hkv: number, T: number, S: number, D: number, scale: number, causal: boolean, window: number,
): void {
  const d: Dims = { B, Hq, Hkv, T, S, D, scale, causal, window };
  const qs = arr(q), ks = arr(k), vs = arr(v), ms = mask ? arr(mask) : null, os = arr(out), l = arr(lse), gs = arr(g);
  const dq = arr(gq), dk = arr(gk), dv = arr(gv);
  dq.fill(0, 0, B * Hq * T * D);
  dk.fill(0, 0, B * Hkv * S * D);
  dv.fill(0, 0, B * Hkv * S * D);
  const group = Hq / Hkv;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const kvBase = (b * Hkv + Math.floor(h / group)) * S * D;
      for (let t = 0; t < T; t++) {
        const row = (b * Hq + h) * T + t;
        const rowLse = l[row]!;
        if (rowLse === -Infinity) continue;
        let di = 0; // Σ_i dO_i O_i = Σ_s P_s dP_s
        for (let i = 0; i < D; i++) di += gs[row * D + i]! * os[row * D + i]!;
        for (let s = 0; s < S; s++) {
          if (!visible(ms, d, b, t, s)) continue;
          const p = Math.exp(score(qs, ks, row * D, kvBase + s * D, D, scale) - rowLse);
          let dp = 0;
          for (let i = 0; i < D; i++) dp += gs[row * D + i]! * vs[kvBase + s * D + i]!;
          const ds = p * (dp - di) * scale;
          for (let i = 0; i < D; i++) {
            dq[row * D + i] += ds * ks[kvBase + s * D + i]!;
            dk[kvBase + s * D + i] += ds * qs[row * D + i]!;
            dv[kvBase + s * D + i] += p * gs[row * D + i]!;
          }
        }
      }
    }
  }
}
