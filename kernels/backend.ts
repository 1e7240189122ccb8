/**
 * The backend contract: storage management plus a fixed set of kernels.
 *
 * A kernel works on contiguous row-major storages and plain numbers; it never sees a Tensor,
 * never allocates its outputs (the op layer does), and never records gradients. Every backend
 * (reference TypeScript, native CPU, CUDA) implements the same kernels with the same meaning,
 * and `kernels/reference/` is the spec that the others are tested against.
 *
 * Output storages are passed in; a kernel overwrites them completely unless stated otherwise.
 * Float kernels take f32 (f64 on the reference backend as well); index inputs are i32.
 * Reductions use a fixed partition of the work, so results do not depend on scheduling.
 */
import type { DType, Device } from './dtype.js';

export interface Storage {
  readonly dtype: DType;
  readonly numel: number;
}

export type UnaryKind =
  | 'neg'
  | 'exp'
  | 'log'
  | 'sqrt'
  | 'rsqrt'
  | 'tanh'
  | 'sigmoid'
  | 'relu'
  | 'silu'
  | 'gelu' // tanh approximation, as GPT-2's "gelu_new"
  | 'abs'
  | 'square';

export const UNARY_KINDS: readonly UnaryKind[] = [
  'neg', 'exp', 'log', 'sqrt', 'rsqrt', 'tanh', 'sigmoid', 'relu', 'silu', 'gelu', 'abs', 'square',
];

export type BinaryKind = 'add' | 'sub' | 'mul' | 'div' | 'maximum' | 'minimum';
export const BINARY_KINDS: readonly BinaryKind[] = ['add', 'sub', 'mul', 'div', 'maximum', 'minimum'];

/** Host-side data of a storage: bf16 is widened to f32 on the way out. */
export type HostArray = Float64Array | Float32Array | Int32Array;

type S = Storage;

