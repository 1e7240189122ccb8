/**
 * The CUDA loader without a GPU: probe() reports cleanly, every CUDA call throws NoGpuError
 * saying what is missing, and a fake libcuda.so.1 (built here from fixtures/fake-cuda) is found
 * through ALIGN_CUDA_LIBS and reported as a driver with 0 devices. The addon loads the CUDA
 * libraries once per process, so each ALIGN_CUDA_LIBS setting runs in a child process.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { CudaProbe } from '../../kernels/cuda-probe.js';
import { nvidiaLibDirs, probe, pythonSitePackages } from '../../kernels/cuda-probe.js';
import { NoGpuError, getBackend, tensor } from '../../kernels/index.js';
import { nativeAvailable } from '../../kernels/native-backend.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const fixture = path.join(here, 'fixtures/fake-cuda');
const addonBuilt = nativeAvailable().ok;
const hasCc = spawnSync('cc', ['--version']).status === 0;
const report = probe();

describe.skipIf(!addonBuilt)('cuda probe on this machine', () => {
  it('never throws and reports every library', () => {
    expect(Object.keys(report.libraries).sort()).toEqual(['cublasLt', 'driver', 'nccl', 'nvrtc', 'runtime']);
    for (const lib of Object.values(report.libraries)) {
      expect(typeof lib.loaded).toBe('boolean');
      if (lib.loaded) expect(lib.path).toMatch(/\.so/);
      else expect(lib.error).toMatch(/\.so/);
    }
    expect(report.searched.slice(0, 4)).toEqual(expect.arrayContaining(['ld.so', '/usr/lib/x86_64-linux-gnu']));
  });

  it.skipIf(report.libraries.driver.loaded)('says libcuda.so.1 is not found, with the places searched', () => {
    expect(report.libraries.driver.error).toMatch(/^libcuda\.so\.1 not found \(searched: .*ld\.so.*\/usr\/local\/cuda\/lib64.*\)$/);
    expect(report.gpuAvailable).toBe(false);
    expect(report.devices).toEqual([]);
    expect(report.reason).toBe(report.libraries.driver.error);
  });

  it.skipIf(report.gpuAvailable)('throws NoGpuError with the reason on a CUDA alloc', () => {
    const cuda = getBackend('cuda');
    expect(() => cuda.alloc('f32', 16)).toThrow(NoGpuError);
    expect(() => cuda.alloc('f32', 16)).toThrow(report.reason!);
    expect(() => tensor([1, 2, 3], [3], { backend: cuda })).toThrow(NoGpuError);
    expect(() => cuda.synchronize()).toThrow(NoGpuError);
  });
});

describe('python site-packages discovery', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'align-sp-'));
    for (const p of ['nvidia/cu13/lib', 'nvidia/nccl/lib', 'nvidia/cublas/lib', 'nvidia/empty']) mkdirSync(path.join(dir, p), { recursive: true });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('finds nvidia/<pkg>/lib folders, cu13 first', () => {
    expect(nvidiaLibDirs([dir])).toEqual(['cu13', 'cublas', 'nccl'].map((p) => path.join(dir, 'nvidia', p, 'lib')));
  });

  it('looks at PYTHONPATH entries first', () => {
    expect(pythonSitePackages({ PYTHONPATH: `${dir}:/nonexistent` })[0]).toBe(dir);
  });
});

interface ChildResult {
  probe: CudaProbe;
  allocError: { name: string; message: string } | null;
}

/** Runs fixtures/fake-cuda/probe-child.ts with ALIGN_CUDA_LIBS=libDir. */
function probeInChild(libDir: string): ChildResult {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(fixture, 'probe-child.ts')], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, ALIGN_CUDA_LIBS: libDir },
  });
  if (r.status !== 0) throw new Error(`probe child failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as ChildResult;
}

describe.skipIf(!addonBuilt || !hasCc)('a fake libcuda.so.1 through ALIGN_CUDA_LIBS', () => {
  let dir = '';
  const build = (sub: string, ...flags: string[]): string => {
    const out = path.join(dir, sub);
    mkdirSync(out, { recursive: true });
    const cc = spawnSync('cc', ['-shared', '-fPIC', ...flags, '-o', path.join(out, 'libcuda.so.1'), path.join(fixture, 'fake_cuda.c')], { encoding: 'utf8' });
    if (cc.status !== 0) throw new Error(`cc failed: ${cc.stderr}`);
    return out;
  };
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'align-fake-cuda-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is loaded as the driver: version 12040, 0 devices, no GPU; a CUDA alloc throws NoGpuError', () => {
    const lib = build('ok');
    const { probe: p, allocError } = probeInChild(lib);
    expect(p.libraries.driver).toEqual({ loaded: true, path: path.join(lib, 'libcuda.so.1'), error: null });
    expect(p.searched[0]).toBe(lib);
    expect(p.driverVersion).toBe(12040);
    expect(p.deviceCount).toBe(0);
    expect(p.devices).toEqual([]);
    expect(p.gpuAvailable).toBe(false);
    expect(p.reason).toBe('CUDA driver reports 0 devices');
    expect(allocError).toEqual({ name: 'NoGpuError', message: 'CUDA driver reports 0 devices' });
  });

  it('counts a library with a missing symbol as not loaded, naming the symbol', () => {
    const lib = build('incomplete', '-DFAKE_CUDA_OMIT_LAUNCH');
    const { probe: p, allocError } = probeInChild(lib);
    expect(p.libraries.driver.loaded).toBe(false);
    expect(p.libraries.driver.error).toBe(`libcuda.so.1 could not be loaded: ${path.join(lib, 'libcuda.so.1')}: missing symbol cuLaunchKernel`);
    expect(p.gpuAvailable).toBe(false);
    expect(allocError?.name).toBe('NoGpuError');
    expect(allocError?.message).toContain('missing symbol cuLaunchKernel');
  });
});
