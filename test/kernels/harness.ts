/**
 * Shared test machinery for ops: seeded inputs, backends under test, dtype-aware comparison
 * (|ref − out| ≤ atol + |ref|·rtol, non-finite values must match exactly), and f64 gradient checks.
 */
import { afterEach, beforeEach, expect } from 'vitest';
import type { Backend, HostArray } from '../../kernels/backend.js';
import type { DType } from '../../kernels/dtype.js';
import { Generator, Tensor, mul as mulT, referenceBackend, sum as sumAll, tensor, tidy } from '../../kernels/index.js';
import { kernelIsa, kernelIsas, nativeAvailable, nativeBackend, setKernelIsa } from '../../kernels/native-backend.js';
import type { KernelIsa } from '../../kernels/native-backend.js';

export { hostValues, isIntInput, seedOf } from './inputs.js';
export type { InputKind, InputSpec } from './inputs.js';
import { hostValues, isIntInput } from './inputs.js';
import type { InputSpec } from './inputs.js';

export interface BackendUnderTest {
  name: string;
  backend: Backend;
  dtype: DType;
  tol: { atol: number; rtol: number };
  /** The native kernel build this entry runs on; none for the reference. */
  isa?: KernelIsa;
  /** Runs fn with this backend set up (its kernel build active), then restores the previous one. */
  run<T>(fn: () => T): T;
}

/** Runs fn on one native kernel build, then switches back to the one that was active. */
export function withKernelIsa<T>(isa: KernelIsa, fn: () => T): T {
  const before = kernelIsa();
  setKernelIsa(isa);
  try {
    return fn();
  } finally {
    setKernelIsa(before);
  }
}

/**
 * Every backend that can run here, in f32, compared against the reference in f64: the native
 * backend once per kernel build this CPU runs (avx512, avx2, baseline), so each op's suite covers
 * every ISA path.
 */
export function backendsUnderTest(): BackendUnderTest[] {
  const tol = { atol: 2e-5, rtol: 2e-4 };
  const list: BackendUnderTest[] = [{ name: 'reference-f32', backend: referenceBackend, dtype: 'f32', tol, run: (fn) => fn() }];
  if (nativeAvailable().ok) {
    for (const isa of kernelIsas()) {
      list.push({ name: `native-f32-${isa}`, backend: nativeBackend(), dtype: 'f32', tol, isa, run: (fn) => withKernelIsa(isa, fn) });
    }
  }
  return list;
}

/** Inside a describe block: every test in it runs on b's native kernel build, if it names one. */
export function onBackend(b: BackendUnderTest): void {
  const isa = b.isa;
  if (!isa) return;
  let before: KernelIsa | null = null;
  beforeEach(() => {
    before = kernelIsa();
    setKernelIsa(isa);
  });
  afterEach(() => {
    if (before) setKernelIsa(before);
  });
}

export function makeInputs(specs: InputSpec[], values: number[][], backend: Backend, dtype: DType, withGrad: boolean): Tensor[] {
  return specs.map((s, i) => {
    const t = tensor(values[i], s.shape, { backend, dtype: isIntInput(s) ? 'i32' : dtype }).keep();
    if (withGrad && !isIntInput(s) && s.grad !== false) t.requiresGrad = true;
    return t;
  });
}

/** Compare element by element; NaN must meet NaN and ±Inf the same infinity. */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: { atol: number; rtol: number }, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  const bad: string[] = [];
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i], a = actual[i];
    const ok = Number.isFinite(e) ? Math.abs(a - e) <= tol.atol + Math.abs(e) * tol.rtol : Object.is(a, e) || (Number.isNaN(a) && Number.isNaN(e));
    if (!ok && bad.length < 5) bad.push(`[${i}] expected ${e}, got ${a}`);
  }
  expect(bad, `${what}: first mismatches`).toEqual([]);
}

/** Weighted sum of all outputs with fixed weights: a scalar loss whose gradient exercises every output element. */
export function probeLoss(out: Tensor, gen: Generator): Tensor {
  const w = tensor(hostValues({ shape: [...out.shape] }, gen), out.shape, { backend: out.backend, dtype: out.dtype });
  return sumAll(mulT(out, w));
}

/** Forward values and, when wanted, gradients of the probe loss w.r.t. each grad input. */
export function runCase(
  fn: (...xs: Tensor[]) => Tensor, specs: InputSpec[], values: number[][], backend: Backend, dtype: DType, withGrad: boolean, probeSeed: number,
): { out: HostArray; grads: (HostArray | null)[] } {
  const inputs = makeInputs(specs, values, backend, dtype, withGrad);
  try {
    return tidy(() => {
      const out = fn(...inputs);
      const outValues = out.toArraySync();
      if (!withGrad || !out.requiresGrad) return { out: outValues, grads: inputs.map(() => null) };
      probeLoss(out, new Generator(probeSeed)).backward();
      return { out: outValues, grads: inputs.map((t) => (t.grad ? t.grad.toArraySync() : null)) };
    });
  } finally {
    for (const t of inputs) {
      t.grad?.dispose();
      t.dispose();
    }
  }
}

/**
 * Central finite differences in f64 on the reference backend against the analytic gradient of
 * the probe loss, for every element of every grad input.
 */
export function gradCheck(fn: (...xs: Tensor[]) => Tensor, specs: InputSpec[], values: number[][], probeSeed: number, what: string): void {
  const analytic = runCase(fn, specs, values, referenceBackend, 'f64', true, probeSeed).grads;
  const lossAt = (vals: number[][]): number =>
    tidy(() => {
      const inputs = makeInputs(specs, vals, referenceBackend, 'f64', false);
      return probeLoss(fn(...inputs), new Generator(probeSeed)).itemSync();
    });
  const h = 1e-6;
  specs.forEach((s, i) => {
    if (isIntInput(s) || s.grad === false) return;
    expect(analytic[i], `${what}: input ${i} got no gradient`).not.toBeNull();
    const numeric = values[i].map((_, j) => {
      const plus = values.map((v) => [...v]), minus = values.map((v) => [...v]);
      plus[i][j] += h;
      minus[i][j] -= h;
      return (lossAt(plus) - lossAt(minus)) / (2 * h);
    });
    expectClose(analytic[i]!, numeric, { atol: 1e-6, rtol: 1e-5 }, `${what}: d/d input ${i}`);
  });
}
