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

/** Consecutive parts (precompute writes one part per durable unit) read as one source. */
export async function openParts<E>(store: RunStorePort, parts: readonly SplitRef[]): Promise<ClosableSource<E>> {
  const opened = await Promise.all(parts.map((p) => openSplit<E>(store, p)));
  const starts: number[] = [];
  let count = 0;
  for (const o of opened) {
    starts.push(count);
    count += o.count;
  }
  const locate = (i: number): [number, number] => {
    if (!(i >= 0 && i < count)) throw new RangeError(`precomputed input ${i} is out of range (0…${count - 1})`);
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
      return Promise.all(idx.map(async (i) => {
        const [p, j] = locate(i);
        return (await opened[p].getMany([j]))[0];
      }));
    },
    close: async () => void (await Promise.all(opened.map((o) => o.close()))),
  };
}
