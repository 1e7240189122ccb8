/**
 * CUDA kernel modules: the sources in kernels/cuda/*.cu compiled by NVRTC for the GPU's
 * architecture, cached on disk, loaded into the context, and their functions looked up by name.
 *
 * Cache: `<ALIGN_CUDA_CACHE or .tools/cuda-cache>/<module>-sm<XY>-<hash>.cubin`, the hash being
 * sha256 of common.cuh + the module source + the target + the driver and NVRTC versions + the
 * options, so a changed kernel, GPU, driver or compiler never reuses a stale binary. Writes go
 * through a temporary file and a rename, so concurrent processes never read half a cubin.
 * Kernel sources come from ALIGN_CUDA_KERNELS when set (the device bundle), else kernels/cuda/.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import type { CudaAddon } from './cuda-probe.js';
import { cudaCall } from './cuda-probe.js';
import { CudaError } from './errors.js';

export const COMMON_HEADER = 'common.cuh';

export function kernelSourceDir(): string {
  return process.env.ALIGN_CUDA_KERNELS ?? fileURLToPath(new URL('./cuda/', import.meta.url));
}

export function kernelCacheDir(): string {
  return process.env.ALIGN_CUDA_CACHE ?? fileURLToPath(new URL('../.tools/cuda-cache/', import.meta.url));
}

/** NVRTC options for a target such as 'sm_90'. No fast math: NaN and Inf must propagate as in the reference. */
export function nvrtcOptions(arch: string): string[] {
  return [`--gpu-architecture=${arch}`, '-std=c++17'];
}

/** Compile one module's source to a cubin with NVRTC (no GPU needed); CudaError with the compiler log on failure. */
export function compileModule(addon: CudaAddon, module: string, arch: string, dir = kernelSourceDir()): Uint8Array {
  const source = readFileSync(path.join(dir, `${module}.cu`), 'utf8');
  const common = readFileSync(path.join(dir, COMMON_HEADER), 'utf8');
  const r = cudaCall(() => addon.cudaCompile(source, `${module}.cu`, nvrtcOptions(arch), [COMMON_HEADER], [common]));
  if (!r.cubin) throw new CudaError(`NVRTC could not compile kernels/cuda/${module}.cu for ${arch}: ${r.error ?? 'no cubin'}\n${r.log}`);
  return r.cubin;
}

export class KernelModules {
  private readonly modules = new Map<string, number>();
  private readonly functions = new Map<string, number>();

  constructor(
    private readonly addon: CudaAddon,
    /** 'sm_90' */
    readonly arch: string,
    private readonly versionTag: string,
    private readonly maxShared: number,
  ) {}

  /** The function id of `name` in kernels/cuda/<module>.cu, compiling and loading the module on first use. */
  fn(module: string, name: string): number {
    const key = `${module}/${name}`;
    let id = this.functions.get(key);
    if (id === undefined) {
      const m = this.module(module);
      // Attention kernels may need more than 48 KiB of dynamic shared memory: opt in to the device maximum.
      const shared = module === 'attention' ? this.maxShared : 0;
      id = cudaCall(() => this.addon.cudaGetFunction(m, name, shared));
      this.functions.set(key, id);
    }
    return id;
  }

  private module(module: string): number {
    let id = this.modules.get(module);
    if (id === undefined) {
      const image = this.cubin(module);
      id = cudaCall(() => this.addon.cudaLoadModule(image));
      this.modules.set(module, id);
    }
    return id;
  }

  private cubin(module: string): Uint8Array {
    const dir = kernelSourceDir();
    const hash = createHash('sha256');
    for (const part of [readFileSync(path.join(dir, COMMON_HEADER)), readFileSync(path.join(dir, `${module}.cu`))]) hash.update(part);
    hash.update(`${this.arch}|${this.versionTag}|${nvrtcOptions(this.arch).join(' ')}`);
    const cacheDir = kernelCacheDir();
    const file = path.join(cacheDir, `${module}-${this.arch}-${hash.digest('hex').slice(0, 24)}.cubin`);
    if (existsSync(file)) return new Uint8Array(readFileSync(file));
    const cubin = compileModule(this.addon, module, this.arch, dir);
    try {
      mkdirSync(cacheDir, { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, cubin);
      renameSync(tmp, file);
    } catch {
      // A read-only cache only costs a recompile next time.
    }
    return cubin;
  }
}
