/** Prepared splits and precomputed inputs as example sources a recipe reads, streamed from token shards. */
import path from 'node:path';
import type { ExampleSource } from '../algorithms/recipes/types.js';
import type { RunStorePort } from '../store/run-store-port.js';
import { openTokenDataset } from '../store/token-shards.js';
import type { SplitRef } from './types.js';

export interface ClosableSource<E> extends ExampleSource<E> {
  close(): Promise<void>;
}

export async function openSplit<E>(store: RunStorePort, split: SplitRef): Promise<ClosableSource<E>> {
  const ds = await openTokenDataset(store.store, split.prefix, { cacheDir: path.join(store.cacheDir, 'shards') });
  return { count: ds.count, getMany: (idx) => ds.getMany(idx) as Promise<E[]>, close: () => ds.close() };
}

/**
 * Consecutive parts (precompute writes one part per durable unit) read as one source. Parts are
 * opened when first read and at most `maxOpen` stay open (least recently used closed first), so
 * file handles and memory do not grow with the number of parts.
 */
export function openParts<E>(store: RunStorePort, parts: readonly SplitRef[], maxOpen = 4): ClosableSource<E> {
  const starts: number[] = [];
  let count = 0;
  for (const p of parts) {
    starts.push(count);
    count += p.count;
  }
  const open = new Map<number, Promise<ClosableSource<E>>>(); // insertion order = least recently used first
  const part = (k: number): Promise<ClosableSource<E>> => {
    let src = open.get(k);
    if (src) open.delete(k);
    else src = openSplit<E>(store, parts[k]);
    open.set(k, src);
    while (open.size > maxOpen) {
      const [oldest, o] = open.entries().next().value!;
      open.delete(oldest);
      void o.then((x) => x.close(), () => undefined);
    }
    return src;
  };
  const locate = (i: number): [number, number] => {
    if (!(Number.isInteger(i) && i >= 0 && i < count)) throw new RangeError(`precomputed input ${i} is out of range (0…${count - 1})`);
    let lo = 0, hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid] <= i) lo = mid;
      else hi = mid - 1;
    }
    return [lo, i - starts[lo]];
  };
  return {
    count,
    async getMany(idx) {
      const out: E[] = [];
      for (const i of idx) {
        const [k, j] = locate(i);
        out.push((await (await part(k)).getMany([j]))[0]);
      }
      return out;
    },
    async close() {
      const all = [...open.values()];
      open.clear();
      await Promise.all(all.map(async (o) => (await o).close()));
    },
  };
}
