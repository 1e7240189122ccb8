/**
 * One rank of `npm run bench -- collectives`: times in-place all-reduce (sum) over the
 * shared-memory group at each size; rank 0 also times a plain memcpy of the same bytes
 * (Buffer.copy, one native memcpy) as the baseline. Rank 0 prints one JSON line.
 *
 *   collectives-rank.ts <name> <rank> <world> <sizes in MB, comma-separated>
 */
import { performance } from 'node:perf_hooks';
import { setBackend, tensor } from '../kernels/index.js';
import { openShmGroup } from '../kernels/distributed/index.js';

const [name, rankArg, worldArg, sizesArg] = process.argv.slice(2);
const rank = Number(rankArg);
const world = Number(worldArg);
setBackend('native');

/** Best of a few timed repeats, enough to fill ~0.4 s, after one warm-up. */
async function best(fn: () => Promise<void> | void, bytes: number): Promise<number> {
  await fn();
  const repeats = Math.max(3, Math.min(20, Math.round(4e8 / Math.max(bytes, 1))));
  let min = Infinity;
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    await fn();
    min = Math.min(min, performance.now() - t0);
  }
  return min / 1000;
}

async function main() {
  const group = await openShmGroup({ name, world, timeoutMs: 120_000 }, rank);
  const rows: Record<string, number>[] = [];
  for (const mb of sizesArg.split(',').map(Number)) {
    const bytes = mb << 20;
    const n = bytes / 4;
    const t = tensor(new Float32Array(n).fill(rank + 1), [n]); // [n]
    // Every rank repeats the same count (the count depends only on the size), in lockstep.
    await group.barrier();
    const seconds = await best(() => group.allReduce(t), bytes);
    t.dispose();
    let memcpy = NaN;
    if (rank === 0) {
      const from = Buffer.alloc(bytes, 1);
      const to = Buffer.alloc(bytes);
      memcpy = await best(() => void from.copy(to), bytes);
    }
    await group.barrier();
    rows.push({ mb, allreduce_gbps: bytes / seconds / 1e9, memcpy_gbps: bytes / memcpy / 1e9, ratio: memcpy / seconds });
  }
  await group.close();
  if (rank === 0) console.log(JSON.stringify(rows));
}

main().catch((err: Error) => {
  console.error(`rank ${rank}: ${err.name}: ${err.message}`);
  process.exit(1);
});
