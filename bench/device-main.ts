/**
 * The GPU machine's entry point (bundled by bench/bundle-device.sh, run by bench/device.sh):
 * every CUDA test and benchmark in one process, one JSON line per result on stdout, progress on
 * stderr, and ONE summary JSON line last. Exit code 0 when every check passed (benchmark targets
 * are reported, not enforced), 1 otherwise; on a machine without a usable GPU it prints the probe
 * and a summary saying why, and exits 0.
 *
 *   node device-main.mjs              (bundle)   |   npx tsx bench/device-main.ts   (repo)
 * Env: ALIGN_DEVICE_BUDGET_S (default 400 s: benchmarks that would not fit are skipped),
 *      ALIGN_DEVICE_SKIP=ops,nccl,model,gemm,train,generate (any subset), PYTHON (default python3).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import type { Backend } from '../kernels/backend.js';
import { cudaAvailable, cudaMemoryStats } from '../kernels/cuda-backend.js';
import { probe } from '../kernels/cuda-probe.js';
import { KernelProfile } from '../kernels/profile.js';
import { getBackend, referenceBackend, tensor } from '../kernels/index.js';
import { ncclUniqueId, openNcclGroup } from '../kernels/distributed/nccl.js';
import { nativeAvailable, nativeBackend } from '../kernels/native-backend.js';
import { bf16Parity, opParity, randomParity } from './device-parity.js';
import type { ParityResult } from './device-parity.js';
import { TRAIN_SHAPES, bf16Peak, gemmBench, generateBench, modelParity, pythonBaseline, trainBench } from './device-model.js';

type Json = Record<string, unknown>;
const here = path.dirname(fileURLToPath(import.meta.url));
const started = performance.now();
const budgetS = Number(process.env.ALIGN_DEVICE_BUDGET_S ?? 400);
const skip = new Set((process.env.ALIGN_DEVICE_SKIP ?? '').split(',').filter(Boolean));
const elapsed = (): number => (performance.now() - started) / 1000;

function emit(obj: Json): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}
function log(msg: string): void {
  process.stderr.write(`[device ${elapsed().toFixed(0)}s] ${msg}\n`);
}
/** The first existing path: the bundle lays files out beside this script, the repo elsewhere. */
function locate(...candidates: string[]): string {
  return candidates.find((c) => existsSync(c)) ?? candidates[0]!;
}

const fixtureDir = locate(process.env.ALIGN_DEVICE_FIXTURE ?? '', path.join(here, 'fixtures/tiny-llama'), path.join(here, '../models/fixtures/tiny-llama'));
const pythonDir = locate(process.env.ALIGN_DEVICE_PYTHON ?? '', path.join(here, 'python')); // bundle/python or bench/python

function paritySummary(check: string, results: ParityResult[]): Json {
  const failed = results.filter((r) => !r.ok);
  for (const f of failed) emit({ check, failed: f.name, rel_err: f.relErr, detail: f.detail ?? null });
  const worst = results.reduce((w, r) => (r.ok && r.relErr > w.relErr ? r : w), { name: '', relErr: 0 } as { name: string; relErr: number });
  return { check, cases: results.length, failed: failed.length, worst_rel_err: worst.relErr, worst_case: worst.name, ok: failed.length === 0 };
}

/** Runs one step, turning an exception into a failed JSON result so that the rest still runs. */
async function step(name: string, f: () => Promise<Json> | Json): Promise<Json> {
  log(`${name}…`);
  try {
    const r = await f();
    emit(r);
    return r;
  } catch (err) {
    const r = { check: name, ok: false, error: `${(err as Error).name}: ${(err as Error).message}`.slice(0, 2000) };
    emit(r);
    return r;
  }
}

function ratio(ours: unknown, theirs: unknown): number | null {
  const a = Number(ours), b = Number(theirs);
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? +(a / b).toFixed(3) : null;
}

