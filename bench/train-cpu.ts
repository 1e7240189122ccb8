/**
 * Training-step throughput of the engine on the CPU, against PyTorch on the same machine, in the
 * same run, with the same model, batch, optimizer and thread count (bench/python/train_step.py).
 *
 *   npm run bench -- train-cpu [--threads N] [--steps N] [--warmup N] [--no-torch]
 *
 * Model: Llama-style, d=256, 4 layers, 4 heads (head dim 64), SwiGLU 768, vocab 4096, untied head,
 * fp32; batch 8 × 128 tokens; step = forward, backward, clip 1.0, AdamW (lr 1e-3, β (0.9, 0.95), wd 0.1).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { AdamW, Generator, currentBackend, setBackend, tensor } from '../kernels/index.js';
import { KernelProfile, profiledBackend } from '../kernels/profile.js';
import { getNumThreads, setNumThreads } from '../kernels/native-backend.js';
import { LlamaForCausalLM } from '../models/llama.js';
import type { LlamaConfig } from '../models/llama.js';
import { lmTrainStep } from '../models/lm-step.js';
import { median } from './gemm.js';

export const help = `bench train-cpu: tokens/s of a training step (d=256, 4 layers, vocab 4096, batch 8×128)
against PyTorch on CPU with the same thread count.
Options:
  --threads N   compute threads for both (default: all cores, ${os.availableParallelism()} here)
  --steps N     timed steps per round (default 8)
  --rounds N    alternate ours and PyTorch this many times and keep each side's best round
                median, so that both see the same machine noise (default 3)
  --warmup N    untimed steps first (default 2)
  --no-torch    skip the PyTorch baseline
  --profile     time every kernel on its own and report the top ones (slower; timings then
                are not comparable with the baseline)`;

export const CFG: LlamaConfig = { vocabSize: 4096, hiddenSize: 256, numLayers: 4, numHeads: 4, numKvHeads: 4, intermediateSize: 768 };
const B = 8, T = 128;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');


interface OursResult {
  tokensPerS: number;
  stepMs: number;
  firstLoss: number;
  /** Peak resident memory of this process so far (MiB), and its rise above the RSS before the model was built. */
  peakRssMb: number;
  trainRssMb: number;
}

async function ours(steps: number, warmup: number): Promise<OursResult> {
  const rssBeforeMb = process.memoryUsage().rss / 2 ** 20;
  const gen = new Generator(0);
  const model = new LlamaForCausalLM(CFG, { gen });
  const opt = new AdamW(model.parameters(), { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 });
  const seq = Array.from({ length: B * (T + 1) }, () => gen.int(CFG.vocabSize));
  const ids = tensor(seq.filter((_, i) => i % (T + 1) !== T), [B, T], { dtype: 'i32' }).keep();
  const targets = tensor(seq.filter((_, i) => i % (T + 1) !== 0), [B, T], { dtype: 'i32' }).keep();
  const times: number[] = [];
  let firstLoss = NaN;
  for (let i = 0; i < warmup + steps; i++) {
    const t0 = performance.now();
    const loss = lmTrainStep(model, opt, ids, targets, { count: B * T });
    const value = await loss.item(); // the step is done when its loss is on the host
    loss.dispose();
    if (i === 0) firstLoss = value;
    if (i >= warmup) times.push(performance.now() - t0);
    process.stderr.write(`  ours step ${i + 1}/${warmup + steps}: ${(performance.now() - t0).toFixed(0)} ms, loss ${value.toFixed(4)}\n`);
  }
  const peakRssMb = process.resourceUsage().maxRSS / 1024; // KiB → MiB
  model.dispose();
  opt.dispose();
  const stepMs = median(times);
  return { tokensPerS: (B * T * 1000) / stepMs, stepMs, firstLoss, peakRssMb, trainRssMb: peakRssMb - rssBeforeMb };
}

function torchBaseline(threads: number, steps: number, warmup: number): Record<string, unknown> {
  const python = path.join(root, '.tools/bench-venv/bin/python');
  if (!existsSync(python)) {
    process.stderr.write('  setting up the benchmark venv (bench/python/setup-venv.sh)…\n');
    const setup = spawnSync('bash', [path.join(root, 'bench/python/setup-venv.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
    if (setup.status !== 0) return { error: 'bench/python/setup-venv.sh failed; see its output above' };
  }
  const run = spawnSync(python, [path.join(root, 'bench/python/train_step.py'), '--threads', String(threads), '--steps', String(steps), '--warmup', String(warmup)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const last = run.stdout.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(last) as Record<string, unknown>;
  } catch {
    return { error: `baseline printed no JSON (exit ${run.status}): ${last.slice(0, 200)}` };
  }
}

export async function run(argv: string[]): Promise<Record<string, unknown>> {
  const { values } = parseArgs({
    args: argv,
    options: { threads: { type: 'string' }, steps: { type: 'string', default: '8' }, rounds: { type: 'string', default: '3' }, warmup: { type: 'string', default: '2' }, 'no-torch': { type: 'boolean', default: false }, profile: { type: 'boolean', default: false } },
  });
  const steps = Number(values.steps), warmup = Number(values.warmup);
  if (values.threads) setNumThreads(Number(values.threads));
  const threads = getNumThreads();
  const backend = currentBackend().name;
  let profile: KernelProfile | null = null;
  if (values.profile) {
    profile = new KernelProfile();
    setBackend(profiledBackend(currentBackend(), profile));
  }
  // Alternate the two so that both sample the same (noisy, shared) machine; keep each one's best round.
  const rounds = values['no-torch'] || profile ? 1 : Math.max(1, Number(values.rounds));
  let mine = await ours(steps, warmup);
  const baselines: Record<string, unknown>[] = [];
  for (let r = 0; r < rounds; r++) {
    if (r > 0) {
      const again = await ours(steps, warmup);
      if (again.tokensPerS > mine.tokensPerS) mine = again;
    }
    if (!values['no-torch'] && !profile) baselines.push(torchBaseline(threads, steps, warmup));
  }
  const result: Record<string, unknown> = {
    bench: 'train-cpu',
    model: { ...CFG, batch: B, seq: T, dtype: 'f32' },
    threads,
    backend,
    rounds,
    ours: {
      tokens_per_s: Math.round(mine.tokensPerS),
      step_ms_median: +mine.stepMs.toFixed(1),
      first_loss: +mine.firstLoss.toFixed(4),
      peak_rss_mb: +mine.peakRssMb.toFixed(1),
      train_rss_mb: +mine.trainRssMb.toFixed(1),
    },
  };
  if (profile) result.profile_top = profile.top(15);
  if (baselines.length > 0) {
    const best = baselines.reduce((a, b) => (Number(b.tokens_per_s) > Number(a.tokens_per_s) ? b : a));
    result.baseline = best;
    const theirs = Number(best.tokens_per_s);
    if (Number.isFinite(theirs) && theirs > 0) result.ratio_vs_torch = +(mine.tokensPerS / theirs).toFixed(3);
    const theirRss = Number(best.peak_rss_mb);
    if (Number.isFinite(theirRss) && theirRss > 0) result.rss_ratio_vs_torch = +(mine.peakRssMb / theirRss).toFixed(3);
    if (best.framework && best.framework !== 'torch') result.note = `baseline is ${String(best.framework)}, PyTorch could not be installed`;
  }
  return result;
}
