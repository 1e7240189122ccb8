/**
 * The native CPU backend: the TypeScript face of the N-API addon in kernels/native.
 *
 * Storages are `{dtype, numel, handle}`, the handle a small integer into the addon's handle
 * table. Kernel calls pass handles and numbers only (shape/stride lists go as one reused
 * Int32Array) and return at once: the addon queues them on a stream executed in order by a native
 * thread (see kernels/native/src/stream.h), so the JS thread keeps running while kernels do.
 * Errors a kernel finds while running (an out-of-range id) are deferred to the next
 * readSync/read/synchronize. Every addon call goes through `fromNativeError`, so native failures
 * arrive as the typed errors of kernels/errors.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import type { Backend, BinaryKind, HostArray, Kernels, MemoryStats, Storage, UnaryKind } from './backend.js';
import { BINARY_KINDS, UNARY_KINDS } from './backend.js';
import type { DType } from './dtype.js';
import { DTypeError, NativeError, ShapeError, fromNativeError } from './errors.js';

/** A storage of the native backend. `handle` becomes ~handle (negative) once freed. */
export interface NativeStorage extends Storage {
  handle: number;
}

type NativeHost = Float32Array | Int32Array;

/** The addon's exports (kernels/native/src/bind_*.cc). Argument orders follow kernels/backend.ts. */
interface Addon {
  init(threads: number, blasPath?: string, blasOrigin?: string, blasEnv?: string[]): void;
  alloc(dtypeCode: number, numel: number): number;
  free(handle: number): void;
  write(handle: number, data: Float32Array | Int32Array | Uint16Array): void;
  readSync(handle: number): NativeHost;
  read(handle: number): Promise<NativeHost>;
  synchronize(): void;
  stats(): MemoryStats;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  blasInfo(): string;
  blasCore(): Omit<BlasCore, 'source'>;
  blasCoreIsa(family: 'openblas' | 'mkl', core: string | number): { core: string; isa: BlasCore['isa'] };
  fmaPeakGflops(threads: number, millis: number): number;
  cpuIsa(): string;
  kernelIsa(): string;
  setKernelIsa(isa: string): void;
  kernelIsas(): string[];
  emptyCache(): void;
  [kernel: string]: (...args: never[]) => unknown;
}