export interface Kernels {
  /** out[i] = value. */
  fill(out: S, n: number, value: number): void;
  /** dst[i] = src[i], same dtype. */
  copy(src: S, dst: S, n: number): void;
  /** dst[i] = convert(src[i]); float→bf16 rounds to nearest even, float→i32 truncates toward zero. */
  cast(src: S, dst: S, n: number): void;
  /** out[i] = f(x[i]). */
  unary(kind: UnaryKind, x: S, out: S, n: number): void;
  /** gx[i] = g[i] · f'(x[i]); y = f(x) is passed so that kernels can reuse it. */
  unaryBackward(kind: UnaryKind, x: S, y: S, g: S, gx: S, n: number): void;
  /** out[i] = x[i]·scale + shift. */
  affine(x: S, out: S, n: number, scale: number, shift: number): void;
  /** out[i] = x[i]^exponent. */
  powScalar(x: S, out: S, n: number, exponent: number): void;
  /**
   * Broadcasting elementwise op. `outShape` has rank ≤ 8; `aStrides`/`bStrides` are element strides
   * of a and b aligned to outShape, 0 on broadcast dimensions.
   * maximum/minimum propagate NaN (either input NaN gives NaN).
   */
  binary(kind: BinaryKind, a: S, b: S, out: S, outShape: readonly number[], aStrides: readonly number[], bStrides: readonly number[]): void;
  /** x viewed as [outer, n, inner]; out[o, j] = Σ_i x[o, i, j]. */
  reduceSum(x: S, out: S, outer: number, n: number, inner: number): void;
  /** x viewed as [outer, n, inner]; out[o, j] = max_i x[o, i, j]; NaN propagates; n = 0 gives -Infinity. */
  reduceMax(x: S, out: S, outer: number, n: number, inner: number): void;
  /** gx[o, i, j] = g[o, j] at the first i where x[o, i, j] equals y[o, j] (or is NaN when y is NaN), else 0. */
  reduceMaxBackward(x: S, y: S, g: S, gx: S, outer: number, n: number, inner: number): void;
  /**
   * out[b] = op(A[b]) · op(B[b]) for b < batch; out is [batch, M, N].
   * A[b] starts at b·strideA (0 = the same matrix for every b) and is [M, K], or [K, M] when transA.
   * B[b] starts at b·strideB and is [K, N], or [N, K] when transB.
   */
  matmul(a: S, b: S, out: S, batch: number, M: number, N: number, K: number, transA: boolean, transB: boolean, strideA: number, strideB: number): void;
  /** out has shape shape[perm[0]], shape[perm[1]], …; out[i_0, …] = x[j] where j's axis perm[d] index is i_d. Rank ≤ 8. */
  permute(x: S, out: S, shape: readonly number[], perm: readonly number[]): void;
  /**
   * Copy a block along a middle axis. For o < outer, a < len, i < inner:
   * dst[(o·dstAxis + dstOffset + a)·inner + i] = src[(o·srcAxis + srcOffset + a)·inner + i].
   * Elements of dst outside the block are left untouched. Serves slice, concat and their gradients.
   */
  copyBlock(src: S, dst: S, outer: number, len: number, inner: number, srcAxis: number, srcOffset: number, dstAxis: number, dstOffset: number): void;
  /** out[t, :] = weight[ids[t], :] for t < n; weight is [V, C]. An id outside [0, V) is an IndexError. */
  embedding(weight: S, ids: S, out: S, n: number, C: number, V: number): void;
  /** gw = 0, then gw[ids[t], :] += g[t, :] in increasing t (deterministic). */
  embeddingBackward(g: S, ids: S, gw: S, n: number, C: number, V: number): void;
  /** Row-wise softmax over the last axis of [rows, n]. */
  softmax(x: S, out: S, rows: number, n: number): void;
  /** gx = y · (g − Σ_j g_j y_j), row-wise. */
  softmaxBackward(y: S, g: S, gx: S, rows: number, n: number): void;
  /** Row-wise log-softmax over the last axis of [rows, n]. */
  logSoftmax(x: S, out: S, rows: number, n: number): void;
  /** gx = g − exp(y) · Σ_j g_j, row-wise. */
  logSoftmaxBackward(y: S, g: S, gx: S, rows: number, n: number): void;
  /**
   * Fused log-softmax + gather. logits [rows, V], targets i32 [rows].
   * lse[r] = log Σ_v exp(logits[r, v]); out[r] = logits[r, targets[r]] − lse[r];
   * a row whose target equals ignoreIndex gets out[r] = 0. Another target outside [0, V) is an IndexError.
   */
  tokenLogprobs(logits: S, targets: S, out: S, lse: S, rows: number, V: number, ignoreIndex: number): void;
  /** gx[r, v] = g[r] · (1[v = targets[r]] − exp(logits[r, v] − lse[r])); ignored rows get 0. */
  tokenLogprobsBackward(logits: S, targets: S, lse: S, g: S, gx: S, rows: number, V: number, ignoreIndex: number): void;
  /** x [rows, n], w [n]. rstd[r] = 1/√(mean_j x² + eps); out = x · rstd · w. */
  rmsNorm(x: S, w: S, out: S, rstd: S, rows: number, n: number, eps: number): void;
  /** x̂ = x·rstd, ĝ = g·w: gx = rstd·(ĝ − x̂·mean_j(ĝ x̂)); gw[j] = Σ_r g·x̂ (overwritten). */
  rmsNormBackward(x: S, w: S, rstd: S, g: S, gx: S, gw: S, rows: number, n: number): void;
  /** x [rows, n]; mean, rstd [rows]; out = (x − mean)·rstd·w + b. Biased variance, as PyTorch. */
  layerNorm(x: S, w: S, b: S, out: S, mean: S, rstd: S, rows: number, n: number, eps: number): void;
  /** x̂ = (x − mean)·rstd, ĝ = g·w: gx = rstd·(ĝ − mean_j ĝ − x̂·mean_j(ĝ x̂)); gw = Σ_r g x̂; gb = Σ_r g. */
  layerNormBackward(x: S, w: S, mean: S, rstd: S, g: S, gx: S, gw: S, gb: S, rows: number, n: number): void;
  /**
   * Rotary embedding, "rotate half" convention (Hugging Face Llama). x [B, H, T, D], D even;
   * cos/sin are [T, D/2], or [B, T, D/2] when cosPerBatch. With c, s at (b, t, i), i < D/2:
   * out[i] = x[i]·c − x[i + D/2]·s; out[i + D/2] = x[i + D/2]·c + x[i]·s.
   * inverse negates s (the transpose of the rotation, i.e. the backward pass).
   */
  rope(x: S, cos: S, sin: S, out: S, B: number, H: number, T: number, D: number, cosPerBatch: boolean, inverse: boolean): void;
  /** out = silu(gate) · up. */
  swiglu(gate: S, up: S, out: S, n: number): void;
  /** ggate = g · up · silu'(gate); gup = g · silu(gate). */
  swigluBackward(gate: S, up: S, g: S, ggate: S, gup: S, n: number): void;
  /**
   * Fused scaled-dot-product attention with grouped KV heads (Hq % Hkv = 0; query head h reads kv head h / (Hq/Hkv)).
   * q [B, Hq, T, D]; k, v [B, Hkv, S, D]; mask null or f32 [B, S] with 1 = attend, 0 = padding.
   * Query t sits at absolute position pos = S − T + t. causal: it sees only keys s ≤ pos.
   * window (a non-negative integer; 0 = no window): when > 0, it also sees only keys s > pos − window,
   * so at most `window` keys pos − window + 1 … pos (sliding-window attention, Mistral; as Hugging Face's
   * `sliding_window`). The lower bound applies unchanged when causal is false (keys pos − window + 1 … S − 1).
   * out [B, Hq, T, D]; lse [B, Hq, T] = log Σ_s exp(scale·q·k_s) over visible keys.
   * A query that sees no key gets out = 0 and lse = −Infinity.
   */
  attention(q: S, k: S, v: S, mask: S | null, out: S, lse: S, B: number, Hq: number, Hkv: number, T: number, S: number, D: number, scale: number, causal: boolean, window: number): void;
  /** Gradients of `attention` from its saved out and lse (P is recomputed). gq, gk, gv are overwritten. */
  attentionBackward(q: S, k: S, v: S, mask: S | null, out: S, lse: S, g: S, gq: S, gk: S, gv: S, B: number, Hq: number, Hkv: number, T: number, S: number, D: number, scale: number, causal: boolean, window: number): void;
  /**
   * One AdamW step in place (Loshchilov & Hutter 2019, Algorithm 2; PyTorch's operation order):
   * p ← p·(1 − lr·wd); m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²;
   * p ← p − (lr / (1−β1^step)) · m / (√v / √(1−β2^step) + eps).
   */
  adamw(param: S, grad: S, m: S, v: S, n: number, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void;
  /**
   * Global L2 norm over several tensors, then in-place scaling when it exceeds maxNorm:
   * norm = √(Σ_t Σ_i g_t[i]²) accumulated in f64 in a fixed order; out[0] = norm;
   * if norm > maxNorm, every g_t ← g_t · maxNorm / (norm + 1e-6). maxNorm = Infinity only measures.
   */
  clipGradNorm(grads: readonly S[], sizes: readonly number[], maxNorm: number, out: S): void;
}

export type KernelName = keyof Kernels;

export interface MemoryStats {
  /** Storages currently allocated. */
  liveBuffers: number;
  /** Bytes those storages hold. */
  liveBytes: number;
  /** Bytes kept by a caching allocator for reuse (0 where there is none). */
  cachedBytes?: number;
}

export interface Backend {
  readonly name: 'reference' | 'native' | 'cuda';
  readonly device: Device;
  /** Element types this backend can store. */
  readonly dtypes: ReadonlySet<DType>;
  /** A new storage; its contents are undefined (kernels overwrite their outputs). */
  alloc(dtype: DType, numel: number): Storage;
  /** Release a storage. Work already queued that reads it still completes first. */
  free(s: Storage): void;
  /** Upload host values (numbers are rounded to the storage dtype). */
  write(s: Storage, data: ArrayLike<number>): void;
  /** Wait for queued work and return a copy of the data. */
  readSync(s: Storage): HostArray;
  /** Like readSync, without blocking the JS thread. */
  read(s: Storage): Promise<HostArray>;
  readonly kernels: Partial<Kernels>;
  /** Kernels this backend does not implement, each with the reason (the explicit skip list). */
  readonly unsupported: Partial<Record<KernelName, string>>;
  stats(): MemoryStats;
  /** Wait for all queued work; surfaces a deferred native error. */
  synchronize(): void;
}
