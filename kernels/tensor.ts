/**
 * Tensor: a shape, a dtype and a storage on one backend, plus the autograd hooks.
 *
 * Tensors are contiguous (row-major) and immutable from the user's side; ops return new tensors.
 * Memory is released deterministically, never by the garbage collector: `dispose()` frees one
 * tensor, and `tidy(fn)` frees every tensor created inside `fn` except what it returns.
 */
import type { Backend, HostArray, Storage } from './backend.js';
import type { DType } from './dtype.js';
import { DisposedError, ShapeError, fmtShape } from './errors.js';
import type { Shape } from './errors.js';

/** One recorded op on the tape: how to turn the output's gradient into its inputs' gradients. */
export interface GradNode {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  /** needs[i] says whether input i wants a gradient; entries for the others may be null. */
  backward(g: Tensor, needs: readonly boolean[]): (Tensor | null)[];
}

/** A storage with the number of tensors (views) that hold it. */
interface SharedStorage {
  readonly storage: Storage;
  refs: number;
}

let nextId = 0;

export class Tensor {
  readonly id = nextId++;
  readonly shape: Shape;
  readonly dtype: DType;
  readonly backend: Backend;
  /** The tape entry that produced this tensor; null for leaves. */
  gradFn: GradNode | null = null;
  requiresGrad = false;
  /** Accumulated gradient of a leaf after `backward()`. */
  grad: Tensor | null = null;
  /**
   * Called once per backward pass, right after this leaf's gradient of that pass has been
   * accumulated (PyTorch's post-accumulate-grad hook): data parallel starts reducing a bucket here.
   */
  onGradReady: ((leaf: Tensor) => void) | null = null;
  private storageRef: SharedStorage | null;

  /** A new tensor owning `storage`, or sharing it when `share` is another tensor (a view). */
  constructor(shape: Shape, dtype: DType, backend: Backend, storage: Storage | Tensor) {
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.backend = backend;
    if (storage instanceof Tensor) {
      storage.storageFor('view');
      this.storageRef = storage.storageRef!;
      this.storageRef.refs++;
    } else {
      this.storageRef = { storage, refs: 1 };
    }
    trackInScope(this);
  }

  get numel(): number {
    return numelOf(this.shape);
  }

  get rank(): number {
    return this.shape.length;
  }

  get device(): string {
    return this.backend.device;
  }

  get isDisposed(): boolean {
    return this.storageRef === null;
  }

  /** The storage, for an op that is about to read it; throws if the tensor was disposed. */
  storageFor(op: string): Storage {
    if (this.storageRef === null) {
      throw new DisposedError(`${op}: tensor #${this.id} of shape ${fmtShape(this.shape)} was used after dispose()`);
    }
    return this.storageRef.storage;
  }

  /** Release this tensor's hold on its storage (freed when no view shares it). Idempotent. Does not touch `grad`. */
  dispose(): void {
    if (this.storageRef === null) return;
    if (--this.storageRef.refs === 0) this.backend.free(this.storageRef.storage);
    this.storageRef = null;
    this.gradFn = null;
  }

  /** A view of the same data that is cut from the tape (no gradient flows through it). */
  detach(): Tensor {
    return new Tensor(this.shape, this.dtype, this.backend, this);
  }

  /** Take this tensor out of every open `tidy` scope so that it outlives them. */
  keep(): this {
    for (const scope of scopes) scope.delete(this);
    return this;
  }

  /** Copy the values to the host, blocking until queued work is done. */
  toArraySync(): HostArray {
    return this.backend.readSync(this.storageFor('toArraySync'));
  }

  /** Copy the values to the host without blocking the event loop. */
  data(): Promise<HostArray> {
    return this.backend.read(this.storageFor('data'));
  }

  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    return scalarOf(this, await this.data());
  }

  itemSync(): number {
    return scalarOf(this, this.toArraySync());
  }

  toString(): string {
    return `Tensor(${fmtShape(this.shape)}, ${this.dtype}, ${this.backend.name}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }
}

function scalarOf(t: Tensor, values: HostArray): number {
  if (values.length !== 1) throw new ShapeError(`item: tensor of shape ${fmtShape(t.shape)} has ${values.length} elements, not 1`);
  return values[0];
}

export function numelOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

// ---- memory scopes -------------------------------------------------------------------------

const scopes: Set<Tensor>[] = [];

function trackInScope(t: Tensor): void {
  scopes[scopes.length - 1]?.add(t);
}

function collectTensors(value: unknown, into: Set<Tensor>, depth = 0): void {
  if (value instanceof Tensor) into.add(value);
  else if (depth < 4 && Array.isArray(value)) for (const v of value) collectTensors(v, into, depth + 1);
  else if (depth < 4 && value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collectTensors(v, into, depth + 1);
  }
}

/**
 * Run `fn` and dispose every tensor it created, except the tensors it returns (directly, or inside
 * arrays and plain objects), which move to the enclosing scope. `fn` must be synchronous.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } finally {
    scopes.pop();
  }
  if (result instanceof Promise) throw new TypeError('tidy: fn must be synchronous; await outside tidy()');
  const kept = new Set<Tensor>();
  collectTensors(result, kept);
  for (const t of scope) {
    if (kept.has(t)) trackInScope(t);
    else t.dispose();
  }
  return result;
}

/**
 * Run `fn` and hand back, undisposed, every tensor it created: for work whose tensors must
 * outlive a lexical scope but not the caller's bookkeeping (a pipeline stage keeps a
 * micro-batch's forward alive until its backward, then disposes `created`). `fn` must be synchronous.
 */
export function captureScope<T>(fn: () => T): { result: T; created: Set<Tensor> } {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  try {
    return { result: fn(), created: scope };
  } finally {
    scopes.pop();
  }
}

/** Dispose tensors given directly or inside arrays/objects. */
export function dispose(value: unknown): void {
  const all = new Set<Tensor>();
  collectTensors(value, all);
  for (const t of all) t.dispose();
}

// ---- gradient mode -------------------------------------------------------------------------

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Run `fn` without recording ops on the tape (inference, optimizer updates, backward rules). */
export function noGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}
