/**
 * The machinery under the CUDA kernels (kernels/cuda-kernels.ts): storages as device pointers,
 * the argument packer, launches through the addon, and the deferred multi-tensor AdamW.
 *
 * Launch arguments are packed as the C ABI lays out a kernel's parameters (each at its natural
 * alignment) into ONE buffer registered with the addon once, then passed to cuLaunchKernel as
 * CU_LAUNCH_PARAM_BUFFER_POINTER: a launch crosses into native code with numbers only.
 * test/kernels/cuda-args.test.ts checks every packed layout against the kernels' PTX.
 */
import type { Storage } from './backend.js';
import { KernelModules } from './cuda-modules.js';
import type { CudaAddon, CudaDeviceInfo } from './cuda-probe.js';
import { CUDA_HOST_TYPES, cudaCall, probe } from './cuda-probe.js';
import type { DType } from './dtype.js';
import { roundToBf16 } from './dtype.js';
import { DTypeError, NativeError, ShapeError } from './errors.js';

export interface CudaStorage extends Storage {
  ptr: number;
}

export type FloatName = 'f32' | 'bf16';
export const ATTN_ROWS = 8; // ROWS in attention.cu
export const MAX_GRID = 1 << 20; // grid-stride kernels cap their grid here
const ADAM_RECORD_BYTES = 64; // sizeof(AdamRecord) in optim.cu
export const CLIP_BLOCKS = 64; // CLIP_BLOCKS in optim.cu

type ArgTrace = (fields: readonly (readonly [offset: number, size: number])[]) => void;
let argTrace: ArgTrace | null = null;

/** Tests only: receive the [offset, size] of every field packed for each launch (null turns it off). */
export function setCudaArgTrace(trace: ArgTrace | null): void {
  argTrace = trace;
}

/** Packs kernel parameters as the C ABI lays them out: each at its natural alignment. */
class ArgPacker {
  readonly bytes = new Uint8Array(4096);
  private readonly view = new DataView(this.bytes.buffer);
  size = 0;
  /** [offset, size] of each field since reset, kept only while a trace is installed. */
  fields: [number, number][] = [];

  reset(): this {
    this.size = 0;
    if (argTrace) this.fields = [];
    return this;
  }
  private align(n: number): void {
    this.size = Math.ceil(this.size / n) * n;
    if (argTrace) this.fields.push([this.size, n]);
  }
  ptr(p: number): this {
    return this.i64(p);
  }
  i64(v: number): this {
    this.align(8);
    this.view.setUint32(this.size, v % 0x100000000, true);
    this.view.setInt32(this.size + 4, Math.floor(v / 0x100000000), true);
    this.size += 8;
    return this;
  }
  i32(v: number): this {
    this.align(4);
    this.view.setInt32(this.size, v, true);
    this.size += 4;
    return this;
  }
  u32(v: number): this {
    this.align(4);
    this.view.setUint32(this.size, v >>> 0, true);
    this.size += 4;
    return this;
  }
  f32(v: number): this {
    this.align(4);
    this.view.setFloat32(this.size, v, true);
    this.size += 4;
    return this;
  }
  f64(v: number): this {
    this.align(8);
    this.view.setFloat64(this.size, v, true);
    this.size += 8;
    return this;
  }
  /** Start or end a by-value struct whose alignment is `n`. */
  struct(n: number): this {
    this.size = Math.ceil(this.size / n) * n;
    return this;
  }
}

export const ptrOf = (s: Storage): number => {
  const p = (s as CudaStorage).ptr;
  if (!p) throw new NativeError('cuda: storage used after free');
  return p;
};

export function need(op: string, what: string, s: Storage, n: number): void {
  if (s.numel < n) throw new ShapeError(`${op}: ${what} has ${s.numel} elements, needs ${n}`);
}

/** The one float dtype shared by `storages`, as a kernel-name suffix. */
export function floatType(op: string, ...storages: Storage[]): FloatName {
  const t = storages[0]!.dtype;
  if ((t !== 'f32' && t !== 'bf16') || storages.some((s) => s.dtype !== t)) {
    throw new DTypeError(`${op}: float storages must all be f32 or all bf16 on cuda, got ${storages.map((s) => s.dtype).join(', ')}`);
  }
  return t;
}

export function expectDType(op: string, what: string, s: Storage, dtype: DType): void {
  if (s.dtype !== dtype) throw new DTypeError(`${op}: ${what} must be ${dtype}, got ${s.dtype}`);
}

export const grid1 = (n: number, block = 256): number => Math.max(1, Math.min(Math.ceil(n / block), MAX_GRID));
/** Threads per block for a row of n elements: a multiple of 32, about 4 elements per thread, ≤ 1024. */
export const rowBlock = (n: number): number => Math.min(1024, Math.max(32, 2 ** Math.ceil(Math.log2(Math.max(1, Math.ceil(n / 4))))));
export const nextPow2 = (n: number): number => 2 ** Math.ceil(Math.log2(Math.max(1, n)));

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);
export function bitsOf(dtype: DType, value: number): number {
  if (dtype === 'i32') return Number.isFinite(value) ? Math.trunc(value) | 0 : 0;
  f32Scratch[0] = dtype === 'bf16' ? roundToBf16(value) : value;
  return dtype === 'bf16' ? u32Scratch[0]! >>> 16 : u32Scratch[0]!;
}

