/**
 * Model-level CUDA checks and the GPU benchmarks of bench/device-main.ts.
 *
 * Checks: the tiny Llama fixture (models/fixtures/tiny-llama) on CUDA vs the CPU backend —
 * logits, loss and every parameter gradient of one batch, then 20 AdamW training steps whose
 * losses must track the CPU's within 1e-2.
 * Benchmarks (one JSON object each, ours against PyTorch run on the same GPU right after):
 *  - bf16 GEMM 8192³ through our cuBLASLt path vs torch.matmul (bench/python/gpu_gemm.py);
 *  - training tokens/s and MFU, Llama 124M (d 768, 12 layers, vocab 32000, batch 16×1024) and
 *    1.1B (TinyLlama: d 2048, 22 layers, 32/4 heads, FFN 5632, batch 8×2048) vs transformers'
 *    LlamaForCausalLM with sdpa, bf16 autocast and fused AdamW (bench/python/gpu_train.py);
 *  - generation tokens/s, 1.1B, batch 64, prompt 128, 256 sampled tokens vs generate() (gpu_generate.py).
 * Our model runs with f32 tensors on the GPU (the op layer admits only f32/f64 compute dtypes
 * today), with TF32 GEMMs for the benchmarks (ALIGN_CUDA_TF32=1) and full fp32 for the checks.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';

import type { Backend } from '../kernels/backend.js';
import { AdamW, Generator, setBackend, tensor, tidy } from '../kernels/index.js';
import { KernelProfile, profiledBackend } from '../kernels/profile.js';
import type { Tensor } from '../kernels/index.js';
import type { CausalLM } from '../models/causal-lm.js';
import type { ModelConfig } from '../models/config.js';
import { generate } from '../models/generate.js';
import type { LlamaForCausalLM } from '../models/llama.js';
import { lmTrainStep } from '../models/lm-step.js';
import { createModel, loadPretrained } from '../models/pretrained.js';

type Json = Record<string, unknown>;

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 0, worst = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]!));
  for (let i = 0; i < b.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    worst = Number.isNaN(d) ? Infinity : Math.max(worst, d);
  }
  return worst / Math.max(scale, 1e-12);
}

function batchOf(gen: Generator, B: number, T: number, V: number, backend: Backend): { ids: Tensor; targets: Tensor } {
  const seq = Array.from({ length: B * (T + 1) }, () => gen.int(V));
  const ids = tensor(seq.filter((_, i) => i % (T + 1) !== T), [B, T], { dtype: 'i32', backend }).keep();
  const targets = tensor(seq.filter((_, i) => i % (T + 1) !== 0), [B, T], { dtype: 'i32', backend }).keep();
  return { ids, targets };
}

interface Side { logits: Float32Array | Float64Array | Int32Array; loss: number; grads: Map<string, ArrayLike<number>>; losses: number[] }

async function runSide(fixture: string, backend: Backend, steps: number): Promise<Side> {
  setBackend(backend); // the model makes some tensors (masks, rope tables) on the default backend
  const model = (await loadPretrained(fixture, { backend })) as LlamaForCausalLM;
  const V = 259, B = 4, T = 32;
  const { ids, targets } = batchOf(new Generator(7), B, T, V, backend);
  const logits = tidy(() => model.forward(ids).toArraySync());
  const loss = tidy(() => {
    const l = model.loss(ids, targets);
    l.backward();
    return l.itemSync();
  });
  const grads = new Map(model.namedParameters().map(([n, p]) => [n, p.grad!.toArraySync()]));
  model.zeroGrad();
  const opt = new AdamW(model.parameters(), { lr: 3e-3, beta1: 0.9, beta2: 0.95, weightDecay: 0.1 });
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    const l = lmTrainStep(model, opt, ids, targets, { count: B * T });
    losses.push(await l.item());
    l.dispose();
  }
  opt.dispose();
  model.dispose();
  ids.dispose();
  targets.dispose();
  return { logits, loss, grads, losses };
}

/** Tiny fixture model: CUDA vs CPU logits, loss, gradients, and 20 training steps. */
export async function modelParity(cuda: Backend, cpu: Backend, fixture: string): Promise<Json> {
  const steps = 20;
  const ref = await runSide(fixture, cpu, steps);
  const got = await runSide(fixture, cuda, steps);
  const gradErr = Math.max(...[...ref.grads].map(([n, g]) => maxRelDiff(got.grads.get(n)!, g)));
  const lossDiffs = ref.losses.map((l, i) => Math.abs(l - got.losses[i]!));
  const logitsErr = maxRelDiff(got.logits, ref.logits);
  const result = {
    check: 'model-parity',
    fixture: path.basename(fixture),
    logits_rel_err: logitsErr,
    loss_cpu: ref.loss,
    loss_cuda: got.loss,
    grads_rel_err: gradErr,
    train_losses_cpu: ref.losses.map((l) => +l.toFixed(5)),
    train_losses_cuda: got.losses.map((l) => +l.toFixed(5)),
    train_max_abs_diff: Math.max(...lossDiffs),
  };
  const ok = logitsErr <= 1e-4 && Math.abs(ref.loss - got.loss) <= 1e-4 && gradErr <= 1e-3 && result.train_max_abs_diff <= 1e-2;
  return { ...result, ok };
}