const ADDON_PATH = fileURLToPath(new URL('./native/build/Release/aligner_cpu.node', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
/** The BLAS choice infra/blas.sh measures and writes (infra/blas-choose.ts); ALIGN_BLAS_CHOICE names another. */
export const DEFAULT_BLAS_CHOICE = path.join(REPO_ROOT, '.tools', 'blas', 'choice.json');
const DTYPE_CODES: Partial<Record<DType, number>> = { f32: 0, bf16: 1, i32: 2 };
const UNARY_CODES = new Map<UnaryKind, number>(UNARY_KINDS.map((k, i) => [k, i]));
const BINARY_CODES = new Map<BinaryKind, number>(BINARY_KINDS.map((k, i) => [k, i]));
const MAX_RANK = 8;

let addon: Addon | null = null;
let loadFailure: string | null = null;
let blasSource = 'system search';

/** Thread count at load: ALIGN_NUM_THREADS when it is a positive integer, else every core. */
function defaultThreads(): number {
  const env = Number(process.env.ALIGN_NUM_THREADS);
  return Number.isInteger(env) && env > 0 ? env : os.availableParallelism();
}

/** The part of .tools/blas/choice.json the loader reads (infra/blas-choose.ts writes the rest). */
interface BlasChoice {
  /** The library: relative to the repository root, absolute, or a bare soname the loader searches. */
  path: string;
  /** Variables to set while the library loads (OPENBLAS_CORETYPE), unless the user set them. */
  env?: Record<string, string>;
  /** Every file the library needs (MKL exits the process when one of its parts is missing). */
  files?: string[];
  cpu?: string;
  cpuIsa?: string;
}

/** A setting (ALIGN_BLAS, the choice file) that stops the addon from loading, not a broken build. */
class BlasSettingError extends Error {}

const choicePath = (p: string) => (p.includes('/') ? path.resolve(REPO_ROOT, p) : p);
const choiceFile = () => process.env.ALIGN_BLAS_CHOICE || DEFAULT_BLAS_CHOICE;
const redoChoice = (file: string) =>
  `rerun \`npm run setup\` to install and measure the BLAS libraries again, or delete ${file} to use the system BLAS`;

/**
 * Which BLAS the addon loads: ALIGN_BLAS (a path, read by the addon itself) wins; ALIGN_BLAS=system
 * searches the system's libraries; else the measured choice (ALIGN_BLAS_CHOICE or
 * .tools/blas/choice.json) when there is one; else the system's. A choice recorded on another CPU
 * keeps its library (which detects the CPU itself) but not its forced settings, with a warning.
 */
function pickBlas(cpuIsa: string): { path?: string; origin?: string; env?: string[] } {
  const disabled = process.env.ALIGN_DISABLE_BLAS;
  if (disabled && disabled !== '0') return {}; // the addon's own GEMM, whatever else is set
  const named = process.env.ALIGN_BLAS;
  if (named === 'system') {
    blasSource = 'ALIGN_BLAS=system';
    return {};
  }
  if (named) {
    blasSource = 'ALIGN_BLAS';
    return {};
  }
  const file = choiceFile();
  if (!existsSync(file)) {
    if (process.env.ALIGN_BLAS_CHOICE) throw new BlasSettingError(`ALIGN_BLAS_CHOICE=${file}: no such file`);
    return {};
  }
  const redo = redoChoice(file);
  let choice: BlasChoice;
  try {
    choice = JSON.parse(readFileSync(file, 'utf8')) as BlasChoice;
    if (typeof choice?.path !== 'string' || choice.path === '') throw new Error('it has no "path"');
    if (choice.files !== undefined && !(Array.isArray(choice.files) && choice.files.every((f) => typeof f === 'string'))) {
      throw new Error('"files" is not a list of paths');
    }
    if (choice.env !== undefined && (typeof choice.env !== 'object' || choice.env === null || Array.isArray(choice.env) ||
      !Object.values(choice.env).every((v) => typeof v === 'string'))) {
      throw new Error('"env" is not an object of strings');
    }
  } catch (err) {
    throw new BlasSettingError(`the BLAS choice ${file} cannot be read (${(err as Error).message}); ${redo}`);
  }
  const lib = choicePath(choice.path);
  for (const f of (choice.files ?? []).map(choicePath)) {
    if (f.includes('/') && !existsSync(f)) throw new BlasSettingError(`the BLAS choice ${file} names ${lib}, but ${f} is missing; ${redo}`);
  }
  let env = Object.entries(choice.env ?? {}).filter(([k]) => process.env[k] === undefined);
  const cpu = os.cpus()[0]?.model ?? 'unknown';
  if ((choice.cpuIsa !== undefined && choice.cpuIsa !== cpuIsa) || (choice.cpu !== undefined && choice.cpu !== cpu)) {
    const without = env.length > 0 ? ` without ${env.map(([k, v]) => `${k}=${v}`).join(' ')}` : '';
    process.emitWarning(
      `the BLAS choice ${file} was measured on ${choice.cpu} (${choice.cpuIsa}), this is ${cpu} (${cpuIsa}): ` +
        `loading ${lib}${without}; run \`npm run setup\` to measure here`,
    );
    env = [];
  }
  blasSource = file;
  return { path: lib, origin: `the BLAS choice ${file} names ${lib}`, env: env.map(([k, v]) => `${k}=${v}`) };
}

function load(): Addon | null {
  if (addon || loadFailure) return addon;
  if (!existsSync(ADDON_PATH)) {
    loadFailure = `the native addon is not built (${ADDON_PATH} is missing); run \`npm run build:native\``;
    return null;
  }
  let loaded: Addon;
  try {
    loaded = createRequire(import.meta.url)(ADDON_PATH) as Addon;
  } catch (err) {
    loadFailure = `the native addon failed to load (${(err as Error).message}); run \`npm run build:native\``;
    return null;
  }
  try {
    const blas = pickBlas(loaded.cpuIsa());
    loaded.init(defaultThreads(), blas.path, blas.origin, blas.env);
    if (process.env.ALIGN_DISABLE_BLAS && process.env.ALIGN_DISABLE_BLAS !== '0') blasSource = 'ALIGN_DISABLE_BLAS';
    addon = loaded;
  } catch (err) {
    const message = (err as Error).message;
    // ALIGN_BLAS or the choice names a library that is not a usable CBLAS: the addon is fine, the setting is not.
    if (err instanceof BlasSettingError) loadFailure = message;
    else if (message.startsWith('ALIGN_BLAS=')) {
      loadFailure = `${message}; point ALIGN_BLAS at a CBLAS shared library (OpenBLAS, scipy-openblas, MKL's libmkl_rt.so) or unset it`;
    } else if (message.startsWith('the BLAS choice ')) loadFailure = `${message}; ${redoChoice(choiceFile())}`;
    else if (message.startsWith('ALIGN_ISA=')) loadFailure = `${message}; unset ALIGN_ISA to use the widest kernels this CPU runs`;
    else loadFailure = `the native addon failed to load (${message}); run \`npm run build:native\``;
  }
  return addon;
}

/** Whether the addon is built and loads here; when not, why (and that `npm run build:native` builds it). */
export function nativeAvailable(): { ok: true } | { ok: false; reason: string } {
  return load() ? { ok: true } : { ok: false, reason: loadFailure! };
}

function requireAddon(): Addon {
  const a = load();
  if (!a) throw new NativeError(`native backend unavailable: ${loadFailure}`);
  return a;
}

/** Runs an addon call, converting its errors to the typed classes. */
function guard<T>(f: () => T): T {
  try {
    return f();
  } catch (err) {
    throw fromNativeError(err);
  }
}

/** Sets the number of native compute threads (executor included); waits for queued work first. */
export function setNumThreads(n: number): void {
  const a = requireAddon();
  guard(() => a.setNumThreads(n));
}

export function getNumThreads(): number {
  const a = requireAddon();
  return guard(() => a.getNumThreads());
}

/** Returns the caching allocator's free blocks to the system (after queued work finishes). */
export function emptyCache(): void {
  const a = requireAddon();
  guard(() => a.emptyCache());
}

/**
 * The BLAS behind matmul in one line, naming the family and its kernels: OpenBLAS's config string
 * ("OpenBLAS 0.3.34.481.3 DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64"), "oneMKL 2026.2
 * (AVX512_E1 code path, sequential)", 'CBLAS <file name>' for another library, or 'fallback' (our own GEMM).
 */
export function blasInfo(): string {
  const a = requireAddon();
  return guard(() => a.blasInfo());
}

/** The BLAS library behind matmul, as blasCore() describes it. */
export interface BlasCore {
  /** 'fallback': no BLAS was loaded (ALIGN_DISABLE_BLAS=1, or none found) and our own GEMM runs. */
  family: 'openblas' | 'mkl' | 'other' | 'fallback';
  /** As the library reports it ('0.3.34.481.3', '2026.2'); '' when it does not. */
  version: string;
  /** The kernel family: OpenBLAS's core ('SkylakeX', 'Haswell', 'Prescott'…), MKL's code path ('AVX512_E1', 'AVX2'…). */
  core: string;
  /** The widest vector ISA of those kernels; 'baseline' is below AVX2; 'unknown' for a name the table does not know. */
  isa: 'avx512' | 'avx2' | 'baseline' | 'unknown';
  /** The file it was loaded from ('' for the fallback). */
  path: string;
  /** What picked it: 'ALIGN_BLAS', 'ALIGN_BLAS=system', the choice file's path, 'system search' or 'ALIGN_DISABLE_BLAS'. */
  source: string;
}

/**
 * Which BLAS library matmul runs on and which of its kernels: the library infra/blas-choose.ts
 * measured fastest here (.tools/blas/choice.json) unless ALIGN_BLAS names one. On a CPU with AVX2
 * or AVX-512, `isa` should equal cpuIsa(): anything narrower is a library that did not know the core.
 */
export function blasCore(): BlasCore {
  const a = requireAddon();
  const core = guard(() => a.blasCore());
  return { ...core, source: core.family === 'fallback' && blasSource === 'system search' ? 'system search (none found)' : blasSource };
}

/** The widest vector ISA of this CPU, as the addon detects it (CPUID): 'avx512', 'avx2' or 'baseline'. */
export function cpuIsa(): 'avx512' | 'avx2' | 'baseline' {
  const a = requireAddon();
  return guard(() => a.cpuIsa()) as 'avx512' | 'avx2' | 'baseline';
}

/** A build of the native kernels: each is compiled for one ISA and picked at load (kernels/native/README.md). */
export type KernelIsa = 'avx512' | 'avx2' | 'baseline';

/** The kernel build in use: the widest this CPU runs, unless ALIGN_ISA chose another. */
export function kernelIsa(): KernelIsa {
  const a = requireAddon();
  return guard(() => a.kernelIsa()) as KernelIsa;
}

/** The kernel builds this CPU can run, widest first. */
export function kernelIsas(): KernelIsa[] {
  const a = requireAddon();
  return guard(() => a.kernelIsas()) as KernelIsa[];
}

/** Switches the kernel build (after queued work has run); an ISA this CPU lacks is a NativeError. */
export function setKernelIsa(isa: KernelIsa): void {
  const a = requireAddon();
  guard(() => a.setKernelIsa(isa));
}

/** Measured peak fp32 FMA throughput of `threads` threads over about `millis` ms, with the widest FMA the CPU has (cpuIsa), in GFLOP/s. */
export function fmaPeakGflops(threads: number, millis: number): number {
  const a = requireAddon();
  return guard(() => a.fmaPeakGflops(threads, millis));
}

const h = (s: Storage): number => (s as NativeStorage).handle;

// Scratch for shape/stride lists; the addon copies them at call time, so one array serves all calls.
const dims = new Int32Array(1 + 3 * MAX_RANK);

function putInt(i: number, v: number, op: string): void {
  if ((v | 0) !== v) throw new ShapeError(`${op}: size or stride ${v} is not an int32`);
  dims[i] = v;
}

function makeKernels(a: Addon): Kernels {
  // Each kernel is a thin, allocation-free forwarder; `k` converts native errors.
  const k = a as unknown as Record<string, (...args: unknown[]) => void>;
  const call = (name: string, ...args: unknown[]): void => {
    try {
      k[name]!(...args);
    } catch (err) {
      throw fromNativeError(err);
    }
  };
  return {
    fill: (out, n, value) => call('fill', h(out), n, value),
    copy: (src, dst, n) => call('copy', h(src), h(dst), n),
    cast: (src, dst, n) => call('cast', h(src), h(dst), n),
    unary: (kind, x, out, n) => call('unary', UNARY_CODES.get(kind) ?? -1, h(x), h(out), n),
    unaryBackward: (kind, x, y, g, gx, n) => call('unaryBackward', UNARY_CODES.get(kind) ?? -1, h(x), h(y), h(g), h(gx), n),
    affine: (x, out, n, scale, shift) => call('affine', h(x), h(out), n, scale, shift),
    powScalar: (x, out, n, exponent) => call('powScalar', h(x), h(out), n, exponent),
    binary: (kind, x, y, out, outShape, aStrides, bStrides) => {
      const rank = outShape.length;
      if (rank > MAX_RANK || aStrides.length !== rank || bStrides.length !== rank) {
        throw new ShapeError(`binary: rank ${rank} with ${aStrides.length}/${bStrides.length} strides (rank ≤ ${MAX_RANK})`);
      }
      dims[0] = rank;
      for (let d = 0; d < rank; d++) {
        putInt(1 + d, outShape[d]!, 'binary');
        putInt(1 + rank + d, aStrides[d]!, 'binary');
        putInt(1 + 2 * rank + d, bStrides[d]!, 'binary');
      }
      call('binary', BINARY_CODES.get(kind) ?? -1, h(x), h(y), h(out), dims);
    },
    reduceSum: (x, out, outer, n, inner) => call('reduceSum', h(x), h(out), outer, n, inner),
    reduceMax: (x, out, outer, n, inner) => call('reduceMax', h(x), h(out), outer, n, inner),
    reduceMaxBackward: (x, y, g, gx, outer, n, inner) => call('reduceMaxBackward', h(x), h(y), h(g), h(gx), outer, n, inner),
    matmul: (x, y, out, batch, M, N, K, transA, transB, strideA, strideB) =>
      call('matmul', h(x), h(y), h(out), batch, M, N, K, transA, transB, strideA, strideB),
    permute: (x, out, shape, perm) => {
      const rank = shape.length;
      if (rank > MAX_RANK || perm.length !== rank) throw new ShapeError(`permute: rank ${rank} with a perm of ${perm.length} (rank ≤ ${MAX_RANK})`);
      dims[0] = rank;
      for (let d = 0; d < rank; d++) {
        putInt(1 + d, shape[d]!, 'permute');
        putInt(1 + rank + d, perm[d]!, 'permute');
      }
      call('permute', h(x), h(out), dims);
    },
    copyBlock: (src, dst, outer, len, inner, srcAxis, srcOffset, dstAxis, dstOffset) =>
      call('copyBlock', h(src), h(dst), outer, len, inner, srcAxis, srcOffset, dstAxis, dstOffset),
    embedding: (weight, ids, out, n, C, V) => call('embedding', h(weight), h(ids), h(out), n, C, V),
    embeddingBackward: (g, ids, gw, n, C, V) => call('embeddingBackward', h(g), h(ids), h(gw), n, C, V),
    softmax: (x, out, rows, n) => call('softmax', h(x), h(out), rows, n),
    softmaxBackward: (y, g, gx, rows, n) => call('softmaxBackward', h(y), h(g), h(gx), rows, n),
    logSoftmax: (x, out, rows, n) => call('logSoftmax', h(x), h(out), rows, n),
    logSoftmaxBackward: (y, g, gx, rows, n) => call('logSoftmaxBackward', h(y), h(g), h(gx), rows, n),
    tokenLogprobs: (logits, targets, out, lse, rows, V, ignoreIndex) =>
      call('tokenLogprobs', h(logits), h(targets), h(out), h(lse), rows, V, ignoreIndex),
    tokenLogprobsBackward: (logits, targets, lse, g, gx, rows, V, ignoreIndex) =>
      call('tokenLogprobsBackward', h(logits), h(targets), h(lse), h(g), h(gx), rows, V, ignoreIndex),
    rmsNorm: (x, w, out, rstd, rows, n, eps) => call('rmsNorm', h(x), h(w), h(out), h(rstd), rows, n, eps),
    rmsNormBackward: (x, w, rstd, g, gx, gw, rows, n) => call('rmsNormBackward', h(x), h(w), h(rstd), h(g), h(gx), h(gw), rows, n),
    layerNorm: (x, w, b, out, mean, rstd, rows, n, eps) =>
      call('layerNorm', h(x), h(w), h(b), h(out), h(mean), h(rstd), rows, n, eps),
    layerNormBackward: (x, w, mean, rstd, g, gx, gw, gb, rows, n) =>
      call('layerNormBackward', h(x), h(w), h(mean), h(rstd), h(g), h(gx), h(gw), h(gb), rows, n),
    rope: (x, cos, sin, out, B, H, T, D, cosPerBatch, inverse) =>
      call('rope', h(x), h(cos), h(sin), h(out), B, H, T, D, cosPerBatch, inverse),
    swiglu: (gate, up, out, n) => call('swiglu', h(gate), h(up), h(out), n),
    swigluBackward: (gate, up, g, ggate, gup, n) => call('swigluBackward', h(gate), h(up), h(g), h(ggate), h(gup), n),
    attention: (q, kk, v, mask, out, lse, B, Hq, Hkv, T, S, D, scale, causal, window) =>
      call('attention', h(q), h(kk), h(v), mask ? h(mask) : null, h(out), h(lse), B, Hq, Hkv, T, S, D, scale, causal, window),
    attentionBackward: (q, kk, v, mask, out, lse, g, gq, gk, gv, B, Hq, Hkv, T, S, D, scale, causal, window) =>
      call('attentionBackward', h(q), h(kk), h(v), mask ? h(mask) : null, h(out), h(lse), h(g), h(gq), h(gk), h(gv),
        B, Hq, Hkv, T, S, D, scale, causal, window),
    adamw: (param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, step) =>
      call('adamw', h(param), h(grad), h(m), h(v), n, lr, beta1, beta2, eps, weightDecay, step),
    clipGradNorm: (grads, sizes, maxNorm, out) => {
      if (grads.length !== sizes.length) throw new ShapeError(`clipGradNorm: ${grads.length} gradients but ${sizes.length} sizes`);
      const list = new Int32Array(2 * grads.length);
      grads.forEach((g, t) => {
        list[2 * t] = h(g);
        if ((sizes[t]! | 0) !== sizes[t]) throw new ShapeError(`clipGradNorm: size ${sizes[t]} is not an int32`);
        list[2 * t + 1] = sizes[t]!;
      });
      call('clipGradNorm', list, maxNorm, h(out));
    },
  };
}

function hostArray(s: NativeStorage, data: ArrayLike<number>): Float32Array | Int32Array {
  // Int32Array conversion is JS ToInt32 (non-finite → 0, truncation, wrap), as the reference stores
  // an i32; f32 rounds to nearest; bf16 goes up as f32 and the addon rounds it (ties to even).
  if (s.dtype === 'i32') return data instanceof Int32Array ? data : Int32Array.from(data);
  return data instanceof Float32Array ? data : Float32Array.from(data);
}

function makeBackend(a: Addon): Backend {
  return {
    name: 'native',
    device: 'cpu',
    dtypes: new Set<DType>(['f32', 'bf16', 'i32']),
    alloc(dtype: DType, numel: number): Storage {
      const code = DTYPE_CODES[dtype];
      if (code === undefined) throw new DTypeError(`native backend: ${dtype} storage is not supported (f32, bf16, i32 only)`);
      const handle = guard(() => a.alloc(code, numel));
      const s: NativeStorage = { dtype, numel, handle };
      return s;
    },
    free(s: Storage): void {
      const st = s as NativeStorage;
      guard(() => a.free(st.handle));
      st.handle = ~st.handle;
    },
    write(s: Storage, data: ArrayLike<number>): void {
      const st = s as NativeStorage;
      guard(() => a.write(st.handle, hostArray(st, data)));
    },
    readSync(s: Storage): HostArray {
      return guard(() => a.readSync(h(s)));
    },
    read(s: Storage): Promise<HostArray> {
      return guard(() => a.read(h(s))).catch((err: unknown) => {
        throw fromNativeError(err);
      });
    },
    kernels: makeKernels(a),
    unsupported: {},
    stats: () => guard(() => a.stats()),
    synchronize: () => guard(() => a.synchronize()),
  };
}

let backend: Backend | null = null;

/** The shared-memory process group's entry points (native/src/bind_group.cc); storages go as handles. */
export interface NativeGroupCalls {
  shmGroupOpen(name: string, rank: number, world: number, slotBytes: number, mailboxBytes: number, timeoutMs: number): Promise<number>;
  shmGroupClose(group: number): Promise<number>;
  shmGroupBarrier(group: number): Promise<number>;
  shmGroupAllReduce(group: number, handle: number, op: string, overlap: boolean): Promise<number>;
  shmGroupAllGather(group: number, input: number, output: number): Promise<number>;
  shmGroupReduceScatter(group: number, input: number, output: number, op: string): Promise<number>;
  shmGroupBroadcast(group: number, handle: number, root: number): Promise<number>;
  shmGroupSend(group: number, handle: number, dst: number): Promise<number>;
  shmGroupRecv(group: number, handle: number, src: number): Promise<number>;
  shmGroupSendRecv(group: number, sendHandle: number, dst: number, recvHandle: number, src: number): Promise<number>;
}

/** The addon's process-group calls, with native errors turned into their typed classes. */
export function nativeGroupCalls(): NativeGroupCalls {
  if (groupCalls) return groupCalls;
  const a = requireAddon() as unknown as NativeGroupCalls;
  const typed = {} as Record<string, unknown>;
  for (const name of GROUP_CALLS) {
    const call = (a as unknown as Record<string, (...args: unknown[]) => Promise<number>>)[name];
    typed[name] = (...args: unknown[]) =>
      guard(() => call(...args)).catch((err: unknown) => {
        throw fromNativeError(err);
      });
  }
  return (groupCalls = typed as unknown as NativeGroupCalls);
}

let groupCalls: NativeGroupCalls | null = null;

const GROUP_CALLS: readonly (keyof NativeGroupCalls)[] = ['shmGroupOpen', 'shmGroupClose', 'shmGroupBarrier', 'shmGroupAllReduce', 'shmGroupAllGather', 'shmGroupReduceScatter', 'shmGroupBroadcast', 'shmGroupSend', 'shmGroupRecv', 'shmGroupSendRecv'];

/** The addon's handle behind a native storage. */
export const storageHandle = (s: Storage): number => h(s);

/** The native backend (one per JS environment); throws if the addon is not available. */
export function nativeBackend(): Backend {
  return (backend ??= makeBackend(requireAddon()));
}
