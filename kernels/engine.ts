/**
 * Tensor creation and the default backend. The CPU default is the native addon when it is built,
 * else the reference backend (with a one-time warning), so that everything runs anywhere.
 */
import type { Backend, HostArray } from './backend.js';
import type { DType } from './dtype.js';
import { ShapeError, fmtShape } from './errors.js';
import type { Shape } from './errors.js';
import { cudaBackend } from './cuda-backend.js';
import { nativeAvailable, nativeBackend } from './native-backend.js';
import { Generator } from './random.js';
import { referenceBackend } from './reference/index.js';
import { Tensor, numelOf } from './tensor.js';

export type BackendName = 'native' | 'reference' | 'cuda';

let defaultBackend: Backend | null = null;

export function getBackend(name: BackendName): Backend {
  if (name === 'reference') return referenceBackend;
  if (name === 'cuda') return cudaBackend(); // opt-in; its first call throws NoGpuError where there is no usable GPU
  const status = nativeAvailable();
  if (!status.ok) throw new Error(`native backend unavailable: ${status.reason}`);
  return nativeBackend();
}

/** The backend new tensors go to unless told otherwise (env ALIGN_BACKEND=reference|native|cuda). */
export function currentBackend(): Backend {
  if (defaultBackend) return defaultBackend;
  const wanted = process.env.ALIGN_BACKEND as BackendName | undefined;
  if (wanted === 'reference') return (defaultBackend = referenceBackend);
  if (wanted === 'cuda') return (defaultBackend = cudaBackend());
  const status = nativeAvailable();
  if (status.ok) return (defaultBackend = nativeBackend());
  if (wanted === 'native') throw new Error(`ALIGN_BACKEND=native but ${status.reason}`);
  process.emitWarning(`native CPU backend unavailable (${status.reason}); using the slow reference backend`);
  return (defaultBackend = referenceBackend);
}

export function setBackend(backend: Backend | BackendName): void {
  defaultBackend = typeof backend === 'string' ? getBackend(backend) : backend;
}

export interface CreateOptions {
  dtype?: DType;
  backend?: Backend;
}

/** A tensor from host values (any array-like of numbers) and a shape. */
export function tensor(values: ArrayLike<number>, shape: Shape, opts: CreateOptions = {}): Tensor {
  const backend = opts.backend ?? currentBackend();
  const dtype = opts.dtype ?? 'f32';
  if (numelOf(shape) !== values.length || shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new ShapeError(`tensor: ${values.length} values do not fill shape ${fmtShape(shape)}`);
  }
  const storage = backend.alloc(dtype, values.length);
  backend.write(storage, values);
  const t = new Tensor(shape, dtype, backend, storage);
  if (dtype === 'i32') intValues.set(t, Int32Array.from(values));
  return t;
}

// The host values of i32 tensors made by tensor() (ids, targets): ops that need them on the host
// (tensor parallel's vocabulary ranges) read them here rather than sync the stream mid-pipeline.
const intValues = new WeakMap<Tensor, Int32Array>();

/** An i32 tensor's values: from host memory when tensor() made it, else read back (a sync point). */
export function hostInts(t: Tensor): ArrayLike<number> {
  return intValues.get(t) ?? t.toArraySync();
}

export function full(shape: Shape, value: number, opts: CreateOptions = {}): Tensor {
  const backend = opts.backend ?? currentBackend();
  const dtype = opts.dtype ?? 'f32';
  const storage = backend.alloc(dtype, numelOf(shape));
  const t = new Tensor(shape, dtype, backend, storage);
  backend.kernels.fill!(storage, t.numel, value);
  return t;
}

export const zeros = (shape: Shape, opts: CreateOptions = {}): Tensor => full(shape, 0, opts);
export const ones = (shape: Shape, opts: CreateOptions = {}): Tensor => full(shape, 1, opts);

/** Normal(mean, std) samples drawn on the host from `gen`, so results do not depend on the backend. */
export function randn(shape: Shape, gen: Generator, opts: CreateOptions & { std?: number; mean?: number } = {}): Tensor {
  const values = new Float64Array(numelOf(shape));
  const std = opts.std ?? 1, mu = opts.mean ?? 0;
  for (let i = 0; i < values.length; i++) values[i] = mu + std * gen.normal();
  return tensor(values, shape, opts);
}

/** Uniform [lo, hi) samples from `gen`. */
export function rand(shape: Shape, gen: Generator, opts: CreateOptions & { lo?: number; hi?: number } = {}): Tensor {
  const values = new Float64Array(numelOf(shape));
  const lo = opts.lo ?? 0, hi = opts.hi ?? 1;
  for (let i = 0; i < values.length; i++) values[i] = lo + (hi - lo) * gen.uniform();
  return tensor(values, shape, opts);
}

/** Copy a tensor's values to another backend (e.g. native → reference in tests). */
export function toBackend(t: Tensor, backend: Backend): Tensor {
  const values: HostArray = t.toArraySync();
  return tensor(values, t.shape, { dtype: t.dtype, backend });
}
