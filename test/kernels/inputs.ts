/**
 * Seeded test inputs for ops, without vitest, so that the GPU device bundle (bench/device-parity.ts)
 * builds the same inputs as the test suite.
 */
import type { Generator } from '../../kernels/index.js';

/** A stable 32-bit seed from a case name (FNV-1a). */
export function seedOf(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

export type InputKind =
  | { kind: 'normal'; scale?: number }
  | { kind: 'positive' } // (0.5, 2): safe for log, sqrt, div
  | { kind: 'ids'; vocab: number; ignore?: number } // i32 in [0, vocab), some = ignore when given
  | { kind: 'mask'; pZero?: number } // 0/1 values, first column always 1
  | { kind: 'const'; values: number[] };

export interface InputSpec {
  shape: number[];
  init?: InputKind;
  /** Whether the gradient check and gradient parity cover this input. Default: float inputs do. */
  grad?: boolean;
  /** An i32 input (token ids, targets); implied by init kind 'ids'. */
  int?: boolean;
}

export function hostValues(spec: InputSpec, gen: Generator): number[] {
  const n = spec.shape.reduce((p, d) => p * d, 1);
  const init = spec.init ?? { kind: 'normal' };
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    switch (init.kind) {
      case 'normal': out[i] = gen.normal() * (init.scale ?? 1); break;
      case 'positive': out[i] = 0.5 + 1.5 * gen.uniform(); break;
      case 'ids': out[i] = init.ignore !== undefined && gen.uniform() < 0.2 ? init.ignore : gen.int(init.vocab); break;
      case 'mask': out[i] = i % (spec.shape.at(-1) ?? 1) === 0 || gen.uniform() >= (init.pZero ?? 0.3) ? 1 : 0; break;
      case 'const': out[i] = init.values[i % init.values.length]; break;
    }
  }
  return out;
}

export function isIntInput(spec: InputSpec): boolean {
  return spec.int === true || spec.init?.kind === 'ids';
}
