/**
 * Batched greedy generation throughput on the CPU, against transformers' generate() (KV cache,
 * PyTorch CPU, same thread count) in the same run (bench/python/generate.py).
 *
 *   npm run bench -- generate [--threads N] [--batch 16] [--prompt 64] [--new 128] [--no-torch]
 *
 * Model: Llama-style, d=512, 8 layers, 8 heads, SwiGLU 1376, vocab 32000, fp32, random init.
 * tokens/s counts generated tokens: batch × new tokens / wall time (prefill included).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Generator, currentBackend, setBackend } from '../kernels/index.js';
import { KernelProfile, profiledBackend } from '../kernels/profile.js';
import { getNumThreads, setNumThreads } from '../kernels/native-backend.js';
import type { ModelConfig } from '../models/config.js';
import { generate } from '../models/generate.js';
import { createModel } from '../models/pretrained.js';

export const help = `bench generate: greedy decoding tokens/s (d=512, 8 layers, vocab 32000) against transformers.
Options:
  --threads N   compute threads for both (default: all cores, ${os.availableParallelism()} here)
  --batch N     prompts per batch (default 16)
  --prompt N    prompt length (default 64)
  --new N       new tokens per prompt (default 128)
  --no-torch    skip the transformers baseline
  --profile     time every kernel on its own and report the top ones (slower; not comparable)`;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export async function run(argv: string[]): Promise<Record<string, unknown>> {
  const { values } = parseArgs({
    args: argv,
    options: {
      threads: { type: 'string' }, batch: { type: 'string', default: '16' }, prompt: { type: 'string', default: '64' },
      new: { type: 'string', default: '128' }, 'no-torch': { type: 'boolean', default: false }, profile: { type: 'boolean', default: false },
    },
  });
  if (values.threads) setNumThreads(Number(values.threads));
  const threads = getNumThreads();
  const B = Number(values.batch), P = Number(values.prompt), N = Number(values.new);
  const config: ModelConfig = {
    family: 'llama', vocabSize: 32000, hiddenSize: 512, numLayers: 8, numHeads: 8, numKvHeads: 8, intermediateSize: 1376,
    maxPositionEmbeddings: P + N + 8, rmsNormEps: 1e-5,
  };
  let profile: KernelProfile | null = null;
  if (values.profile) {
    profile = new KernelProfile();
    setBackend(profiledBackend(currentBackend(), profile));
  }
  const gen = new Generator(0);
  process.stderr.write('  building the model…\n');
  const model = createModel(config, { gen });
  const prompts = Array.from({ length: B }, () => Array.from({ length: P }, () => gen.int(config.vocabSize)));
  await generate(model, prompts.map((p) => p.slice(0, 8)), { maxNewTokens: 4, temperature: 0 }); // warm-up
  profile?.reset();
  const t0 = performance.now();
  const out = await generate(model, prompts, { maxNewTokens: N, temperature: 0 });
  const seconds = (performance.now() - t0) / 1000;
  if (out.tokens.some((t) => t.length !== N)) throw new Error('bench generate: a row stopped early');
  model.dispose();
  const ours = { tokens_per_s: +((B * N) / seconds).toFixed(1), seconds: +seconds.toFixed(3) };
  process.stderr.write(`  ours: ${ours.tokens_per_s} tokens/s\n`);
  const result: Record<string, unknown> = { bench: 'generate', model: { ...config, family: undefined }, batch: B, prompt: P, new_tokens: N, threads, ours };
  if (profile) result.profile_top = profile.top(15);
  if (!values['no-torch'] && !profile) {
    const baseline = transformersGenerate(threads, B, P, N);
    result.baseline = baseline;
    if (!('error' in baseline)) result.ratio_vs_torch = +(ours.tokens_per_s / Number(baseline.tokens_per_s)).toFixed(3);
  }
  return result;
}

/**
 * transformers' generate() on the same shapes (bench/python/generate.py, greedy, KV cache, PyTorch
 * CPU), installing the bench venv on first use: its JSON line, or { error } saying why there is none.
 */
export function transformersGenerate(threads: number, batch: number, prompt: number, newTokens: number): Record<string, unknown> {
  const python = path.join(root, '.tools/bench-venv/bin/python');
  if (!existsSync(path.join(root, '.tools/bench-venv/.complete-torch-2.15.0-transformers-5.24.0'))) {
    spawnSync('bash', [path.join(root, 'bench/python/setup-venv.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
  }
  const r = spawnSync(python, [path.join(root, 'bench/python/generate.py'), '--threads', String(threads), '--batch', String(batch), '--prompt', String(prompt), '--new', String(newTokens)], {
    encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'],
  });
  const last = r.stdout?.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(last) as Record<string, unknown>;
  } catch {
    return { error: `baseline printed no JSON (exit ${r.status}): ${last.slice(0, 200)}` };
  }
}
