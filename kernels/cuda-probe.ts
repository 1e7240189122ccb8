/**
 * The CUDA half of the addon as TypeScript sees it: where the CUDA libraries may be, `probe()`,
 * and typed access to the addon's `cuda*` functions (kernels/native/src/cuda/bind_cuda.cc).
 *
 * Library search (the addon does the loading, once per process; see loader.h):
 *   ALIGN_CUDA_LIBS dirs → the loader path (bare soname) → /usr/lib/x86_64-linux-gnu,
 *   /usr/local/nvidia/lib64, /usr/local/cuda/lib64 → the `nvidia/<pkg>/lib` folders (`nvidia/cu13/lib`
 *   for CUDA 13 wheels, `nvidia/cublas/lib`, `nvidia/nccl/lib`, … for CUDA 12) of every Python
 *   site-packages found below. They are found by looking at the usual places, not by running
 *   Python: PYTHONPATH, VIRTUAL_ENV, CONDA_PREFIX, /usr(/local)/lib/python3*, ~/.local,
 *   /opt/conda, pyenv versions, and this repository's .tools/<venv> folders.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import type { MemoryStats } from './backend.js';
import { NoGpuError, fromNativeError } from './errors.js';

export interface CudaLibraryReport {
  loaded: boolean;
  /** The file that was loaded. */
  path: string | null;
  /** Why it was not loaded: not found (with the directories searched), a dlopen error, or a missing symbol. */
  error: string | null;
}

export interface CudaDeviceReport {
  index: number;
  name: string;
  /** "9.0" for an H100. */
  computeCapability: string;
  totalMemory: number;
  multiprocessors: number;
}

export type CudaLibraryName = 'driver' | 'runtime' | 'cublasLt' | 'nvrtc' | 'nccl';

export interface CudaProbe {
  libraries: Record<CudaLibraryName, CudaLibraryReport>;
  /** Every location searched, in order ("ld.so" = the dynamic loader's own path). */
  searched: string[];
  /** cuDriverGetVersion, e.g. 12040 for CUDA 12.4. */
  driverVersion: number | null;
  runtimeVersion: number | null;
  nvrtcVersion: string | null;
  cublasLtVersion: number | null;
  ncclVersion: number | null;
  deviceCount: number | null;
  devices: CudaDeviceReport[];
  /** A GPU the driver can use (the backend also needs NVRTC and cuBLASLt; see `libraries`). */
  gpuAvailable: boolean;
  /** Why there is no usable GPU, when there is none. */
  reason: string | null;
}

export interface CudaDeviceInfo {
  name: string;
  major: number;
  minor: number;
  totalMemory: number;
  multiprocessors: number;
  maxSharedOptin: number;
  driverVersion: number;
  /** Device address of the int32[4] error word kernels report bad indices in. */
  errorWord: number;
}

export interface CudaCompileResult {
  cubin: Uint8Array | null;
  log: string;
  error?: string;
}

export interface CudaMemoryStats extends MemoryStats {
  cachedBytes: number;
  peakBytes: number;
  /** cuMemAlloc calls (cache misses). */
  deviceAllocs: number;
  cacheHits: number;
}

/** Dtype codes shared with bind_cuda.cc. */
export const CUDA_HOST_TYPES = { f32: 0, bf16: 1, i32: 2 } as const;

/** The addon's CUDA exports. Pointers are device addresses in plain numbers. */
export interface CudaAddon {
  cudaProbe(extraDirs: string[]): CudaProbe;
  cudaInit(): CudaDeviceInfo;
  cudaAlloc(bytes: number): number;
  cudaFree(ptr: number): void;
  cudaStats(): CudaMemoryStats;
  cudaEmptyCache(): void;
  cudaMemInfo(): { free: number; total: number };
  cudaWrite(ptr: number, data: Float32Array | Int32Array | Uint16Array, dtype: number): void;
  cudaCopy(dst: number, src: number, bytes: number): void;
  cudaZero(ptr: number, bytes: number): void;
  cudaReadSync(ptr: number, numel: number, dtype: number): Float32Array | Int32Array;
  cudaRead(ptr: number, numel: number, dtype: number): Promise<Float32Array | Int32Array>;
  cudaSynchronize(): void;
  cudaCompile(source: string, name: string, options: string[], headerNames: string[], headerSources: string[]): CudaCompileResult;
  cudaLoadModule(image: Uint8Array): number;
  cudaGetFunction(module: number, name: string, maxDynamicShared: number): number;
  cudaArgBuffer(buffer: Uint8Array): void;
  cudaLaunch(fn: number, gx: number, gy: number, gz: number, bx: number, by: number, bz: number, sharedBytes: number, argBytes: number): void;
  /** NCCL (kernels/distributed/nccl.ts). */
  ncclUniqueId(): Uint8Array;
  ncclGroupOpen(id: Uint8Array, rank: number, world: number, timeoutMs: number): Promise<number>;
  ncclGroupClose(group: number): void;
  ncclCollective(group: number, kind: string, sendPtr: number, recvPtr: number, count: number, dtype: number, arg: string | number): Promise<number>;
  ncclSendRecv(group: number, sendPtr: number, sendCount: number, dst: number, recvPtr: number, recvCount: number, src: number, dtype: number): Promise<number>;
  cudaMatmul(
    a: number, b: number, out: number, inType: number, outType: number, batch: number, M: number, N: number, K: number,
    transA: boolean, transB: boolean, strideA: number, strideB: number,
  ): void;
}

