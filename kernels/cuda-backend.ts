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
import type { Backend, BinaryKind, HostArray, Kernels, MemoryStats, Storage, UnaryKind } from './backend.js';
import { BINARY_KINDS, UNARY_KINDS } from './backend.js';
import { KernelModules } from './cuda-modules.js';
import type { CudaAddon, CudaDeviceInfo, CudaMemoryStats } from './cuda-probe.js';
import { CUDA_HOST_TYPES, cudaAddon, cudaCall, probe } from './cuda-probe.js';
import type { DType } from './dtype.js';
import { bytesPerElement, roundToBf16 } from './dtype.js';
import { DTypeError, NativeError, ShapeError, fromNativeError } from './errors.js';

export interface CudaStorage extends Storage {
  ptr: number;
}

type FloatName = 'f32' | 'bf16';
const UNARY_CODES = new Map<UnaryKind, number>(UNARY_KINDS.map((k, i) => [k, i]));
const BINARY_CODES = new Map<BinaryKind, number>(BINARY_KINDS.map((k, i) => [k, i]));
const ATTN_ROWS = 8; // ROWS in attention.cu
const MAX_GRID = 1 << 20; // grid-stride kernels cap their grid here
const ADAM_RECORD_BYTES = 64; // sizeof(AdamRecord) in optim.cu
const CLIP_BLOCKS = 64; // CLIP_BLOCKS in optim.cu

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

const ptrOf = (s: Storage): number => {
  const p = (s as CudaStorage).ptr;
  if (!p) throw new NativeError('cuda: storage used after free');
  return p;
};

function need(op: string, what: string, s: Storage, n: number): void {
  if (s.numel < n) throw new ShapeError(`${op}: ${what} has ${s.numel} elements, needs ${n}`);
}

/** The one float dtype shared by `storages`, as a kernel-name suffix. */
function floatType(op: string, ...storages: Storage[]): FloatName {
  const t = storages[0]!.dtype;
  if ((t !== 'f32' && t !== 'bf16') || storages.some((s) => s.dtype !== t)) {
    throw new DTypeError(`${op}: float storages must all be f32 or all bf16 on cuda, got ${storages.map((s) => s.dtype).join(', ')}`);
  }
  return t;
}

function expect(op: string, what: string, s: Storage, dtype: DType): void {
  if (s.dtype !== dtype) throw new DTypeError(`${op}: ${what} must be ${dtype}, got ${s.dtype}`);
}

const grid1 = (n: number, block = 256): number => Math.max(1, Math.min(Math.ceil(n / block), MAX_GRID));
/** Threads per block for a row of n elements: a multiple of 32, about 4 elements per thread, ≤ 1024. */
const rowBlock = (n: number): number => Math.min(1024, Math.max(32, 2 ** Math.ceil(Math.log2(Math.max(1, Math.ceil(n / 4))))));
const nextPow2 = (n: number): number => 2 ** Math.ceil(Math.log2(Math.max(1, n)));

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);
function bitsOf(dtype: DType, value: number): number {
  if (dtype === 'i32') return Number.isFinite(value) ? Math.trunc(value) | 0 : 0;
  f32Scratch[0] = dtype === 'bf16' ? roundToBf16(value) : value;
  return dtype === 'bf16' ? u32Scratch[0]! >>> 16 : u32Scratch[0]!;
}

interface AdamCall { p: number; g: number; m: number; v: number; n: number; decay: number; stepSize: number; bc2Sqrt: number; beta1: number; beta2: number; eps: number }

