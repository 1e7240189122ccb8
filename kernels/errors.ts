/**
 * Typed engine errors. Each message names the op and the shapes involved, so that a
 * failing line in a model says what went wrong without a debugger.
 * Native errors carry a `name` that `fromNativeError` maps to these classes.
 */
export type Shape = readonly number[];

export function fmtShape(shape: Shape): string {
  return `[${shape.join(',')}]`;
}

export class AlignerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Shapes that an op cannot combine. */
export class ShapeError extends AlignerError {}
/** An input of the wrong element type. */
export class DTypeError extends AlignerError {}
/** A tensor used after `dispose()`. */
export class DisposedError extends AlignerError {}
/** An op that the tensor's backend does not implement (see the backend's skip list). */
export class UnsupportedBackendError extends AlignerError {}
/** Inputs that live on different backends or devices. */
export class DeviceMismatchError extends AlignerError {}
/** An index (token id, target) outside its valid range. */
export class IndexError extends AlignerError {}
/** Allocation failed; the message gives the requested bytes. */
export class OutOfMemoryError extends AlignerError {}
/** A failure inside native code that has no more specific class. */
export class NativeError extends AlignerError {}
/** A CUDA call on a machine without a usable GPU; the message says what is missing (library, driver, device). */
export class NoGpuError extends AlignerError {}
/** A CUDA driver, cuBLASLt or NVRTC call that failed on a working GPU; the message has the CUDA error. */
export class CudaError extends AlignerError {}
/** A collective that cannot complete: a rank that never arrived or exited (named), a broken or closed group. */
export class ProcessGroupError extends AlignerError {}

const NATIVE_ERROR_CLASSES: Record<string, new (m: string) => AlignerError> = {
  ShapeError,
  DTypeError,
  IndexError,
  OutOfMemoryError,
  NativeError,
  NoGpuError,
  CudaError,
  ProcessGroupError,
};

/** Convert an error thrown by the addon (plain Error with `name` set in C++) into its typed class. */
export function fromNativeError(err: unknown): unknown {
  if (err instanceof Error && !(err instanceof AlignerError)) {
    const cls = NATIVE_ERROR_CLASSES[err.name];
    if (cls) return new cls(err.message);
  }
  return err;
}