const ADDON_PATH = fileURLToPath(new URL('./native/build/Release/aligner_cpu.node', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function children(dir: string, pattern: RegExp): string[] {
  try {
    return readdirSync(dir).filter((n) => pattern.test(n)).sort().map((n) => path.join(dir, n));
  } catch {
    return [];
  }
}

/** site-packages folders under a Python prefix (prefix/lib/python3.*\/{site,dist}-packages). */
function sitePackagesOf(prefix: string): string[] {
  return children(path.join(prefix, 'lib'), /^python3(\.\d+)?$/).flatMap((lib) =>
    ['site-packages', 'dist-packages'].map((s) => path.join(lib, s)).filter(isDir),
  );
}

/** Every site-packages (or PYTHONPATH entry) worth looking into for nvidia/*\/lib, in priority order. */
export function pythonSitePackages(env: NodeJS.ProcessEnv = process.env): string[] {
  const home = os.homedir();
  const roots: string[] = [];
  for (const p of (env.PYTHONPATH ?? '').split(':')) if (p) roots.push(p);
  if (env.VIRTUAL_ENV) roots.push(...sitePackagesOf(env.VIRTUAL_ENV));
  if (env.CONDA_PREFIX) roots.push(...sitePackagesOf(env.CONDA_PREFIX));
  for (const prefix of ['/usr/local', '/usr', '/opt/conda', '/opt/venv', path.join(home, '.local')]) roots.push(...sitePackagesOf(prefix));
  roots.push('/usr/lib/python3/dist-packages');
  for (const v of children(path.join(home, '.pyenv', 'versions'), /./)) roots.push(...sitePackagesOf(v));
  // The project's own venvs (the benchmark venv carries PyTorch's CUDA wheels).
  for (const v of children(path.join(REPO_ROOT, '.tools'), /venv$/)) roots.push(...sitePackagesOf(v));
  return [...new Set(roots)].filter(isDir);
}

/** The `nvidia/<pkg>/lib` folders of the given site-packages, cu13 first within each. */
export function nvidiaLibDirs(sitePackages: readonly string[] = pythonSitePackages()): string[] {
  const dirs: string[] = [];
  for (const sp of sitePackages) {
    const pkgs = children(path.join(sp, 'nvidia'), /^[A-Za-z0-9_.-]+$/);
    const ordered = [...pkgs.filter((p) => path.basename(p) === 'cu13'), ...pkgs.filter((p) => path.basename(p) !== 'cu13')];
    for (const pkg of ordered) if (isDir(path.join(pkg, 'lib'))) dirs.push(path.join(pkg, 'lib'));
  }
  return [...new Set(dirs)];
}

let addon: CudaAddon | null = null;
let addonFailure: string | null = null;

function loadAddon(): CudaAddon | null {
  if (addon || addonFailure) return addon;
  if (!existsSync(ADDON_PATH)) {
    addonFailure = `the native addon is not built (${ADDON_PATH} is missing); run \`npm run build:native\``;
    return null;
  }
  try {
    const loaded = createRequire(import.meta.url)(ADDON_PATH) as Partial<CudaAddon>;
    if (typeof loaded.cudaProbe !== 'function') throw new Error('it has no CUDA entry points (rebuild it)');
    addon = loaded as CudaAddon;
  } catch (err) {
    addonFailure = `the native addon failed to load (${(err as Error).message}); run \`npm run build:native\``;
  }
  return addon;
}

let probed: CudaProbe | null = null;

function emptyProbe(reason: string): CudaProbe {
  const missing: CudaLibraryReport = { loaded: false, path: null, error: reason };
  return {
    libraries: { driver: missing, runtime: missing, cublasLt: missing, nvrtc: missing, nccl: missing },
    searched: [], driverVersion: null, runtimeVersion: null, nvrtcVersion: null, cublasLtVersion: null, ncclVersion: null,
    deviceCount: null, devices: [], gpuAvailable: false, reason,
  };
}

/**
 * What CUDA this process can use: each library (loaded from where, or why not), the driver
 * version, the devices. Never throws. The first call loads the libraries for the whole process.
 */
export function probe(): CudaProbe {
  if (probed) return probed;
  const a = loadAddon();
  if (!a) return (probed = emptyProbe(addonFailure!));
  try {
    probed = a.cudaProbe(nvidiaLibDirs());
  } catch (err) {
    probed = emptyProbe(`probe failed: ${(err as Error).message}`);
  }
  return probed;
}

/** The addon with its CUDA libraries loaded; NoGpuError (naming what is missing) when the GPU is unusable. */
export function cudaAddon(): CudaAddon {
  const report = probe();
  if (!addon) throw new NoGpuError(report.reason ?? 'the native addon is not available');
  return addon;
}

/** Runs an addon call, converting its errors to the typed classes of kernels/errors.ts. */
export function cudaCall<T>(f: () => T): T {
  try {
    return f();
  } catch (err) {
    throw fromNativeError(err);
  }
}
