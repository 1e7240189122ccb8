/**
 * One rank of the data-parallel step timing in `npm run bench -- collectives`: the train-cpu
 * model (Llama-style d=256, 4 layers, vocab 4096) on a global batch of 8 × 128 tokens, each rank
 * training on its share, gradients summed in buckets during the backward. world = 1 is the
 * single-process baseline (no group). Rank 0 prints one JSON line with the median step time.
 *
 *   dp-step-rank.ts <name> <rank> <world> <steps>
 */
import { performance } from 'node:perf_hooks';
import { AdamW, Generator, clipGradNorm, setBackend, tensor, tidy } from '../kernels/index.js';
import { GradBuckets, openShmGroup } from '../kernels/distributed/index.js';
import { LlamaForCausalLM } from '../models/llama.js';
import { CFG } from './train-cpu.js';
import { median } from './gemm.js';

const [name, rankArg, worldArg, stepsArg] = process.argv.slice(2);
const [rank, world, steps] = [rankArg, worldArg, stepsArg].map(Number);
setBackend('native');

const B = 8, T = 128, WARMUP = 2;

async function main() {
  const gen = new Generator(0);
  const model = new LlamaForCausalLM(CFG, { gen });
  const opt = new AdamW(model.parameters(), { lr: 1e-3, beta1: 0.9, beta2: 0.95, weightDecay: 0.1 });
  const seq = Array.from({ length: B * (T + 1) }, () => gen.int(CFG.vocabSize));
  const rows = B / world;
  const mine = seq.slice(rank * rows * (T + 1), (rank + 1) * rows * (T + 1));
  const ids = tensor(mine.filter((_, i) => i % (T + 1) !== T), [rows, T], { dtype: 'i32' }).keep(); // [B/world, T]
  const targets = tensor(mine.filter((_, i) => i % (T + 1) !== 0), [rows, T], { dtype: 'i32' }).keep(); // [B/world, T]
  const group = world > 1 ? await openShmGroup({ name, world, timeoutMs: 60_000 }, rank) : null;
  const buckets = group ? new GradBuckets(group, opt.params) : null;
  const times: number[] = [];
  for (let i = 0; i < WARMUP + steps; i++) {
    await group?.barrier();
    const t0 = performance.now();
    buckets?.arm();
    const loss = tidy(() => {
      const l = model.loss(ids, targets, B * T); // [] this rank's share of the global mean
      l.backward();
      return l;
    });
    await buckets?.reduce();
    tidy(() => clipGradNorm(opt.params, 1.0));
    opt.update();
    opt.zeroGrad();
    await loss.item();
    loss.dispose();
    if (i >= WARMUP) times.push(performance.now() - t0);
  }
  await group?.close();
  if (rank === 0) console.log(JSON.stringify({ world, stepMs: median(times), buckets: buckets?.buckets.length ?? 0 }));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
