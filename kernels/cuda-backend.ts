/**
 * The CUDA backend: the Kernels contract (kernels/backend.ts) on one NVIDIA GPU, device 'cuda:0'.
 *
 * - Storages are device blocks from the addon's caching allocator ({dtype, numel, ptr}); ptr is 0
 *   once freed. Everything is queued on ONE stream in call order; reading back (readSync/read/
 *   synchronize) is the only point that waits, and it also surfaces errors kernels found (bad ids
 *   and targets, as IndexError) and asynchronous CUDA failures (CudaError).
 * - Kernels are kernels/cuda/*.cu, compiled by NVRTC for this GPU (kernels/cuda-modules.ts);
 *   matmul is cuBLASLt (fp32 math for f32 — TF32 only with ALIGN_CUDA_TF32=1 — and bf16 inputs
 *   with fp32 accumulation). Arguments are packed into one registered buffer per launch.
 * - Float kernels accept f32 or bf16 storages (all float storages of a call share one dtype;
 *   statistics such as lse, rstd and mean are always f32); the op layer currently hands f32.
 * - adamw calls are deferred and flushed as ONE multi-tensor launch before the next other
 *   operation, so an optimizer step over every parameter is a single kernel.
 * Opt-in: getBackend('cuda') or ALIGN_BACKEND=cuda. Without a usable GPU, the first call that
 * needs one throws NoGpuError saying what is missing.
 */
import type { Backend, HostArray, Kernels, MemoryStats, Storage } from './backend.js';
import { CudaEngine, ptrOf } from './cuda-engine.js';
import type { CudaStorage } from './cuda-engine.js';
import { makeKernels } from './cuda-kernels.js';
import type { CudaAddon, CudaMemoryStats } from './cuda-probe.js';
import { CUDA_HOST_TYPES, cudaAddon, cudaCall, probe } from './cuda-probe.js';
import type { DType } from './dtype.js';
import { bytesPerElement } from './dtype.js';
import { DTypeError, ShapeError, fromNativeError } from './errors.js';

export type { CudaStorage } from './cuda-engine.js';
export { setCudaArgTrace } from './cuda-engine.js';

function hostArray(s: Storage, data: ArrayLike<number>): Float32Array | Int32Array {
  if (s.dtype === 'i32') return data instanceof Int32Array ? data : Int32Array.from(data);
  return data instanceof Float32Array ? data : Float32Array.from(data);
}

/**
 * A CUDA backend over `addon()` (the real addon by default; tests pass a recording stand-in to
 * check argument packing and launch shapes without a GPU). The GPU is touched on first use, so
 * that getBackend('cuda') itself never fails.
 */
export function cudaBackendWith(addon: () => CudaAddon): Backend {
  let engine: CudaEngine | null = null;
  let kernels: Kernels | null = null;
  const eng = (): CudaEngine => (engine ??= new CudaEngine(addon()));
  const code = (d: DType): number => {
    const c = (CUDA_HOST_TYPES as Record<string, number | undefined>)[d];
    if (c === undefined) throw new DTypeError(`cuda backend: ${d} storage is not supported (f32, bf16, i32 only)`);
    return c;
  };
  const backend: Backend = {
    name: 'cuda',
    device: 'cuda:0',
    dtypes: new Set<DType>(['f32', 'bf16', 'i32']),
    alloc(dtype: DType, numel: number): Storage {
      code(dtype);
      if (!Number.isInteger(numel) || numel < 0) throw new ShapeError(`alloc: bad element count ${numel}`);
      const ptr = eng().alloc(numel * bytesPerElement(dtype));
      const s: CudaStorage = { dtype, numel, ptr };
      return s;
    },
    free(s: Storage): void {
      const st = s as CudaStorage;
      if (!st.ptr) return;
      eng().free(st.ptr);
      st.ptr = 0;
    },
    write(s: Storage, data: ArrayLike<number>): void {
      if (data.length !== s.numel) throw new ShapeError(`write: data has ${data.length} elements, the storage has ${s.numel}`);
      const e = eng();
      e.flush();
      cudaCall(() => e.addon.cudaWrite(ptrOf(s), hostArray(s, data), code(s.dtype)));
    },
    readSync(s: Storage): HostArray {
      const e = eng();
      e.flush();
      return cudaCall(() => e.addon.cudaReadSync(s.numel > 0 ? ptrOf(s) : 0, s.numel, code(s.dtype)));
    },
    read(s: Storage): Promise<HostArray> {
      try {
        const e = eng();
        e.flush();
        return e.addon.cudaRead(s.numel > 0 ? ptrOf(s) : 0, s.numel, code(s.dtype)).catch((err: unknown) => {
          throw fromNativeError(err);
        });
      } catch (err) {
        return Promise.reject(fromNativeError(err));
      }
    },
    get kernels(): Partial<Kernels> {
      return (kernels ??= makeKernels(eng()));
    },
    unsupported: {},
    stats(): MemoryStats {
      return cudaCall(() => eng().addon.cudaStats()) as CudaMemoryStats;
    },
    synchronize(): void {
      const e = eng();
      e.flush();
      cudaCall(() => e.addon.cudaSynchronize());
    },
  };
  return backend;
}

let backend: Backend | null = null;

/** The CUDA backend (device 0). Creating it touches nothing; its first call initialises the GPU or throws NoGpuError. */
export function cudaBackend(): Backend {
  return (backend ??= cudaBackendWith(cudaAddon));
}

/** Whether this machine can run the CUDA backend, and if not, why (driver, device, NVRTC, cuBLASLt). */
export function cudaAvailable(): { ok: true } | { ok: false; reason: string } {
  const p = probe();
  if (!p.gpuAvailable) return { ok: false, reason: p.reason ?? 'no usable GPU' };
  for (const lib of ['nvrtc', 'cublasLt'] as const) {
    const r = p.libraries[lib];
    if (!r.loaded) return { ok: false, reason: `${lib} is not loaded: ${r.error}` };
  }
  return { ok: true };
}

/** The caching allocator's counters, beyond MemoryStats: peak bytes, cuMemAlloc calls, cache hits. */
export function cudaMemoryStats(): CudaMemoryStats {
  return cudaCall(() => cudaAddon().cudaStats());
}

/** Return the allocator's cached blocks to the driver (waits for queued work first). */
export function cudaEmptyCache(): void {
  cudaCall(() => cudaAddon().cudaEmptyCache());
}