// ---- benchmarks ----

/** Runs bench/python/<script> with args; its last stdout line is JSON. */
export function pythonBaseline(pythonDir: string, script: string, args: string[], timeoutS: number): Json {
  const r = spawnSync(process.env.PYTHON ?? 'python3', [path.join(pythonDir, script), ...args], {
    encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: timeoutS * 1000,
  });
  const last = r.stdout?.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(last) as Json;
  } catch {
    return { error: `${script} printed no JSON (exit ${r.status}${r.signal ? `, ${r.signal}` : ''}): ${last.slice(0, 300)}` };
  }
}

/** Dense bf16 tensor-core peak by GPU name, for MFU (FLOP/s). */
export function bf16Peak(name: string): number {
  if (/H100|H200|GH200/.test(name)) return /PCIe/i.test(name) ? 756e12 : 989.4e12;
  if (/A100/.test(name)) return 312e12;
  if (/L40S/.test(name)) return 362e12;
  return NaN;
}

export function gemmBench(cuda: Backend, n: number, dtype: 'bf16' | 'f32', iters: number): Json {
  const k = cuda.kernels;
  const a = cuda.alloc(dtype, n * n), b = cuda.alloc(dtype, n * n), c = cuda.alloc(dtype, n * n);
  try {
    k.fill!(a, n * n, 0.01);
    k.fill!(b, n * n, 0.02);
    for (let i = 0; i < 3; i++) k.matmul!(a, b, c, 1, n, n, n, false, false, 0, 0);
    cuda.synchronize();
    const t0 = performance.now();
    for (let i = 0; i < iters; i++) k.matmul!(a, b, c, 1, n, n, n, false, false, 0, 0);
    cuda.synchronize();
    const seconds = (performance.now() - t0) / 1000;
    return { dtype, n, iters, tflops: +((2 * n ** 3 * iters) / seconds / 1e12).toFixed(1), ms_per_gemm: +((seconds * 1000) / iters).toFixed(3) };
  } finally {
    for (const s of [a, b, c]) cuda.free(s);
  }
}

/** Random-looking weights without drawing 10⁹ normals on the host: tiles of one uploaded N(0, 0.02²) pool. */
function deviceInit(model: CausalLM, cuda: Backend, gen: Generator): void {
  const P = 1 << 20;
  const pool = cuda.alloc('f32', P);
  cuda.write(pool, Float32Array.from({ length: P }, () => gen.normal() * 0.02));
  for (const [name, p] of model.namedParameters()) {
    const s = p.storageFor('init');
    if (/norm/.test(name)) {
      cuda.kernels.fill!(s, p.numel, 1);
      continue;
    }
    for (let off = 0; off < p.numel; off += P) {
      const len = Math.min(P, p.numel - off);
      cuda.kernels.copyBlock!(pool, s, 1, len, 1, P, 0, p.numel, off);
    }
  }
  cuda.free(pool);
}

