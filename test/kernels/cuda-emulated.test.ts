/**
 * The whole CUDA path on a machine without a GPU: the real addon and the real CUDA backend run
 * on the fake CUDA stack of fixtures/cuda-emu (the kernels of kernels/cuda/*.cu compiled as host
 * C++, each CUDA thread a fiber with real barriers; a reference cuBLASLt; NVRTC answered with
 * nvcc's PTX). Every op-suite case, random shapes and the bf16 kernels must match the reference,
 * the tiny fixture model must match the CPU backend (logits, loss, gradients, 20 training steps),
 * and the benchmark code of bench/device-main.ts must run (at toy sizes). What this cannot show: speed, real memory ordering, real cuBLASLt and NVRTC — those
 * need bench/device.sh on a GPU.
 * Needs g++, libffi (ffi.h) and nvcc (for the PTX; see cuda-compile.test.ts); skipped with the
 * reason otherwise. Runs in a child process because the addon loads CUDA once per process.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { findNvcc } from './cuda-tools.js';
import { nativeAvailable } from '../../kernels/native-backend.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const emuDir = path.join(here, 'fixtures/cuda-emu');
const kernelDir = path.join(root, 'kernels/cuda');

const nvcc = findNvcc();
const hasFfi = ['/usr/include/ffi.h', '/usr/include/x86_64-linux-gnu/ffi.h'].some(existsSync);
const hasGxx = spawnSync('g++', ['--version']).status === 0;
const missing = [!nvcc && 'nvcc', !hasFfi && 'libffi-dev (ffi.h)', !hasGxx && 'g++', !nativeAvailable().ok && 'the native addon'].filter(Boolean);
if (missing.length > 0) process.stdout.write(`[cuda-emulated] skipping: no ${missing.join(', ')}\n`);

interface ChildResult {
  error?: string;
  cases: number;
  failed: { name: string; detail?: string }[];
  model: Record<string, unknown> | null;
  bench: { train: { first_loss: number }; generate: { tokens_per_s: number }; gemm: { ms_per_gemm: number } } | null;
}

describe.skipIf(missing.length > 0)('CUDA backend on the emulated GPU', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'align-cuda-emu-'));
    const lib = path.join(dir, 'libcuda.so.1');
    const cc = spawnSync('g++', ['-std=c++17', '-O1', '-U_FORTIFY_SOURCE', '-shared', '-fPIC', '-DALIGN_CUDA_EMULATION',
      '-include', path.join(emuDir, 'emu.h'), '-I', kernelDir, '-x', 'c++',
      ...readdirSync(kernelDir).filter((f) => f.endsWith('.cu')).map((f) => path.join(kernelDir, f)),
      '-x', 'none', path.join(emuDir, 'emu.cc'), '-lffi', '-ldl', '-o', lib], { encoding: 'utf8' });
    if (cc.status !== 0) throw new Error(`building the emulator failed:\n${cc.stderr}`);
    copyFileSync(lib, path.join(dir, 'libnvrtc.so.13'));
    copyFileSync(lib, path.join(dir, 'libcublasLt.so.13'));
    mkdirSync(path.join(dir, 'ptx'));
    for (const f of readdirSync(kernelDir).filter((x) => x.endsWith('.cu'))) {
      const r = spawnSync(nvcc!, ['-ptx', '-arch=compute_90', '-std=c++17', '-I', kernelDir, path.join(kernelDir, f),
        '-o', path.join(dir, 'ptx', f.replace(/\.cu$/, '.ptx'))], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`nvcc -ptx ${f} failed:\n${r.stderr}`);
    }
  }, 300_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const run = (checks: string): ChildResult => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(emuDir, 'run-parity.ts')], {
      cwd: root, encoding: 'utf8', maxBuffer: 64 << 20,
      env: { ...process.env, ALIGN_CUDA_LIBS: dir, ALIGN_EMU_PTX_DIR: path.join(dir, 'ptx'), ALIGN_CUDA_CACHE: path.join(dir, 'cache'), EMU_CHECKS: checks },
    });
    if (r.status !== 0) throw new Error(`emulated run failed (${r.status}): ${r.stderr.slice(-3000)}`);
    return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as ChildResult;
  };

  it('every op (op-suite cases with NaN variants, random shapes, bf16 kernels) matches the reference; the benchmarks run', () => {
    const r = run('ops,random,bf16,bench');
    expect(r.error).toBeUndefined();
    expect(r.cases).toBeGreaterThan(200);
    expect(r.failed).toEqual([]);
    // bench/device-main.ts's benchmark code at toy sizes: a sane first loss (≈ ln 300) and output.
    expect(r.bench!.train.first_loss).toBeCloseTo(Math.log(300), 0);
    expect(r.bench!.generate.tokens_per_s).toBeGreaterThan(0);
    expect(r.bench!.gemm.ms_per_gemm).toBeGreaterThan(0);
  }, 600_000);

  it('the tiny Llama fixture: logits, loss, gradients and 20 training steps match the CPU backend', () => {
    const r = run('model');
    expect(r.error).toBeUndefined();
    expect(r.model).toMatchObject({ ok: true });
  }, 900_000);
});
