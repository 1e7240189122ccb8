/**
 * Compile checks of the CUDA side that need CUDA tools but no GPU, each skipped (with the reason
 * printed) where its tools are missing; CI installs none of them (the wheels are hundreds of MB):
 *  - nvcc: kernels/cuda/check.sh builds every kernels/cuda/*.cu for sm_80, sm_90 and compute_90
 *    PTX, warnings as errors. One command installs nvcc locally:
 *      python3 -m venv .tools/cuda-venv && .tools/cuda-venv/bin/pip install nvidia-cuda-nvcc==13.5.37 nvidia-cuda-nvrtc==13.5.37 nvidia-cuda-cccl==13.3.5.0.6
 *  - NVRTC (found by the loader, e.g. in that venv or in a PyTorch install): every module through
 *    the run-time compile path of kernels/cuda-modules.ts, for sm_80 and sm_90.
 *  - The ABI: kernels/native/src/cuda/api.h's hand-written values, layouts and prototypes against
 *    real cuda.h / cublasLt.h / nvrtc.h (fixtures/cuda-abi-check.cc, static_asserts only).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

import { findNvcc } from './cuda-tools.js';
import { compileModule, kernelSourceDir } from '../../kernels/cuda-modules.js';
import { cudaAddon, probe, pythonSitePackages } from '../../kernels/cuda-probe.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const modules = readdirSync(kernelSourceDir()).filter((f) => f.endsWith('.cu')).map((f) => f.slice(0, -3)).sort();

function skipNote(what: string, reason: string): void {
  process.stdout.write(`[cuda-compile] skipping ${what}: ${reason}\n`);
}

const nvcc = findNvcc();
if (!nvcc) skipNote('the nvcc check', 'no nvcc (NVCC, PATH or .tools/cuda-venv); see the header of this file for the install command');

describe.skipIf(!nvcc)('nvcc compile check (kernels/cuda/check.sh)', () => {
  it('compiles every kernel for sm_80, sm_90 and compute_90 PTX without warnings', () => {
    const r = spawnSync('bash', [path.join(root, 'kernels/cuda/check.sh')], { encoding: 'utf8', env: { ...process.env, NVCC: nvcc! } });
    expect(r.stdout + r.stderr).toContain(`${modules.length * 3} passed, 0 failed`);
    expect(r.status).toBe(0);
  }, 300_000);
});

const nvrtc = probe().libraries.nvrtc;
if (!nvrtc.loaded) skipNote('the NVRTC check', nvrtc.error ?? 'NVRTC not loaded');

describe.skipIf(!nvrtc.loaded)(`NVRTC compile of every module (${nvrtc.path ?? 'not loaded'})`, () => {
  for (const arch of ['sm_80', 'sm_90']) {
    it.each(modules)(`%s.cu for ${arch}`, (module) => {
      const cubin = compileModule(cudaAddon(), module, arch);
      // An ELF image: the cubin the driver will load.
      expect([...cubin.subarray(0, 4)]).toEqual([0x7f, 0x45, 0x4c, 0x46]);
    }, 120_000);
  }
});

/** Include dirs from Python CUDA wheels: those with cublasLt.h first, so its own runtime headers win. */
function cudaIncludeDirs(): string[] {
  const dirs: string[] = [];
  for (const sp of pythonSitePackages()) {
    const nv = path.join(sp, 'nvidia');
    for (const pkg of existsSync(nv) ? readdirSync(nv) : []) {
      const inc = path.join(nv, pkg, 'include');
      if (existsSync(inc)) dirs.push(inc);
      if (existsSync(path.join(inc, 'cccl'))) dirs.push(path.join(inc, 'cccl'));
    }
  }
  const has = (d: string, f: string): boolean => existsSync(path.join(d, f));
  return [...dirs.filter((d) => has(d, 'cublasLt.h')), ...dirs.filter((d) => !has(d, 'cublasLt.h'))];
}

const includes = cudaIncludeDirs();
const needed = ['cuda.h', 'cublasLt.h', 'nvrtc.h', 'crt/host_defines.h', 'nv/target'];
const missing = needed.filter((f) => !includes.some((d) => existsSync(path.join(d, f))));
if (missing.length > 0) skipNote('the ABI check', `no CUDA headers for ${missing.join(', ')} in Python site-packages`);

describe.skipIf(missing.length > 0)('hand-declared CUDA ABI (kernels/native/src/cuda/api.h)', () => {
  it('matches the real headers: enum values, struct layouts, prototype shapes', () => {
    const args = ['-std=c++17', '-fsyntax-only', ...includes.map((d) => `-I${d}`), `-I${path.join(root, 'kernels/native/src')}`,
      path.join(here, 'fixtures/cuda-abi-check.cc')];
    const r = spawnSync('g++', args, { encoding: 'utf8' });
    expect(r.stderr.split('\n').filter((l) => l.includes('error')).slice(0, 10)).toEqual([]);
    expect(r.status).toBe(0);
  }, 120_000);
});