type LlamaModelConfig = Extract<ModelConfig, { family: 'llama' }>;

export interface TrainShape { label: string; config: LlamaModelConfig; batch: number; seq: number }

export const TRAIN_SHAPES: TrainShape[] = [
  {
    label: 'llama-124m',
    config: { family: 'llama', vocabSize: 32000, hiddenSize: 768, numLayers: 12, numHeads: 12, numKvHeads: 12, intermediateSize: 2048, maxPositionEmbeddings: 1024 },
    batch: 16, seq: 1024,
  },
  {
    label: 'tinyllama-1.1b',
    config: { family: 'llama', vocabSize: 32000, hiddenSize: 2048, numLayers: 22, numHeads: 32, numKvHeads: 4, intermediateSize: 5632, maxPositionEmbeddings: 2048 },
    batch: 8, seq: 2048,
  },
];

/**
 * Tokens/s of training steps. With `profile`, every kernel is timed on its own (the stream is
 * serialised, so the step time is not comparable) to show where the time goes.
 */
export async function trainBench(gpu: Backend, shape: TrainShape, steps: number, warmup: number, peak: number, profile?: KernelProfile): Promise<Json> {
  const cuda = profile ? profiledBackend(gpu, profile) : gpu;
  setBackend(cuda);
  const gen = new Generator(0);
  const model = createModel(shape.config, { backend: cuda, init: 'none' }) as LlamaForCausalLM;
  deviceInit(model, cuda, gen);
  profile?.reset();
  const params = model.numParameters();
  const opt = new AdamW(model.parameters(), { lr: 1e-4, beta1: 0.9, beta2: 0.95, weightDecay: 0.1 });
  const { ids, targets } = batchOf(gen, shape.batch, shape.seq, shape.config.vocabSize, cuda);
  const times: number[] = [];
  let firstLoss = NaN;
  try {
    for (let i = 0; i < warmup + steps; i++) {
      const t0 = performance.now();
      const loss = lmTrainStep(model, opt, ids, targets, { count: shape.batch * shape.seq });
      const value = await loss.item();
      loss.dispose();
      if (i === 0) firstLoss = value;
      if (i >= warmup) times.push(performance.now() - t0);
    }
  } finally {
    opt.dispose();
    model.dispose();
    ids.dispose();
    targets.dispose();
  }
  const stepMs = [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
  const tokensPerS = (shape.batch * shape.seq * 1000) / stepMs;
  return {
    params, batch: shape.batch, seq: shape.seq, steps, step_ms_median: +stepMs.toFixed(1), tokens_per_s: Math.round(tokensPerS),
    mfu: +((6 * params * tokensPerS) / peak).toFixed(4), first_loss: +firstLoss.toFixed(4), dtype: 'f32 (TF32 GEMMs)',
    ...(profile ? { profile_top: profile.top(12) } : {}),
  };
}

export async function generateBench(cuda: Backend, config: LlamaModelConfig, batch: number, prompt: number, newTokens: number): Promise<Json> {
  setBackend(cuda);
  const gen = new Generator(0);
  const model = createModel({ ...config, maxPositionEmbeddings: prompt + newTokens + 8 }, { backend: cuda, init: 'none' });
  deviceInit(model, cuda, gen);
  const prompts = Array.from({ length: batch }, () => Array.from({ length: prompt }, () => gen.int(config.vocabSize)));
  try {
    await generate(model, prompts.map((p) => p.slice(0, 8)), { maxNewTokens: 4, temperature: 1 }); // warm-up: compile, allocate
    const t0 = performance.now();
    const out = await generate(model, prompts, { maxNewTokens: newTokens, temperature: 1 });
    const seconds = (performance.now() - t0) / 1000;
    const produced = out.tokens.reduce((s, t) => s + t.length, 0);
    return { batch, prompt, new_tokens: newTokens, seconds: +seconds.toFixed(3), tokens_per_s: +(produced / seconds).toFixed(1), dtype: 'f32 (TF32 GEMMs)' };
  } finally {
    model.dispose();
  }
}
