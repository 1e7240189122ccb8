/** One suite per op: parity of values and gradients on every backend, f64 gradient check, NaN/Inf. */
import { describe, it } from 'vitest';
import { Generator, referenceBackend } from '../../kernels/index.js';
import type { OpName } from '../../kernels/index.js';
import { backendsUnderTest, expectClose, gradCheck, hostValues, isIntInput, runCase, seedOf } from './harness.js';
import { OP_CASES } from './op-cases.js';

export function describeOp(op: OpName): void {
  describe(`op ${op}`, () => {
    for (const c of OP_CASES[op]) {
      const seed = seedOf(`${op}/${c.label}`);
      const gen = new Generator(seed);
      const values = c.inputs.map((s) => hostValues(s, gen));
      const truth = () => runCase(c.fn, c.inputs, values, referenceBackend, 'f64', true, seed);

      for (const b of backendsUnderTest()) {
        it(`${c.label}: ${b.name} matches the f64 reference (values and gradients)`, () => {
          const expected = truth();
          const got = b.run(() => runCase(c.fn, c.inputs, values, b.backend, b.dtype, true, seed));
          expectClose(got.out, expected.out, b.tol, `${op} ${c.label} ${b.name} forward`);
          got.grads.forEach((g, i) => {
            if (expected.grads[i]) expectClose(g ?? [], expected.grads[i], b.tol, `${op} ${c.label} ${b.name} d/d input ${i}`);
          });
        });
      }

      const differentiable = c.inputs.some((s) => !isIntInput(s) && s.grad !== false);
      if (differentiable && c.gradCheck !== false) {
        it(`${c.label}: f64 gradient matches finite differences`, () => gradCheck(c.fn, c.inputs, values, seed, `${op} ${c.label}`));
      }

      if (c.nan) {
        for (const special of [NaN, Infinity, -Infinity]) {
          for (const b of backendsUnderTest()) {
            it(`${c.label}: ${special} in the input propagates on ${b.name} as in the reference`, () => {
              const poisoned = values.map((v) => [...v]);
              poisoned[0][0] = special;
              const expected = runCase(c.fn, c.inputs, poisoned, referenceBackend, 'f64', false, seed);
              const got = b.run(() => runCase(c.fn, c.inputs, poisoned, b.backend, b.dtype, false, seed));
              expectClose(got.out, expected.out, b.tol, `${op} ${c.label} ${b.name} with ${special}`);
            });
          }
        }
      }
    }
  });
}
