/**
 * `npm run demo`: the main job on embedded defaults. Until the Temporal recipes land, this
 * trains a tiny Llama-style byte-level language model on public English sentences (the
 * `nlp-corpus` package) on the CPU, with a progress bar, and prints a summary with the loss curve,
 * validation loss before and after, and a greedy sample.
 *
 *   npm run demo -- --steps 500 --threads 2 --seed 0
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { AdamW, Generator, currentBackend, noGrad, slice, tensor, tidy } from '../kernels/index.js';
import type { Tensor } from '../kernels/index.js';
import { LlamaForCausalLM } from '../models/llama.js';
import type { LlamaConfig } from '../models/llama.js';
import { lmTrainStep } from '../models/lm-step.js';
import { progressBar, sparkline } from './progress.js';
import { setNumThreads, getNumThreads } from '../kernels/native-backend.js';

const { values: args } = parseArgs({
  options: {
    steps: { type: 'string', default: '500' },
    threads: { type: 'string' },
    seed: { type: 'string', default: '0' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  console.log(`npm run demo -- [--steps N] [--threads N] [--seed N]

Trains a tiny Llama-style byte-level LM (2 layers, d=128) on public English sentences
from the nlp-corpus package, on the CPU, and prints the loss curve and a sample.
  --steps    training steps (default 500)
  --threads  native CPU threads (default: all cores, or ALIGN_NUM_THREADS)
  --seed     random seed for init and batches (default 0)`);
  process.exit(0);
}

const steps = Number(args.steps), seed = Number(args.seed);
if (!Number.isInteger(steps) || steps <= 0) throw new Error(`--steps must be a positive integer, got ${args.steps}`);
if (args.threads) setNumThreads(Number(args.threads));

// The package exports only its loader; its data files sit next to it.
const corpusDir = path.join(path.dirname(createRequire(import.meta.url).resolve('nlp-corpus')), '../../builds');
const sentences: string[] = JSON.parse(readFileSync(path.join(corpusDir, 'doc-0.json'), 'utf8'));
const bytes = (s: string): number[] => [...Buffer.from(s, 'utf8')];
const split = Math.floor(sentences.length * 0.9);
const trainText = bytes(sentences.slice(0, split).join('\n'));
const validText = bytes(sentences.slice(split).join('\n'));

const cfg: LlamaConfig = { vocabSize: 256, hiddenSize: 128, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: 384 };
const B = 16, T = 64;
const gen = new Generator(seed);
const model = new LlamaForCausalLM(cfg, { gen });
const peakLr = 3e-3, warmup = Math.min(30, Math.floor(steps / 10));
const opt = new AdamW(model.parameters(), { lr: peakLr, beta2: 0.95, weightDecay: 0.1 });

function sampleBatch(text: number[], g: Generator): { ids: Tensor; targets: Tensor } {
  const ids: number[] = [], targets: number[] = [];
  for (let b = 0; b < B; b++) {
    const start = g.int(text.length - T - 1);
    for (let t = 0; t < T; t++) {
      ids.push(text[start + t]);
      targets.push(text[start + t + 1]);
    }
  }
  return { ids: tensor(ids, [B, T], { dtype: 'i32' }), targets: tensor(targets, [B, T], { dtype: 'i32' }) };
}

async function validLoss(): Promise<number> {
  const g = new Generator(12345);
  let total = 0;
  for (let i = 0; i < 8; i++) {
    const loss = tidy(() => noGrad(() => {
      const { ids, targets } = sampleBatch(validText, g);
      return model.loss(ids, targets, B * T);
    }));
    total += await loss.item();
    loss.dispose();
  }
  return total / 8;
}

function lrAt(step: number): number {
  if (step < warmup) return (peakLr * (step + 1)) / warmup;
  const progress = (step - warmup) / Math.max(1, steps - warmup);
  return 0.1 * peakLr + 0.9 * peakLr * 0.5 * (1 + Math.cos(Math.PI * progress)); // cosine to 10% of peak
}

/** A token drawn from softmax(logits / temperature) at the last position of logits [1, T, V]. */
function sampleLastRow(logits: Tensor, temperature: number, g: Generator): number {
  const last = slice(logits, 1, -1).toArraySync(); // [1, 1, V]
  const top = Math.max(...last);
  const weights = Array.from(last, (x) => Math.exp((x - top) / temperature));
  let r = g.uniform() * weights.reduce((a, b) => a + b, 0);
  for (let v = 0; v < weights.length; v++) if ((r -= weights[v]) <= 0) return v;
  return weights.length - 1;
}

/** Continue `prompt` by n bytes (no KV cache yet: the whole window is recomputed per byte). */
function sample(prompt: string, n: number, temperature: number): string {
  const g = new Generator(seed + 2);
  const out = bytes(prompt);
  for (let i = 0; i < n; i++) {
    const ctx = out.slice(-T);
    out.push(tidy(() => noGrad(() => sampleLastRow(model.forward(tensor(ctx, [1, ctx.length], { dtype: 'i32' })), temperature, g))));
  }
  return Buffer.from(out).toString('utf8');
}

const backend = currentBackend();
console.log(`Aligner demo: ${model.numParameters().toLocaleString()}-parameter byte-level Llama on ${backend.name} CPU backend` +
  (backend.name === 'native' ? `, ${getNumThreads()} threads` : ''));
console.log(`data: ${sentences.length} sentences from nlp-corpus (${trainText.length.toLocaleString()} train bytes, ${validText.length.toLocaleString()} validation bytes)`);
const before = await validLoss();

const dataGen = new Generator(seed + 1);
const losses: number[] = [];
const bar = progressBar('training', steps);
const t0 = performance.now();
for (let step = 0; step < steps; step++) {
  opt.lr = lrAt(step);
  const { ids, targets } = sampleBatch(trainText, dataGen);
  const loss = lmTrainStep(model, opt, ids, targets, { count: B * T });
  ids.dispose();
  targets.dispose();
  const value = await loss.item();
  loss.dispose();
  if (!Number.isFinite(value)) {
    bar.stop();
    throw new Error(`training diverged: loss is ${value} at step ${step + 1} (lr ${opt.lr.toExponential(2)}); try a lower learning rate`);
  }
  losses.push(value);
  const elapsed = (performance.now() - t0) / 1000;
  bar.update(step + 1, { loss: value.toFixed(3), tps: Math.round(((step + 1) * B * T) / elapsed).toLocaleString() });
}
bar.stop();
const seconds = (performance.now() - t0) / 1000;
const after = await validLoss();

console.log(`\ntrain loss  ${sparkline(losses)}  ${losses[0].toFixed(3)} → ${losses.at(-1)!.toFixed(3)}`);
console.log(`valid loss  ${before.toFixed(3)} → ${after.toFixed(3)} nats/byte (uniform = ${Math.log(256).toFixed(3)})`);
console.log(`throughput  ${Math.round((steps * B * T) / seconds).toLocaleString()} tokens/s over ${seconds.toFixed(1)} s`);
console.log(`sample      ${JSON.stringify(sample('The ', 80, 0.7))} (temperature 0.7)`);
model.dispose();
opt.dispose();