interface AdamCall { p: number; g: number; m: number; v: number; n: number; decay: number; stepSize: number; bc2Sqrt: number; beta1: number; beta2: number; eps: number }

export class CudaEngine {
  readonly args = new ArgPacker();
  readonly info: CudaDeviceInfo;
  readonly modules: KernelModules;
  private pendingAdam: AdamCall[] = [];

  constructor(readonly addon: CudaAddon) {
    this.info = cudaCall(() => addon.cudaInit());
    cudaCall(() => addon.cudaArgBuffer(this.args.bytes));
    const p = probe();
    const arch = `sm_${this.info.major}${this.info.minor}`;
    this.modules = new KernelModules(addon, arch, `driver ${this.info.driverVersion} nvrtc ${p.nvrtcVersion}`, this.info.maxSharedOptin);
  }

  get err(): number {
    return this.info.errorWord;
  }

  alloc(bytes: number): number {
    this.flush();
    return cudaCall(() => this.addon.cudaAlloc(Math.max(bytes, 1)));
  }

  free(ptr: number): void {
    this.flush();
    cudaCall(() => this.addon.cudaFree(ptr));
  }

  /** Launch kernels/cuda/<module>.cu's `name` with the parameters packed in `args`. */
  launch(module: string, name: string, gx: number, gy: number, block: number, shared = 0): void {
    this.flush();
    const fn = this.modules.fn(module, name);
    argTrace?.(this.args.fields);
    cudaCall(() => this.addon.cudaLaunch(fn, gx, gy, 1, block, 1, 1, shared, this.args.size));
  }

  /** Upload raw bytes to a new device block (records for the multi-tensor kernels). */
  upload(bytes: ArrayBuffer): number {
    const ptr = this.alloc(bytes.byteLength);
    cudaCall(() => this.addon.cudaWrite(ptr, new Int32Array(bytes), CUDA_HOST_TYPES.i32));
    return ptr;
  }

  deferAdam(call: AdamCall): void {
    this.pendingAdam.push(call);
  }

  /**
   * Issue the deferred AdamW updates as one multi-tensor launch (grid.y = parameter). Callers may
   * already have packed their own launch's arguments (launch() flushes first), so those are saved
   * and restored around the AdamW launch, which shares the one registered argument buffer.
   */
  flush(): void {
    if (this.pendingAdam.length === 0) return;
    const calls = this.pendingAdam;
    this.pendingAdam = [];
    const savedSize = this.args.size, saved = this.args.bytes.slice(0, savedSize), savedFields = this.args.fields;
    for (let start = 0; start < calls.length; start += 65535) {
      const part = calls.slice(start, start + 65535);
      const buf = new ArrayBuffer(part.length * ADAM_RECORD_BYTES);
      const view = new DataView(buf);
      let maxN = 0;
      part.forEach((c, i) => {
        const o = i * ADAM_RECORD_BYTES;
        [c.p, c.g, c.m, c.v, c.n].forEach((v, k) => {
          view.setUint32(o + 8 * k, v % 0x100000000, true);
          view.setUint32(o + 8 * k + 4, Math.floor(v / 0x100000000), true);
        });
        [c.decay, c.stepSize, c.bc2Sqrt, c.beta1, c.beta2, c.eps].forEach((v, k) => view.setFloat32(o + 40 + 4 * k, v, true));
        maxN = Math.max(maxN, c.n);
      });
      const records = this.upload(buf);
      this.args.reset().ptr(records);
      const fn = this.modules.fn('optim', 'adamwMulti');
      argTrace?.(this.args.fields);
      cudaCall(() => this.addon.cudaLaunch(fn, Math.max(1, Math.min(Math.ceil(maxN / 1024), 4096)), part.length, 1, 256, 1, 1, 0, this.args.size));
      cudaCall(() => this.addon.cudaFree(records)); // stream-ordered reuse: later work runs after the kernel
    }
    this.args.bytes.set(saved);
    this.args.size = savedSize;
    this.args.fields = savedFields;
  }
}

/** Row-kernel launch: one block per row (grid-stride over rows). */
export function rows(e: CudaEngine, module: string, name: string, nRows: number, n: number): void {
  if (nRows === 0) return;
  e.launch(module, name, Math.min(nRows, MAX_GRID), 1, rowBlock(n));
}

/** Fixed partition of `total` rows into chunks for column sums: enough parallel work, in order. */
export function chunking(total: number, columns: number): { chunks: number; len: number } {
  const want = Math.max(1, Math.min(64, Math.ceil(32768 / Math.max(1, columns)), total));
  const len = Math.max(1, Math.ceil(total / want));
  return { chunks: Math.max(1, Math.ceil(total / len)), len };
}