class CudaEngine {
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
function rows(e: CudaEngine, module: string, name: string, nRows: number, n: number): void {
  if (nRows === 0) return;
  e.launch(module, name, Math.min(nRows, MAX_GRID), 1, rowBlock(n));
}

/** Fixed partition of `total` rows into chunks for column sums: enough parallel work, in order. */
function chunking(total: number, columns: number): { chunks: number; len: number } {
  const want = Math.max(1, Math.min(64, Math.ceil(32768 / Math.max(1, columns)), total));
  const len = Math.max(1, Math.ceil(total / want));
  return { chunks: Math.max(1, Math.ceil(total / len)), len };
}

function makeKernels(e: CudaEngine): Kernels {
  const a = e.args;
  const scratch = (bytes: number): number => e.alloc(bytes);
  const release = (p: number): void => e.free(p);

  /** Sum partial [chunks, m] (f32) into out (float type t), in chunk order. */
  const finishSum = (partial: number, out: number, t: FloatName, m: number, chunks: number): void => {
    a.reset().ptr(partial).ptr(out).i64(m).i64(chunks);
    e.launch('reduce', `reduceSumFinish_${t}`, grid1(m), 1, 256);
  };

  const attnDims = (B: number, Hq: number, Hkv: number, T: number, S: number, D: number, scale: number, causal: boolean, window: number): void => {
    a.struct(8).i64(B).i64(Hq).i64(Hkv).i64(T).i64(S).i64(D).f32(scale).i32(causal ? 1 : 0).i32(window).struct(8);
  };
  const checkAttention = (op: string, q: Storage, k: Storage, v: Storage, mask: Storage | null, B: number, Hq: number, Hkv: number, T: number, S: number, D: number): FloatName => {
    const t = floatType(op, q, k, v);
    if (D > 256) throw new ShapeError(`${op}: head dim ${D} > 256 is not supported on cuda`);
    if (Hkv === 0 || Hq % Hkv !== 0) throw new ShapeError(`${op}: ${Hq} query heads are not a multiple of ${Hkv} kv heads`);
    need(op, 'q', q, B * Hq * T * D);
    need(op, 'k', k, B * Hkv * S * D);
    need(op, 'v', v, B * Hkv * S * D);
    if (mask) {
      expect(op, 'mask', mask, 'f32');
      need(op, 'mask', mask, B * S);
    }
    return t;
  };
  const attnShared = (D: number, extraRows: number, extraTile: number): number => 4 * (2 * 32 * (D + 1) + extraRows * ATTN_ROWS * D + extraTile * 32);

  return {
    fill(out, n, value) {
      need('fill', 'out', out, n);
      if (n === 0) return;
      if (Object.is(value, 0)) {
        e.flush();
        cudaCall(() => e.addon.cudaZero(ptrOf(out), n * bytesPerElement(out.dtype)));
        return;
      }
      a.reset().ptr(ptrOf(out)).i64(n).u32(bitsOf(out.dtype, value));
      e.launch('elementwise', out.dtype === 'bf16' ? 'fill_u16' : 'fill_u32', grid1(n), 1, 256);
    },
    copy(src, dst, n) {
      if (src.dtype !== dst.dtype) throw new DTypeError(`copy: src is ${src.dtype}, dst is ${dst.dtype}`);
      need('copy', 'src', src, n);
      need('copy', 'dst', dst, n);
      e.flush();
      cudaCall(() => e.addon.cudaCopy(ptrOf(dst), ptrOf(src), n * bytesPerElement(src.dtype)));
    },
    cast(src, dst, n) {
      need('cast', 'src', src, n);
      need('cast', 'dst', dst, n);
      if (n === 0) return;
      if (src.dtype === dst.dtype) {
        e.flush();
        cudaCall(() => e.addon.cudaCopy(ptrOf(dst), ptrOf(src), n * bytesPerElement(src.dtype)));
        return;
      }
      a.reset().ptr(ptrOf(src)).ptr(ptrOf(dst)).i64(n);
      e.launch('elementwise', `cast_${src.dtype}_${dst.dtype}`, grid1(n), 1, 256);
    },
    unary(kind, x, out, n) {
      const t = floatType(kind, x, out);
      need(kind, 'x', x, n);
      need(kind, 'out', out, n);
      if (n === 0) return;
      a.reset().i32(UNARY_CODES.get(kind)!).ptr(ptrOf(x)).ptr(ptrOf(out)).i64(n);
      e.launch('elementwise', `unary_${t}`, grid1(n), 1, 256);
    },
    unaryBackward(kind, x, y, g, gx, n) {
      const op = `${kind}.backward`;
      const t = floatType(op, x, y, g, gx);
      for (const [w, s] of [['x', x], ['y', y], ['g', g], ['gx', gx]] as const) need(op, w, s, n);
      if (n === 0) return;
      a.reset().i32(UNARY_CODES.get(kind)!).ptr(ptrOf(x)).ptr(ptrOf(y)).ptr(ptrOf(g)).ptr(ptrOf(gx)).i64(n);
      e.launch('elementwise', `unaryBackward_${t}`, grid1(n), 1, 256);
    },
    affine(x, out, n, scale, shift) {
      const t = floatType('affine', x, out);
      need('affine', 'x', x, n);
      need('affine', 'out', out, n);
      if (n === 0) return;
      a.reset().ptr(ptrOf(x)).ptr(ptrOf(out)).i64(n).f64(scale).f64(shift);
      e.launch('elementwise', `affine_${t}`, grid1(n), 1, 256);
    },
    powScalar(x, out, n, exponent) {
      const t = floatType('powScalar', x, out);
      need('powScalar', 'x', x, n);
      need('powScalar', 'out', out, n);
      if (n === 0) return;
      a.reset().ptr(ptrOf(x)).ptr(ptrOf(out)).i64(n).f64(exponent);
      e.launch('elementwise', `powScalar_${t}`, grid1(n), 1, 256);
    },
    binary(kind, x, y, out, outShape, aStrides, bStrides) {
      const t = floatType(kind, x, y, out);
      const rank = outShape.length;
      if (rank > 8 || aStrides.length !== rank || bStrides.length !== rank) {
        throw new ShapeError(`binary: rank ${rank} with ${aStrides.length}/${bStrides.length} strides (rank ≤ 8)`);
      }
      const n = outShape.reduce((p, d) => p * d, 1);
      if (n === 0) return;
      let aNeed = 1, bNeed = 1, contiguousA = true, contiguousB = true, stride = 1;
      for (let d = rank - 1; d >= 0; d--) {
        aNeed += (outShape[d]! - 1) * aStrides[d]!;
        bNeed += (outShape[d]! - 1) * bStrides[d]!;
        if (outShape[d]! > 1) {
          contiguousA &&= aStrides[d] === stride;
          contiguousB &&= bStrides[d] === stride;
        }
        stride *= outShape[d]!;
      }
      need(kind, 'a', x, aNeed);
      need(kind, 'b', y, bNeed);
      need(kind, 'out', out, n);
      const code = BINARY_CODES.get(kind)!;
      if (contiguousA && contiguousB) {
        a.reset().i32(code).ptr(ptrOf(x)).ptr(ptrOf(y)).ptr(ptrOf(out)).i64(n);
        e.launch('elementwise', `binarySame_${t}`, grid1(n), 1, 256);
        return;
      }
      a.reset().i32(code).ptr(ptrOf(x)).ptr(ptrOf(y)).ptr(ptrOf(out)).i64(n).struct(4).i32(rank);
      for (const list of [outShape, aStrides, bStrides]) for (let d = 0; d < 8; d++) a.i32(list[d] ?? 0);
      e.launch('elementwise', `binary_${t}`, grid1(n), 1, 256);
    },
    reduceSum(x, out, outer, n, inner) {
      const t = floatType('sum', x, out);
      need('sum', 'x', x, outer * n * inner);
      need('sum', 'out', out, outer * inner);
      const m = outer * inner;
      if (m === 0) return;
      if (inner === 1) {
        a.reset().ptr(ptrOf(x)).ptr(ptrOf(out)).i64(outer).i64(n);
        rows(e, 'reduce', `reduceSumRows_${t}`, outer, n);
        return;
      }
      const { chunks, len } = chunking(n, m);
      const partial = scratch(chunks * m * 4);
      a.reset().ptr(ptrOf(x)).ptr(partial).i64(outer).i64(n).i64(inner).i64(len);
      e.launch('reduce', `reduceSumCols_${t}`, grid1(m), chunks, 256);
      finishSum(partial, ptrOf(out), t, m, chunks);
      release(partial);
    },
    reduceMax(x, out, outer, n, inner) {
      const t = floatType('max', x, out);
      need('max', 'x', x, outer * n * inner);
      need('max', 'out', out, outer * inner);
      if (outer * inner === 0) return;
      if (inner === 1) {
        a.reset().ptr(ptrOf(x)).ptr(ptrOf(out)).i64(outer).i64(n);
        rows(e, 'reduce', `reduceMaxRows_${t}`, outer, n);
        return;
      }
      a.reset().ptr(ptrOf(x)).ptr(ptrOf(out)).i64(outer).i64(n).i64(inner);
      e.launch('reduce', `reduceMaxCols_${t}`, grid1(outer * inner), 1, 256);
    },
    reduceMaxBackward(x, y, g, gx, outer, n, inner) {
      const t = floatType('max.backward', x, y, g, gx);
      need('max.backward', 'x', x, outer * n * inner);
      need('max.backward', 'gx', gx, outer * n * inner);
      need('max.backward', 'y', y, outer * inner);
      need('max.backward', 'g', g, outer * inner);
      if (outer * inner === 0 || n === 0) return;
      a.reset().ptr(ptrOf(x)).ptr(ptrOf(y)).ptr(ptrOf(g)).ptr(ptrOf(gx)).i64(outer).i64(n).i64(inner);
      e.launch('reduce', `reduceMaxBackward_${t}`, grid1(outer * inner), 1, 256);
    },
    matmul(x, y, out, batch, M, N, K, transA, transB, strideA, strideB) {
      const tin = floatType('matmul', x, y);
      if (out.dtype !== 'f32' && out.dtype !== 'bf16') throw new DTypeError(`matmul: out must be f32 or bf16, got ${out.dtype}`);
      if (batch > 0 && M > 0 && N > 0) {
        need('matmul', 'out', out, batch * M * N);
        if (K > 0) {
          need('matmul', 'a', x, (batch - 1) * strideA + M * K);
          need('matmul', 'b', y, (batch - 1) * strideB + K * N);
        }
      }
      e.flush();
      const code = (t: string): number => (t === 'bf16' ? 1 : 0);
      cudaCall(() => e.addon.cudaMatmul(ptrOf(x), ptrOf(y), ptrOf(out), code(tin), code(out.dtype), batch, M, N, K, transA, transB, strideA, strideB));
    },
    permute(x, out, shape, perm) {
      const rank = shape.length;
      if (rank > 8 || perm.length !== rank) throw new ShapeError(`permute: rank ${rank} with a perm of ${perm.length} (rank ≤ 8)`);
      if (x.dtype !== out.dtype) throw new DTypeError(`permute: x is ${x.dtype}, out is ${out.dtype}`);
      const n = shape.reduce((p, d) => p * d, 1);
      need('permute', 'x', x, n);
      need('permute', 'out', out, n);
      if (n === 0) return;
      const inStrides = new Array<number>(rank);
      for (let d = rank - 1, s = 1; d >= 0; d--) {
        inStrides[d] = s;
        s *= shape[d]!;
      }
      a.reset().ptr(ptrOf(x)).ptr(ptrOf(out)).i64(n).struct(4).i32(rank);
      for (let d = 0; d < 8; d++) a.i32(d < rank ? shape[perm[d]!]! : 1);
      for (let d = 0; d < 8; d++) a.i32(d < rank ? inStrides[perm[d]!]! : 0);
      e.launch('layout', x.dtype === 'bf16' ? 'permute_u16' : 'permute_u32', grid1(n), 1, 256);
    },
    copyBlock(src, dst, outer, len, inner, srcAxis, srcOffset, dstAxis, dstOffset) {
      if (src.dtype !== dst.dtype) throw new DTypeError(`copyBlock: src is ${src.dtype}, dst is ${dst.dtype}`);
      const total = outer * len * inner;
      if (total === 0) return;
      need('copyBlock', 'src', src, ((outer - 1) * srcAxis + srcOffset + len) * inner);
      need('copyBlock', 'dst', dst, ((outer - 1) * dstAxis + dstOffset + len) * inner);
      a.reset().ptr(ptrOf(src)).ptr(ptrOf(dst)).i64(outer).i64(len).i64(inner).i64(srcAxis).i64(srcOffset).i64(dstAxis).i64(dstOffset);
      e.launch('layout', src.dtype === 'bf16' ? 'copyBlock_u16' : 'copyBlock_u32', grid1(total), 1, 256);
    },
    embedding(weight, ids, out, n, C, V) {
      const t = floatType('embedding', weight, out);
      expect('embedding', 'ids', ids, 'i32');
      need('embedding', 'weight', weight, V * C);
      need('embedding', 'ids', ids, n);
      need('embedding', 'out', out, n * C);
      if (n * C === 0) return;
      a.reset().ptr(ptrOf(weight)).ptr(ptrOf(ids)).ptr(ptrOf(out)).i64(n).i64(C).i64(V).ptr(e.err);
      e.launch('layout', `embedding_${t}`, grid1(n * C), 1, 256);
    },
    embeddingBackward(g, ids, gw, n, C, V) {
      const t = floatType('embeddingBackward', g, gw);
      expect('embeddingBackward', 'ids', ids, 'i32');
      need('embeddingBackward', 'g', g, n * C);
      need('embeddingBackward', 'ids', ids, n);
      need('embeddingBackward', 'gw', gw, V * C);
      if (V * C === 0) return;
      const m = nextPow2(n);
      const keys = scratch(m * 8), runs = scratch(2 * V * 4);
      a.reset().ptr(ptrOf(ids)).ptr(keys).i64(n).i64(m).i64(V).ptr(e.err);
      e.launch('layout', 'embeddingBackwardKeys', grid1(m), 1, 256);
      for (let size = 2; size <= m; size *= 2) {
        for (let stride = size >> 1; stride > 0; stride >>= 1) {
          a.reset().ptr(keys).i64(m).i64(size).i64(stride);
          e.launch('layout', 'embeddingBackwardSortPass', grid1(m), 1, 256);
        }
      }
      cudaCall(() => e.addon.cudaZero(runs, 2 * V * 4));
      a.reset().ptr(keys).ptr(runs).ptr(runs + V * 4).i64(Math.max(n, 1)).i64(m);
      if (n > 0) e.launch('layout', 'embeddingBackwardRuns', grid1(m), 1, 256);
      a.reset().ptr(ptrOf(g)).ptr(keys).ptr(runs).ptr(runs + V * 4).ptr(ptrOf(gw)).i64(Math.max(n, 1)).i64(C).i64(V);
      e.launch('layout', `embeddingBackward_${t}`, grid1(V * C), 1, 256);
      release(keys);
      release(runs);
    },
    softmax(x, out, nRows, n) {
      const t = floatType('softmax', x, out);
      need('softmax', 'x', x, nRows * n);
      need('softmax', 'out', out, nRows * n);
      a.reset().ptr(ptrOf(x)).ptr(ptrOf(out)).i64(nRows).i64(n);
      if (n > 0) rows(e, 'softmax', `softmax_${t}`, nRows, n);
    },
    softmaxBackward(y, g, gx, nRows, n) {
      const t = floatType('softmax.backward', y, g, gx);
      for (const [w, s] of [['y', y], ['g', g], ['gx', gx]] as const) need('softmax.backward', w, s, nRows * n);
      a.reset().ptr(ptrOf(y)).ptr(ptrOf(g)).ptr(ptrOf(gx)).i64(nRows).i64(n);
      if (n > 0) rows(e, 'softmax', `softmaxBackward_${t}`, nRows, n);
    },
    logSoftmax(x, out, nRows, n) {
      const t = floatType('logSoftmax', x, out);
      need('logSoftmax', 'x', x, nRows * n);
      need('logSoftmax', 'out', out, nRows * n);
      a.reset().ptr(ptrOf(x)).ptr(ptrOf(out)).i64(nRows).i64(n);
      if (n > 0) rows(e, 'softmax', `logSoftmax_${t}`, nRows, n);
    },
    logSoftmaxBackward(y, g, gx, nRows, n) {
      const t = floatType('logSoftmax.backward', y, g, gx);
      for (const [w, s] of [['y', y], ['g', g], ['gx', gx]] as const) need('logSoftmax.backward', w, s, nRows * n);
      a.reset().ptr(ptrOf(y)).ptr(ptrOf(g)).ptr(ptrOf(gx)).i64(nRows).i64(n);
      if (n > 0) rows(e, 'softmax', `logSoftmaxBackward_${t}`, nRows, n);
    },
    tokenLogprobs(logits, targets, out, lse, nRows, V, ignoreIndex) {
      const t = floatType('tokenLogprobs', logits);
      expect('tokenLogprobs', 'targets', targets, 'i32');
      expect('tokenLogprobs', 'out', out, 'f32');
      expect('tokenLogprobs', 'lse', lse, 'f32');
      need('tokenLogprobs', 'logits', logits, nRows * V);
      for (const [w, s] of [['targets', targets], ['out', out], ['lse', lse]] as const) need('tokenLogprobs', w, s, nRows);
      a.reset().ptr(ptrOf(logits)).ptr(ptrOf(targets)).ptr(ptrOf(out)).ptr(ptrOf(lse)).i64(nRows).i64(V).i32(ignoreIndex).ptr(e.err);
      rows(e, 'softmax', `tokenLogprobs_${t}`, nRows, V);
    },
    tokenLogprobsBackward(logits, targets, lse, g, gx, nRows, V, ignoreIndex) {
      const op = 'tokenLogprobs.backward';
      const t = floatType(op, logits, gx);
      expect(op, 'targets', targets, 'i32');
      expect(op, 'lse', lse, 'f32');
      expect(op, 'g', g, 'f32');
      need(op, 'logits', logits, nRows * V);
      need(op, 'gx', gx, nRows * V);
      for (const [w, s] of [['targets', targets], ['lse', lse], ['g', g]] as const) need(op, w, s, nRows);
      a.reset().ptr(ptrOf(logits)).ptr(ptrOf(targets)).ptr(ptrOf(lse)).ptr(ptrOf(g)).ptr(ptrOf(gx)).i64(nRows).i64(V).i32(ignoreIndex).ptr(e.err);
      rows(e, 'softmax', `tokenLogprobsBackward_${t}`, nRows, V);
    },
    rmsNorm(x, w, out, rstd, nRows, n, eps) {
      const t = floatType('rmsNorm', x, w, out);
      expect('rmsNorm', 'rstd', rstd, 'f32');
      need('rmsNorm', 'x', x, nRows * n);
      need('rmsNorm', 'w', w, n);
      need('rmsNorm', 'out', out, nRows * n);
      need('rmsNorm', 'rstd', rstd, nRows);
      a.reset().ptr(ptrOf(x)).ptr(ptrOf(w)).ptr(ptrOf(out)).ptr(ptrOf(rstd)).i64(nRows).i64(n).f32(eps);
      rows(e, 'norm', `rmsNorm_${t}`, nRows, n);
    },
    rmsNormBackward(x, w, rstd, g, gx, gw, nRows, n) {
      const op = 'rmsNorm.backward';
      const t = floatType(op, x, w, g, gx, gw);
      expect(op, 'rstd', rstd, 'f32');
      for (const [wh, s] of [['x', x], ['g', g], ['gx', gx]] as const) need(op, wh, s, nRows * n);
      need(op, 'w', w, n);
      need(op, 'gw', gw, n);
      need(op, 'rstd', rstd, nRows);
      if (n === 0) return;
      a.reset().ptr(ptrOf(x)).ptr(ptrOf(w)).ptr(ptrOf(rstd)).ptr(ptrOf(g)).ptr(ptrOf(gx)).i64(nRows).i64(n);
      rows(e, 'norm', `rmsNormBackward_${t}`, nRows, n);
      const { chunks, len } = chunking(nRows, n);
      const partial = scratch(chunks * n * 4);
      a.reset().ptr(ptrOf(x)).ptr(ptrOf(rstd)).ptr(ptrOf(g)).ptr(partial).i64(nRows).i64(n).i64(len);
      e.launch('norm', `rmsNormCols_${t}`, grid1(n), chunks, 256);
      finishSum(partial, ptrOf(gw), t, n, chunks);
      release(partial);
    },
    layerNorm(x, w, b, out, mean, rstd, nRows, n, eps) {
      const t = floatType('layerNorm', x, w, b, out);
      expect('layerNorm', 'mean', mean, 'f32');
      expect('layerNorm', 'rstd', rstd, 'f32');
      need('layerNorm', 'x', x, nRows * n);
      need('layerNorm', 'out', out, nRows * n);
      need('layerNorm', 'w', w, n);
      need('layerNorm', 'b', b, n);
      need('layerNorm', 'mean', mean, nRows);
      need('layerNorm', 'rstd', rstd, nRows);
      a.reset().ptr(ptrOf(x)).ptr(ptrOf(w)).ptr(ptrOf(b)).ptr(ptrOf(out)).ptr(ptrOf(mean)).ptr(ptrOf(rstd)).i64(nRows).i64(n).f32(eps);
      rows(e, 'norm', `layerNorm_${t}`, nRows, n);
    },
    layerNormBackward(x, w, mean, rstd, g, gx, gw, gb, nRows, n) {
      const op = 'layerNorm.backward';
      const t = floatType(op, x, w, g, gx, gw, gb);
      expect(op, 'mean', mean, 'f32');
      expect(op, 'rstd', rstd, 'f32');
      for (const [wh, s] of [['x', x], ['g', g], ['gx', gx]] as const) need(op, wh, s, nRows * n);
      for (const [wh, s] of [['w', w], ['gw', gw], ['gb', gb]] as const) need(op, wh, s, n);
      need(op, 'mean', mean, nRows);
      need(op, 'rstd', rstd, nRows);
      if (n === 0) return;
      a.reset().ptr(ptrOf(x)).ptr(ptrOf(w)).ptr(ptrOf(mean)).ptr(ptrOf(rstd)).ptr(ptrOf(g)).ptr(ptrOf(gx)).i64(nRows).i64(n);
      rows(e, 'norm', `layerNormBackward_${t}`, nRows, n);
      const { chunks, len } = chunking(nRows, n);
      const pw = scratch(chunks * n * 4), pb = scratch(chunks * n * 4);
      a.reset().ptr(ptrOf(x)).ptr(ptrOf(mean)).ptr(ptrOf(rstd)).ptr(ptrOf(g)).ptr(pw).ptr(pb).i64(nRows).i64(n).i64(len);
      e.launch('norm', `layerNormCols_${t}`, grid1(n), chunks, 256);
      finishSum(pw, ptrOf(gw), t, n, chunks);
      finishSum(pb, ptrOf(gb), t, n, chunks);
      release(pw);
      release(pb);
    },
    rope(x, cos, sin, out, B, H, T, D, cosPerBatch, inverse) {
      const t = floatType('rope', x, cos, sin, out);
      need('rope', 'x', x, B * H * T * D);
      need('rope', 'out', out, B * H * T * D);
      need('rope', 'cos', cos, (cosPerBatch ? B : 1) * T * (D / 2));
      need('rope', 'sin', sin, (cosPerBatch ? B : 1) * T * (D / 2));
      const pairs = B * H * T * (D / 2);
      if (pairs === 0) return;
      a.reset().ptr(ptrOf(x)).ptr(ptrOf(cos)).ptr(ptrOf(sin)).ptr(ptrOf(out)).i64(B).i64(H).i64(T).i64(D).i32(cosPerBatch ? 1 : 0).i32(inverse ? 1 : 0);
      e.launch('rope', `rope_${t}`, grid1(pairs), 1, 256);
    },
    swiglu(gate, up, out, n) {
      const t = floatType('swiglu', gate, up, out);
      for (const [w, s] of [['gate', gate], ['up', up], ['out', out]] as const) need('swiglu', w, s, n);
      if (n === 0) return;
      a.reset().ptr(ptrOf(gate)).ptr(ptrOf(up)).ptr(ptrOf(out)).i64(n);
      e.launch('elementwise', `swiglu_${t}`, grid1(n), 1, 256);
    },
    swigluBackward(gate, up, g, ggate, gup, n) {
      const t = floatType('swiglu.backward', gate, up, g, ggate, gup);
      for (const [w, s] of [['gate', gate], ['up', up], ['g', g], ['ggate', ggate], ['gup', gup]] as const) need('swiglu.backward', w, s, n);
      if (n === 0) return;
      a.reset().ptr(ptrOf(gate)).ptr(ptrOf(up)).ptr(ptrOf(g)).ptr(ptrOf(ggate)).ptr(ptrOf(gup)).i64(n);
      e.launch('elementwise', `swigluBackward_${t}`, grid1(n), 1, 256);
    },
    attention(q, k, v, mask, out, lse, B, Hq, Hkv, T, S, D, scale, causal, window) {
      const t = checkAttention('attention', q, k, v, mask, B, Hq, Hkv, T, S, D);
      expect('attention', 'lse', lse, 'f32');
      floatType('attention', q, out);
      need('attention', 'out', out, B * Hq * T * D);
      need('attention', 'lse', lse, B * Hq * T);
      if (B * Hq * T === 0) return;
      a.reset().ptr(ptrOf(q)).ptr(ptrOf(k)).ptr(ptrOf(v)).ptr(mask ? ptrOf(mask) : 0).ptr(ptrOf(out)).ptr(ptrOf(lse));
      attnDims(B, Hq, Hkv, T, S, D, scale, causal, window);
      e.launch('attention', `attention_${t}`, Math.ceil(T / ATTN_ROWS), B * Hq, 32 * ATTN_ROWS, attnShared(D, 1, 0));
    },
    attentionBackward(q, k, v, mask, out, lse, g, gq, gk, gv, B, Hq, Hkv, T, S, D, scale, causal, window) {
      const op = 'attention.backward';
      const t = checkAttention(op, q, k, v, mask, B, Hq, Hkv, T, S, D);
      floatType(op, q, out, g, gq, gk, gv);
      expect(op, 'lse', lse, 'f32');
      for (const [w, s] of [['out', out], ['g', g], ['gq', gq]] as const) need(op, w, s, B * Hq * T * D);
      need(op, 'gk', gk, B * Hkv * S * D);
      need(op, 'gv', gv, B * Hkv * S * D);
      need(op, 'lse', lse, B * Hq * T);
      const rowsQ = B * Hq * T;
      const delta = scratch(rowsQ * 4);
      if (rowsQ > 0) {
        a.reset().ptr(ptrOf(out)).ptr(ptrOf(g)).ptr(delta).i64(rowsQ).i64(D);
        e.launch('attention', `attentionBackwardDelta_${t}`, Math.ceil(rowsQ / ATTN_ROWS), 1, 32 * ATTN_ROWS);
        a.reset().ptr(ptrOf(q)).ptr(ptrOf(k)).ptr(ptrOf(v)).ptr(mask ? ptrOf(mask) : 0).ptr(ptrOf(lse)).ptr(ptrOf(g)).ptr(delta).ptr(ptrOf(gq));
        attnDims(B, Hq, Hkv, T, S, D, scale, causal, window);
        e.launch('attention', `attentionBackwardDq_${t}`, Math.ceil(T / ATTN_ROWS), B * Hq, 32 * ATTN_ROWS, attnShared(D, 2, 0));
      }
      if (B * Hkv * S > 0) {
        a.reset().ptr(ptrOf(q)).ptr(ptrOf(k)).ptr(ptrOf(v)).ptr(mask ? ptrOf(mask) : 0).ptr(ptrOf(lse)).ptr(ptrOf(g)).ptr(delta).ptr(ptrOf(gk)).ptr(ptrOf(gv));
        attnDims(B, Hq, Hkv, T, S, D, scale, causal, window);
        e.launch('attention', `attentionBackwardDkv_${t}`, Math.ceil(S / ATTN_ROWS), B * Hkv, 32 * ATTN_ROWS, attnShared(D, 2, 2));
      }
      release(delta);
    },
    adamw(param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, step) {
      for (const [w, s] of [['param', param], ['grad', grad], ['m', m], ['v', v]] as const) {
        expect('adamw', w, s, 'f32');
        need('adamw', w, s, n);
      }
      if (n === 0) return;
      e.deferAdam({
        p: ptrOf(param), g: ptrOf(grad), m: ptrOf(m), v: ptrOf(v), n,
        decay: 1 - lr * weightDecay, stepSize: lr / (1 - Math.pow(beta1, step)), bc2Sqrt: Math.sqrt(1 - Math.pow(beta2, step)),
        beta1, beta2, eps,
      });
    },
    clipGradNorm(grads, sizes, maxNorm, out) {
      if (grads.length !== sizes.length) throw new ShapeError(`clipGradNorm: ${grads.length} gradients but ${sizes.length} sizes`);
      expect('clipGradNorm', 'out', out, 'f32');
      need('clipGradNorm', 'out', out, 1);
      grads.forEach((g, i) => {
        expect('clipGradNorm', `gradient ${i}`, g, 'f32');
        need('clipGradNorm', `gradient ${i}`, g, sizes[i]!);
      });
      const count = Math.max(grads.length, 1);
      const buf = new ArrayBuffer(count * 16);
      const view = new DataView(buf);
      grads.forEach((g, i) => {
        const p = ptrOf(g);
        view.setUint32(16 * i, p % 0x100000000, true);
        view.setUint32(16 * i + 4, Math.floor(p / 0x100000000), true);
        view.setUint32(16 * i + 8, sizes[i]!, true);
      });
      const records = e.upload(buf);
      const partial = scratch(count * CLIP_BLOCKS * 8), coef = scratch(4);
      if (grads.length > 0) {
        a.reset().ptr(records).ptr(partial);
        e.launch('optim', 'clipGradNormPartial', CLIP_BLOCKS, grads.length, 256);
      }
      a.reset().ptr(partial).i64(grads.length * CLIP_BLOCKS).f32(maxNorm).ptr(ptrOf(out)).ptr(coef);
      e.launch('optim', 'clipGradNormFinish', 1, 1, 1024);
      if (grads.length > 0) {
        a.reset().ptr(records).ptr(coef);
        e.launch('optim', 'clipGradNormScale', CLIP_BLOCKS, grads.length, 256);
      }
      release(records);
      release(partial);
      release(coef);
    },
  };
}

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
