/**
 * The machinery shared by every op: input validation, kernel lookup on the inputs' backend,
 * output allocation and tape recording. The op table (op-table.ts) holds one `OpSpec` per op.
 */
import type { Backend, KernelName, Kernels } from './backend.js';
import type { DType } from './dtype.js';
import { DTypeError, DeviceMismatchError, UnsupportedBackendError, fmtShape, fromNativeError } from './errors.js';
import type { Shape } from './errors.js';
import { Tensor, isGradEnabled, numelOf } from './tensor.js';

/** What an op's forward can use and what its backward reads back. */
export interface OpContext<A> {
  readonly op: string;
  readonly backend: Backend;
  readonly inputs: readonly Tensor[];
  readonly attrs: A;
  /** Tensors kept for backward; disposed at once when no gradient is recorded. */
  readonly saved: Tensor[];
  output: Tensor | null;
}

export interface OpSpec<A = Record<string, never>> {
  /** Number of tensor inputs, or 'variadic'. */
  readonly arity: number | 'variadic';
  /** Kernels the forward pass calls; each backend must provide them (or list them as unsupported). */
  readonly kernels: readonly KernelName[];
  /** Kernels the backward rule calls directly (beyond other ops). */
  readonly gradKernels: readonly KernelName[];
  /** Float dtypes the op accepts for its float inputs ('any' for layout ops that also move i32/bf16). */
  readonly dtypes: 'float' | 'any';
  /** Positions of i32 inputs (ids, targets) in a 'float' op; every other input must be float. */
  readonly intInputs?: readonly number[];
  forward(ctx: OpContext<A>): Tensor;
  /** The gradient rule, composed of other ops or of explicit backward kernels. Absent = not differentiable. */
  readonly backward?: (g: Tensor, ctx: OpContext<A>, needs: readonly boolean[]) => (Tensor | null)[];
}

export function alloc(backend: Backend, shape: Shape, dtype: DType): Tensor {
  return new Tensor(shape, dtype, backend, backend.alloc(dtype, numelOf(shape)));
}

/** Look a kernel up on a backend, with the error the user should see when it is missing. */
export function kernel<K extends KernelName>(backend: Backend, name: K, op: string): Kernels[K] {
  const k = backend.kernels[name];
  if (!k) {
    const why = backend.unsupported[name] ?? 'no kernel registered';
    throw new UnsupportedBackendError(`${op}: kernel ${name} is not available on backend ${backend.name} (${why})`);
  }
  return k;
}

function describeInputs(inputs: readonly Tensor[]): string {
  return inputs.map((t) => `${fmtShape(t.shape)} ${t.dtype}`).join(', ');
}

const FLOAT_COMPUTE: ReadonlySet<DType> = new Set(['f32', 'f64']);

/** Run an op: validate, compute, and record it on the tape when a gradient is needed. */
export function apply<A>(name: string, spec: OpSpec<A>, inputs: readonly Tensor[], attrs: A): Tensor {
  if (typeof spec.arity === 'number' && inputs.length !== spec.arity) {
    throw new TypeError(`${name}: expects ${spec.arity} tensor inputs, got ${inputs.length}`);
  }
  const backend = inputs[0]!.backend;
  for (const t of inputs) {
    t.storageFor(name); // throws DisposedError
    if (t.backend !== backend) {
      throw new DeviceMismatchError(
        `${name}: inputs are on different backends (${inputs.map((x) => `${x.backend.name}:${x.device}`).join(', ')})`,
      );
    }
  }
  if (spec.dtypes === 'float') {
    const ints = spec.intInputs ?? [];
    const floats = inputs.filter((_, i) => !ints.includes(i));
    const badInt = ints.find((i) => inputs[i] && inputs[i].dtype !== 'i32');
    if (badInt !== undefined) throw new DTypeError(`${name}: input ${badInt} must be i32, got ${describeInputs([inputs[badInt]])}`);
    const bad = floats.find((t) => !FLOAT_COMPUTE.has(t.dtype) || t.dtype !== floats[0]!.dtype);
    if (bad) {
      throw new DTypeError(
        `${name}: float inputs must share one compute dtype (f32, or f64 on the reference backend); got ${describeInputs(inputs)}`,
      );
    }
    if (floats[0] && !backend.dtypes.has(floats[0].dtype)) {
      throw new UnsupportedBackendError(`${name}: dtype ${floats[0].dtype} is not supported on backend ${backend.name}`);
    }
  }
  for (const k of spec.kernels) kernel(backend, k, name);

  const ctx: OpContext<A> = { op: name, backend, inputs, attrs, saved: [], output: null };
  let out: Tensor;
  try {
    out = spec.forward(ctx);
  } catch (err) {
    throw fromNativeError(err);
  }
  ctx.output = out;
  const needs = inputs.map((t) => t.requiresGrad);
  if (spec.backward && isGradEnabled() && needs.some(Boolean)) {
    const backward = spec.backward;
    out.requiresGrad = true;
    out.gradFn = { op: name, inputs, backward: (g, need) => backward(g, ctx, need) };
  } else {
    for (const t of ctx.saved) t.dispose();
    ctx.saved.length = 0;
  }
  return out;
}
