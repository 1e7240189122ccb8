/**
 * CUDA parity against the CPU reference, without vitest (so it bundles for the GPU machine and
 * also runs under vitest in test/kernels/cuda-ops.test.ts):
 *  - opParity: every case of test/kernels/op-cases.ts (every op, odd/broadcast/empty shapes)
 *    in f32 on CUDA vs the reference in f64: values and the gradients of a probe loss.
 *  - randomParity: each op family at random shapes (seeded), f32 values and gradients.
 *  - bf16Parity: the bf16 kernel variants at random shapes, called directly on bf16 storages,
 *    against the reference on the same bf16-rounded inputs.
 * Tolerances: f32 cases pass element-wise with the op suite's f32 tolerance (|Δ| ≤ 2e-5 +
 * 2e-4·|ref|, what the CPU f32 backends are held to; a flat 1e-5 relative bound fails even the CPU
 * backend on cancelling gradients such as rmsNorm over n = 1) and report the error relative to
 * the tensor's largest |ref|; bf16 cases must be within 1e-2 of the tensor's largest |ref|.
 */
import type { Backend, HostArray, Storage } from '../kernels/backend.js';
import type { DType } from '../kernels/dtype.js';
import { roundToBf16 } from '../kernels/dtype.js';
import * as K from '../kernels/index.js';
import { Generator, Tensor, referenceBackend, tensor, tidy } from '../kernels/index.js';
import type { OpCase } from '../test/kernels/op-cases.js';
import { OP_CASES } from '../test/kernels/op-cases.js';
import { hostValues, isIntInput, seedOf } from '../test/kernels/inputs.js';
import type { InputSpec } from '../test/kernels/inputs.js';

export interface ParityResult {
  name: string;
  ok: boolean;
  /** max |Δ| / max |ref| over all outputs and gradients */
  relErr: number;
  detail?: string;
}

const F32_TOL = { atol: 2e-5, rtol: 2e-4 };
const BF16_REL = 1e-2;

const isInt = isIntInput;

/** Values and probe-loss gradients of `fn` on one backend. */
function run(fn: (...xs: Tensor[]) => Tensor, specs: InputSpec[], values: number[][], backend: Backend, dtype: DType, seed: number, withGrad: boolean): HostArray[] {
  const inputs = specs.map((s, i) => {
    const t = tensor(values[i]!, s.shape, { backend, dtype: isInt(s) ? 'i32' : dtype }).keep();
    if (withGrad && !isInt(s) && s.grad !== false) t.requiresGrad = true;
    return t;
  });
  try {
    return tidy(() => {
      const out = fn(...inputs);
      const result: HostArray[] = [out.toArraySync()];
      if (!out.requiresGrad) return result;
      const w = tensor(hostValues({ shape: [...out.shape] }, new Generator(seed)), out.shape, { backend, dtype: out.dtype });
      K.sum(K.mul(out, w)).backward();
      for (const t of inputs) if (t.grad) result.push(t.grad.toArraySync());
      return result;
    });
  } finally {
    for (const t of inputs) {
      t.grad?.dispose();
      t.dispose();
    }
  }
}

/**
 * Compare output lists. With `tol`, ok means every element is within it (the op suite's rule);
 * without, ok means the error relative to the tensor's largest |ref| is ≤ BF16_REL. relErr is
 * reported either way (the scale is floored at 1e-6 so all-zero gradients do not divide by 0).
 */
function compare(got: HostArray[], want: HostArray[], tol: { atol: number; rtol: number } | null): { ok: boolean; relErr: number; detail?: string } {
  if (got.length !== want.length) return { ok: false, relErr: Infinity, detail: `${got.length} outputs, expected ${want.length}` };
  let worst = 0, detail: string | undefined;
  for (let o = 0; o < want.length; o++) {
    const g = got[o]!, w = want[o]!;
    if (g.length !== w.length) return { ok: false, relErr: Infinity, detail: `output ${o}: length ${g.length}, expected ${w.length}` };
    let scale = 0;
    for (let i = 0; i < w.length; i++) if (Number.isFinite(w[i]!)) scale = Math.max(scale, Math.abs(w[i]!));
    for (let i = 0; i < w.length; i++) {
      const e = w[i]!, a = g[i]!;
      if (!Number.isFinite(e)) {
        if (!(Object.is(a, e) || (Number.isNaN(a) && Number.isNaN(e)))) {
          detail ??= `output ${o} [${i}]: expected ${e}, got ${a}`;
          worst = Infinity;
        }
        continue;
      }
      const err = Math.abs(a - e) / Math.max(scale, 1e-6);
      if (!(err <= worst)) worst = Number.isNaN(err) ? Infinity : Math.max(worst, err);
      if (tol && !(Math.abs(a - e) <= tol.atol + Math.abs(e) * tol.rtol)) detail ??= `output ${o} [${i}]: expected ${e}, got ${a}`;
    }
  }
  return { ok: detail === undefined && (tol !== null || worst <= BF16_REL), relErr: worst, detail };
}