async function main(): Promise<void> {
  const report = probe();
  emit({ check: 'probe', ...report });
  const status = cudaAvailable();
  if (!status.ok) {
    emit({ summary: true, ok: false, gpu: false, reason: `no GPU: ${status.reason}`, elapsed_s: +elapsed().toFixed(1) });
    return;
  }
  const cuda = getBackend('cuda');
  const cpu: Backend = nativeAvailable().ok ? nativeBackend() : referenceBackend;
  const gpuName = report.devices[0]?.name ?? 'unknown';
  const peak = bf16Peak(gpuName);
  const summary: Json = { summary: true, gpu: gpuName, driver: report.driverVersion, nvrtc: report.nvrtcVersion, cublasLt: report.cublasLtVersion };
  const checks: boolean[] = [];

  const smoke = await step('smoke', () => {
    const s = cuda.alloc('f32', 5);
    cuda.write(s, [1, 2, 3, 4, 5]);
    const back = [...cuda.readSync(s)];
    cuda.free(s);
    return { check: 'smoke', values: back, ok: back.join() === '1,2,3,4,5' };
  });
  checks.push(smoke.ok === true);

  if (!skip.has('ops')) {
    for (const [name, f] of [['op-parity', opParity], ['random-shape-parity', randomParity], ['bf16-parity', bf16Parity]] as const) {
      const r = await step(name, () => paritySummary(name, f(cuda)));
      checks.push(r.ok === true);
      summary[name] = { cases: r.cases, failed: r.failed };
    }
  }
  if (!skip.has('nccl')) {
    // One GPU: a world of one through NCCL (the multi-GPU equivalence needs more devices).
    const r = await step('nccl-world-1', async () => {
      if (report.ncclVersion === null) return { check: 'nccl-world-1', ok: false, detail: `NCCL not loaded: ${report.libraries.nccl?.error ?? 'unknown'}` };
      const g = await openNcclGroup({ name: 'device', world: 1, timeoutMs: 30_000, ncclId: ncclUniqueId() }, 0);
      const x = Float32Array.from({ length: 4097 }, (_, i) => Math.sin(i));
      const t = tensor(x, [4097], { backend: cuda });
      await g.allReduce(t);
      const same = (await t.data()).every((v, i) => v === x[i]);
      const gathered = await g.allGather(t);
      await g.barrier();
      await g.close();
      return { check: 'nccl-world-1', nccl: report.ncclVersion, ok: same && gathered.shape.join() === '1,4097' };
    });
    checks.push(r.ok === true);
  }
  if (!skip.has('model')) {
    const r = await step('model-parity', () => modelParity(cuda, cpu, fixtureDir));
    checks.push(r.ok === true);
    summary['model-parity'] = r.ok;
  }

  // Benchmarks: TF32 for our f32 GEMMs (the checks above ran with full fp32).
  process.env.ALIGN_CUDA_TF32 = '1';
  const benches: Json = {};
  const fits = (estimateS: number, name: string): boolean => {
    if (elapsed() + estimateS <= budgetS) return true;
    emit({ bench: name, skipped: `time budget: ${elapsed().toFixed(0)} s used of ${budgetS} s, needs about ${estimateS} s` });
    return false;
  };
  if (!skip.has('gemm') && fits(30, 'gemm')) {
    const r = await step('gemm', () => {
      const ours = gemmBench(cuda, 8192, 'bf16', 20);
      const fp32 = gemmBench(cuda, 4096, 'f32', 10);
      const torch = pythonBaseline(pythonDir, 'gpu_gemm.py', ['--n', '8192', '--iters', '20'], 120);
      return { bench: 'gemm-bf16-8192', ours, ours_f32_4096_tf32: fp32, torch, ratio_vs_torch: ratio(ours.tflops, torch.tflops) };
    });
    benches.gemm_ratio = r.ratio_vs_torch ?? null;
  }
  if (!skip.has('train')) {
    for (const [i, shape] of TRAIN_SHAPES.entries()) {
      if (!fits(i === 0 ? 60 : 150, `train-${shape.label}`)) continue;
      const r = await step(`train-${shape.label}`, async () => {
        const ours = await trainBench(cuda, shape, i === 0 ? 5 : 3, i === 0 ? 2 : 1, peak);
        const torch = pythonBaseline(pythonDir, 'gpu_train.py', ['--preset', shape.label, '--steps', i === 0 ? '10' : '5', '--warmup', '2'], 240);
        // Where our time goes (kernels timed one by one, 1 step after 1 warm-up), for the small model.
        const profile = i === 0 && elapsed() + 40 <= budgetS ? (await trainBench(cuda, shape, 1, 1, peak, new KernelProfile())).profile_top : undefined;
        return { bench: `train-${shape.label}`, ours, torch, ratio_vs_torch: ratio(ours.tokens_per_s, torch.tokens_per_s), peak_flops: peak, profile_top: profile };
      });
      benches[`train_${shape.label}_ratio`] = r.ratio_vs_torch ?? null;
    }
  }
  if (!skip.has('generate') && fits(120, 'generate')) {
    const r = await step('generate', async () => {
      const ours = await generateBench(cuda, TRAIN_SHAPES[1]!.config, 64, 128, 256);
      const torch = pythonBaseline(pythonDir, 'gpu_generate.py', ['--batch', '64', '--prompt', '128', '--new', '256'], 240);
      return { bench: 'generate-1.1b', ours, torch, ratio_vs_torch: ratio(ours.tokens_per_s, torch.tokens_per_s) };
    });
    benches.generate_ratio = r.ratio_vs_torch ?? null;
  }

  const ok = checks.every(Boolean);
  let memory: Json | null = null;
  try {
    memory = { ...cudaMemoryStats() };
  } catch {
    memory = null;
  }
  emit({ ...summary, ok, checks_passed: checks.filter(Boolean).length, checks: checks.length, benches, memory, elapsed_s: +elapsed().toFixed(1) });
  process.exitCode = ok ? 0 : 1;
}

main().catch((err: unknown) => {
  emit({ summary: true, ok: false, error: `${(err as Error).name}: ${(err as Error).message}`, elapsed_s: +elapsed().toFixed(1) });
  process.exitCode = 1;
});
