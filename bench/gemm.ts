/**
 * fp32 GEMM throughput of the native CPU backend, against this machine's FMA peak measured in
 * the same run (same thread count), so the ratio means the same thing on any machine.
 *
 *   npm run bench -- gemm [--threads N] [--reps N] [--warmup N] [--peak-ms MS] [--sizes LIST]
 *
 * Shapes are M×N×K (out [M, N] = A [M, K] · B [K, N], no transposes): 256³, 512³, 1024³, 2048³,
 * and the skinny 64×4096×1024 (a decode-like activation block times a weight).
 * Each shape: warm-up calls, then `reps` calls each timed on its own (matmul, then synchronize),
 * and the median is reported. GFLOP/s = 2·M·N·K / median. A few output entries are checked
 * against a float64 dot product first, so a broken kernel cannot report a fast number.
 * When the benchmark venv exists (.tools/bench-venv, bench/python/setup-venv.sh), torch.matmul is
 * timed on the same shapes and thread count (bench/python/cpu_gemm.py) and each shape reports
 * torch_gflops and ratio_vs_torch; --no-torch skips it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import type { Storage } from '../kernels/backend.js';
import { checkGemmEntries } from '../kernels/gemm-check.js';
import { xorshiftF32 } from '../kernels/random.js';
import { blasInfo, cpuIsa, fmaPeakGflops, getNumThreads, nativeBackend, setNumThreads } from '../kernels/native-backend.js';

export const help = `bench gemm: fp32 GEMM GFLOP/s on the native backend, against the FMA peak.
Options:
  --threads N    compute threads (default: all cores, ${os.availableParallelism()} here)
  --reps N       timed calls per shape (default: about 1 s per shape, 5 to 100 calls)
  --warmup N     untimed calls per shape before timing (default 2, and at least ~200 ms of calls)
  --peak-ms MS   how long the FMA peak is measured (default 500)
  --sizes LIST   comma-separated shapes, each S (for S³) or MxNxK (default 256,512,1024,2048,64x4096x1024)
  --no-torch     skip the torch.matmul baseline (run only when .tools/bench-venv exists)`;

interface Shape {
  M: number;
  N: number;
  K: number;
}

const DEFAULT_SIZES = '256,512,1024,2048,64x4096x1024';

function parseShape(s: string): Shape {
  const parts = s.split('x').map((p) => Number(p));
  const ok = parts.every((p) => Number.isInteger(p) && p > 0);
  if (ok && parts.length === 1) return { M: parts[0], N: parts[0], K: parts[0] };
  if (ok && parts.length === 3) return { M: parts[0], N: parts[1], K: parts[2] };
  throw new Error(`bench gemm: bad size '${s}'; use S (for S×S×S) or MxNxK, e.g. 64x4096x1024`);
}

function positiveInt(name: string, v: string | undefined, dflt: number | null): number | null {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || (name !== 'warmup' && n === 0)) {
    throw new Error(`bench gemm: --${name} must be a ${name === 'warmup' ? 'non-negative' : 'positive'} integer, got '${v}'`);
  }
  return n;
}

/** The median of xs (the mean of the middle two for an even count); the benches share it. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}


const round = (x: number, digits: number) => Number(x.toFixed(digits));

export async function run(args: string[]): Promise<Record<string, unknown>> {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      threads: { type: 'string' },
      reps: { type: 'string' },
      warmup: { type: 'string' },
      'peak-ms': { type: 'string' },
      sizes: { type: 'string' },
      'no-torch': { type: 'boolean', default: false },
    },
  });
  const threads = positiveInt('threads', values.threads, os.availableParallelism())!;
  const fixedReps = positiveInt('reps', values.reps, null);
  const warmup = positiveInt('warmup', values.warmup, 2)!;
  const peakMs = positiveInt('peak-ms', values['peak-ms'], 500)!;
  const shapes = (values.sizes ?? DEFAULT_SIZES).split(',').map((s) => parseShape(s.trim()));

  const backend = nativeBackend();
  const matmul = backend.kernels.matmul;
  if (!matmul) throw new Error(`bench gemm: the native backend has no matmul (${backend.unsupported.matmul ?? 'no reason given'})`);
  setNumThreads(threads);
  const usedThreads = getNumThreads();

  // The peak first, on an idle machine, with the thread count the GEMMs use.
  const peak = fmaPeakGflops(usedThreads, peakMs);
  console.error(`gemm: ${usedThreads} threads, FMA peak ${peak.toFixed(1)} GFLOP/s (${cpuIsa()} FMAs), BLAS: ${blasInfo()}`);

  const results: Record<string, unknown>[] = [];
  for (const { M, N, K } of shapes) {
    const hostA = xorshiftF32(M * K, 1 + M);
    const hostB = xorshiftF32(K * N, 2 + N);
    const a: Storage = backend.alloc('f32', M * K);
    const b: Storage = backend.alloc('f32', K * N);
    const out: Storage = backend.alloc('f32', M * N);
    try {
      backend.write(a, hostA);
      backend.write(b, hostB);
      const call = () => {
        matmul(a, b, out, 1, M, N, K, false, false, 0, 0);
        backend.synchronize();
      };
      const timed = () => {
        const t0 = performance.now();
        call();
        return performance.now() - t0;
      };

      // At least --warmup calls and ~200 ms: a cold first shape (threads waking, clocks ramping)
      // measured at a third of its warm speed.
      const warmStart = performance.now();
      for (let i = 0; i < warmup || performance.now() - warmStart < 200; i++) call();
      checkGemmEntries(backend.readSync(out), hostA, hostB, M, N, K, false, false, `bench gemm: wrong result at ${M}x${N}x${K}`);
      const first = timed();
      // About 1 s per shape unless --reps says otherwise.
      const reps = fixedReps ?? Math.min(100, Math.max(5, Math.round(1000 / Math.max(first, 1e-3))));
      const times: number[] = [];
      for (let r = 0; r < reps; r++) times.push(timed());

      const ms = median(times);
      const gflops = (2 * M * N * K) / (ms * 1e6);
      const shape = `${M}x${N}x${K}`;
      console.error(`gemm: ${shape.padEnd(14)} ${gflops.toFixed(1).padStart(7)} GFLOP/s  (${(gflops / peak).toFixed(3)} of peak, median of ${reps}: ${ms.toFixed(3)} ms)`);
      results.push({
        shape,
        M,
        N,
        K,
        gflops: round(gflops, 2),
        ratio_to_peak: round(gflops / peak, 4),
        ms_median: round(ms, 4),
        ms_min: round(Math.min(...times), 4),
        reps,
      });
    } finally {
      backend.free(a);
      backend.free(b);
      backend.free(out);
    }
  }

  const torch = values['no-torch'] ? null : torchMatmul(usedThreads, results.map((r) => String(r.shape)));
  if (torch && 'results' in torch) {
    for (const r of results) {
      const theirs = torch.results.find((t) => t.shape === r.shape);
      if (!theirs) continue;
      r.torch_gflops = theirs.gflops;
      r.ratio_vs_torch = round(Number(r.gflops) / theirs.gflops, 3);
      console.error(`gemm: ${String(r.shape).padEnd(14)} torch.matmul ${theirs.gflops.toFixed(1).padStart(7)} GFLOP/s  (ours ${String(r.ratio_vs_torch)}×)`);
    }
  }

  return {
    bench: 'gemm',
    dtype: 'f32',
    threads: usedThreads,
    blas: blasInfo(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    isa: cpuIsa(),
    peak_gflops: round(peak, 2),
    peak_ms: peakMs,
    results,
    ...(torch ? { torch: 'results' in torch ? { version: torch.version, threads: torch.threads } : torch } : {}),
  };
}

interface TorchGemm {
  version: string;
  threads: number;
  results: { shape: string; gflops: number }[];
}

/** torch.matmul on the same shapes, or null without the bench venv, or {error} when it failed. */
function torchMatmul(threads: number, shapes: string[]): TorchGemm | { error: string } | null {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const python = path.join(root, '.tools/bench-venv/bin/python');
  if (!existsSync(python)) {
    console.error('gemm: no torch.matmul baseline (.tools/bench-venv is missing; bash bench/python/setup-venv.sh makes it)');
    return null;
  }
  const run = spawnSync(python, [path.join(root, 'bench/python/cpu_gemm.py'), '--threads', String(threads), '--sizes', shapes.join(',')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (run.error) return { error: `bench/python/cpu_gemm.py did not start: ${run.error.message}` };
  const last = (run.stdout ?? '').trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(last) as TorchGemm;
  } catch {
    return { error: `bench/python/cpu_gemm.py printed no JSON (exit ${run.status}): ${last.slice(0, 200)}` };
  }
}