function caseParity(name: string, c: OpCase, cuda: Backend, nan = false): ParityResult {
  const seed = seedOf(name);
  const gen = new Generator(seed);
  const values = c.inputs.map((s) => hostValues(s, gen));
  if (nan) values[0]![0] = NaN;
  try {
    // As the op suite: NaN variants compare forward values only.
    const want = run(c.fn, c.inputs, values, referenceBackend, 'f64', seed, !nan);
    const got = run(c.fn, c.inputs, values, cuda, 'f32', seed, !nan);
    return { name, ...compare(got, want, F32_TOL) };
  } catch (err) {
    return { name, ok: false, relErr: Infinity, detail: `${(err as Error).name}: ${(err as Error).message}` };
  }
}

/** Every op-suite case (and its NaN variant where the suite has one) on CUDA. */
export function opParity(cuda: Backend): ParityResult[] {
  const results: ParityResult[] = [];
  for (const [op, cases] of Object.entries(OP_CASES)) {
    for (const c of cases) {
      results.push(caseParity(`${op} ${c.label}`, c, cuda));
      if (c.nan) results.push(caseParity(`${op} ${c.label} NaN`, c, cuda, true));
    }
  }
  return results;
}

const n = (shape: number[], scale = 1): InputSpec => ({ shape, init: { kind: 'normal', scale } });

/** Random shapes per op family (fixed seed, so the shapes are the same every run). */
export function randomCases(seed = 1234): [string, OpCase][] {
  const g = new Generator(seed);
  const r = (lo: number, hi: number): number => lo + g.int(hi - lo + 1);
  const cases: [string, OpCase][] = [];
  for (let k = 0; k < 3; k++) {
    const rows = r(1, 70), cols = r(1, 3000), V = r(50, 5000), B = r(1, 3), Hkv = r(1, 3), grp = r(1, 3), T = r(1, 80), D = 2 * r(4, 64);
    const S = T + r(0, 20), C = r(1, 200), M = r(1, 130), N = r(1, 130), Kd = r(1, 300), window = k === 2 ? r(1, 16) : 0;
    cases.push(
      [`softmax [${rows},${cols}]`, { label: '', inputs: [n([rows, cols], 3)], fn: (x) => K.softmax(x) }],
      [`logSoftmax [${rows},${cols}]`, { label: '', inputs: [n([rows, cols], 3)], fn: (x) => K.logSoftmax(x) }],
      [`tokenLogprobs [${rows},${V}]`, {
        label: '', inputs: [n([rows, V], 3), { shape: [rows], init: { kind: 'ids', vocab: V, ignore: -100 } }],
        fn: (x, t) => K.tokenLogprobs(x, t),
      }],
      [`rmsNorm [${rows},${cols}]`, { label: '', inputs: [n([rows, cols]), n([cols])], fn: (x, w) => K.rmsNorm(x, w, 1e-5) }],
      [`layerNorm [${rows},${cols}]`, { label: '', inputs: [n([rows, cols]), n([cols]), n([cols])], fn: (x, w, b) => K.layerNorm(x, w, b, 1e-5) }],
      [`matmul [${B},${M},${Kd}]x[${Kd},${N}]`, { label: '', inputs: [n([B, M, Kd]), n([Kd, N])], fn: (a, b) => K.matmul(a, b) }],
      [`matmul^T [${M},${Kd}]x[${N},${Kd}]ᵀ`, { label: '', inputs: [n([M, Kd]), n([N, Kd])], fn: (a, b) => K.matmul(a, b, { transB: true }) }],
      [`sum axis0 [${rows},${cols}]`, { label: '', inputs: [n([rows, cols])], fn: (x) => K.sum(x, 0) }],
      [`embedding [${C}]→[${V},${D}]`, {
        label: '', inputs: [n([V, D]), { shape: [C], init: { kind: 'ids', vocab: Math.min(V, 7) } }], fn: (w, ids) => K.embedding(w, ids),
      }],
      [`attention B${B} H${Hkv * grp}/${Hkv} T${T} S${S} D${D} window ${window}`, {
        label: '', inputs: [n([B, Hkv * grp, T, D]), n([B, Hkv, S, D]), n([B, Hkv, S, D]), { shape: [B, S], init: { kind: 'mask' }, grad: false }],
        fn: (q, kk, v, m) => K.attention(q, kk, v, { causal: true, mask: m, window }),
      }],
    );
  }
  return cases;
}

export function randomParity(cuda: Backend): ParityResult[] {
  return randomCases().map(([name, c]) => caseParity(`random ${name}`, c, cuda));
}

// ---- bf16 kernel variants, called on storages ----

