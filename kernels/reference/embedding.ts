/** Embedding lookup (gather rows) and its scatter-add gradient. */
import type { Storage } from '../backend.js';
import { IndexError } from '../errors.js';
import { arr } from './storage.js';

function checkId(op: string, id: number, t: number, V: number): void {
  if (!(id >= 0 && id < V)) throw new IndexError(`${op}: id ${id} out of range [0, ${V}) at position ${t}`);
}

// weight [V, C], ids [n] → out [n, C]
export function embedding(weight: Storage, ids: Storage, out: Storage, n: number, C: number, V: number): void {
  const w = arr(weight), idx = arr(ids), o = arr(out);
  for (let t = 0; t < n; t++) {
    const id = idx[t]!;
    checkId('embedding', id, t, V);
    o.set(w.subarray(id * C, id * C + C), t * C);
  }
}

// g [n, C], ids [n] → gw [V, C]
export function embeddingBackward(g: Storage, ids: Storage, gw: Storage, n: number, C: number, V: number): void {
  const gs = arr(g), idx = arr(ids), o = arr(gw);
  o.fill(0, 0, V * C);
  for (let t = 0; t < n; t++) {
    const id = idx[t]!;
    checkId('embeddingBackward', id, t, V);
    for (let c = 0; c < C; c++) o[id * C + c] += gs[t * C + c]!;
  }
}