function storageOf(backend: Backend, dtype: DType, values: number[]): Storage {
  const s = backend.alloc(dtype, values.length);
  backend.write(s, values);
  return s;
}

/** One bf16 kernel check: the same kernel on the reference (f64 storages of the bf16-rounded inputs) and on cuda (bf16). */
function bf16Check(cuda: Backend, name: string, inputs: { values: number[]; int?: boolean; f32?: boolean }[], outSizes: { n: number; f32?: boolean }[],
  call: (k: typeof referenceBackend.kernels, s: Storage[]) => void): ParityResult {
  const round = (v: number[]): number[] => v.map(roundToBf16);
  const ref: Storage[] = [], dev: Storage[] = [];
  try {
    for (const inp of inputs) {
      const vals = inp.int || inp.f32 ? inp.values : round(inp.values);
      ref.push(storageOf(referenceBackend, inp.int ? 'i32' : 'f64', vals));
      dev.push(storageOf(cuda, inp.int ? 'i32' : inp.f32 ? 'f32' : 'bf16', vals));
    }
    for (const o of outSizes) {
      ref.push(referenceBackend.alloc('f64', o.n));
      dev.push(cuda.alloc(o.f32 ? 'f32' : 'bf16', o.n));
    }
    call(referenceBackend.kernels, ref);
    call(cuda.kernels, dev);
    const outs = (list: Storage[], b: Backend): HostArray[] => list.slice(inputs.length).map((s) => b.readSync(s));
    return { name: `bf16 ${name}`, ...compare(outs(dev, cuda), outs(ref, referenceBackend), null) };
  } catch (err) {
    return { name: `bf16 ${name}`, ok: false, relErr: Infinity, detail: `${(err as Error).name}: ${(err as Error).message}` };
  } finally {
    for (const s of ref) referenceBackend.free(s);
    for (const s of dev) cuda.free(s);
  }
}

export function bf16Parity(cuda: Backend, seed = 99): ParityResult[] {
  const g = new Generator(seed);
  const vals = (count: number, scale = 1): number[] => Array.from({ length: count }, () => g.normal() * scale);
  const R = 37, C = 1000, V = 3001, B = 2, H = 4, G = 2, T = 33, D = 64;
  const ids = Array.from({ length: R }, () => g.int(V));
  return [
    bf16Check(cuda, 'unary gelu', [{ values: vals(R * C) }], [{ n: R * C }], (k, s) => k.unary!('gelu', s[0]!, s[1]!, R * C)),
    bf16Check(cuda, 'binary mul broadcast', [{ values: vals(R * C) }, { values: vals(C) }], [{ n: R * C }],
      (k, s) => k.binary!('mul', s[0]!, s[1]!, s[2]!, [R, C], [C, 1], [0, 1])),
    bf16Check(cuda, 'softmax', [{ values: vals(R * C, 3) }], [{ n: R * C }], (k, s) => k.softmax!(s[0]!, s[1]!, R, C)),
    bf16Check(cuda, 'tokenLogprobs', [{ values: vals(R * V, 3) }, { values: ids, int: true }], [{ n: R, f32: true }, { n: R, f32: true }],
      (k, s) => k.tokenLogprobs!(s[0]!, s[1]!, s[2]!, s[3]!, R, V, -100)),
    bf16Check(cuda, 'rmsNorm', [{ values: vals(R * C) }, { values: vals(C) }], [{ n: R * C }, { n: R, f32: true }],
      (k, s) => k.rmsNorm!(s[0]!, s[1]!, s[2]!, s[3]!, R, C, 1e-5)),
    bf16Check(cuda, 'swiglu', [{ values: vals(R * C) }, { values: vals(R * C) }], [{ n: R * C }], (k, s) => k.swiglu!(s[0]!, s[1]!, s[2]!, R * C)),
    bf16Check(cuda, 'rope', [{ values: vals(B * H * T * D) }, { values: vals(T * D / 2) }, { values: vals(T * D / 2) }], [{ n: B * H * T * D }],
      (k, s) => k.rope!(s[0]!, s[1]!, s[2]!, s[3]!, B, H, T, D, false, false)),
    bf16Check(cuda, 'matmul (cuBLASLt, fp32 accumulate)', [{ values: vals(R * C) }, { values: vals(C * 65) }], [{ n: R * 65 }],
      (k, s) => k.matmul!(s[0]!, s[1]!, s[2]!, 1, R, 65, C, false, false, 0, 0)),
    bf16Check(cuda, 'attention causal GQA', [{ values: vals(B * H * T * D) }, { values: vals(B * G * T * D) }, { values: vals(B * G * T * D) }],
      [{ n: B * H * T * D }, { n: B * H * T, f32: true }],
      (k, s) => k.attention!(s[0]!, s[1]!, s[2]!, null, s[3]!, s[4]!, B, H, G, T, T, D, 1 / Math.sqrt(D), true, 0)),
  ];
}
