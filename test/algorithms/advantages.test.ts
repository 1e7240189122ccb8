/** The online recipes' advantages and reward shaping against hand-computed numbers. */
import { describe, expect, it } from 'vitest';
import {
  adaptKl, explainedVariance, gae, groupNormalized, rlooBaselines, tokenKl, tokenRewards, topKPerPrompt, whiten,
} from '../../algorithms/rollouts/advantages.js';

const close = (got: readonly number[], want: readonly number[], digits = 12) => {
  expect(got).toHaveLength(want.length);
  got.forEach((g, i) => expect(g).toBeCloseTo(want[i], digits));
};

describe('PPO reward shaping', () => {
  // R = 2, ℓ_old = [−1, −2, −0.5], ℓ_ref = [−1.5, −1, −0.5], β = 0.1.
  it('puts R on the last token and −β·|KL| on every token (absolute KL)', () => {
    // |KL| = [0.5, 1, 0] → r = [−0.05, −0.1, 2 − 0]
    close(tokenRewards(2, [-1, -2, -0.5], [-1.5, -1, -0.5], 0.1, true), [-0.05, -0.1, 2]);
  });
  it('uses the signed k1 estimate when absolute is off', () => {
    // KL = [0.5, −1, 0] → r = [−0.05, 0.1, 2]
    close(tokenRewards(2, [-1, -2, -0.5], [-1.5, -1, -0.5], 0.1, false), [-0.05, 0.1, 2]);
    close(tokenKl([-1, -2], [-1.5, -1], false), [0.5, -1]);
  });
  it('rejects mismatched lengths', () => {
    expect(() => tokenRewards(1, [-1], [-1, -2], 0.1, true)).toThrow(/1 old log-probs but 2/);
  });
});

describe('GAE', () => {
  it('matches the hand computation with γ = 0.9, λ = 0.8', () => {
    // r = [0, 0, 1], V = [0.5, 0.4, 0.3]
    // t=2: δ = 1 − 0.3 = 0.7,               A = 0.7
    // t=1: δ = 0.9·0.3 − 0.4 = −0.13,       A = −0.13 + 0.72·0.7   = 0.374
    // t=0: δ = 0.9·0.4 − 0.5 = −0.14,       A = −0.14 + 0.72·0.374 = 0.12928
    const { advantages, returns } = gae([0, 0, 1], [0.5, 0.4, 0.3], 0.9, 0.8);
    close(advantages, [0.12928, 0.374, 0.7]);
    close(returns, [0.62928, 0.774, 1.0]);
  });
  it('with γ = λ = 1 the advantage is the reward-to-go minus the value', () => {
    const { advantages } = gae([1, 2, 3], [0, 1, 0], 1, 1);
    close(advantages, [6, 4, 3]);
  });
});

describe('whitening', () => {
  it('uses the population mean and variance over the rows in use', () => {
    // tokens 1, 2, 3: μ = 2, σ² = 2/3; the unused row is left alone
    const s = 1 / Math.sqrt(2 / 3 + 1e-8);
    const w = whiten([[1, 2], [3], [10]], [true, true, false]);
    close(w[0], [-s, 0]);
    close(w[1], [s]);
    close(w[2], [10]);
  });
});

describe('RLOO baseline', () => {
  it('averages the other ended samples of the same prompt', () => {
    // prompt 0: r = [1, 2, 3, 4], ended [y, y, n, y]: 3 ended, Σ ended = 7
    //   b = [(7−1)/2, (7−2)/2, 7/2, (7−4)/2] = [3, 2.5, 3.5, 1.5]
    // prompt 1: one ended sample → b = r (zero advantage)
    const b = rlooBaselines([1, 2, 3, 4, 5, 6], [true, true, false, true, true, false], [0, 0, 0, 0, 1, 1]);
    close(b, [3, 2.5, 3.5, 1.5, 5, 6]);
  });
  it('with no sample ended the baseline is the reward itself', () => {
    close(rlooBaselines([1, 2], [false, false], [7, 7]), [1, 2]);
  });
});

describe('GRPO group normalisation', () => {
  it('subtracts the group mean and divides by the Bessel std plus 1e-4', () => {
    // group [1, 2, 3]: μ = 2, s = √((1 + 0 + 1)/2) = 1; group [5, 5]: s = 0 → 0/(0 + 1e-4) = 0
    close(groupNormalized([1, 5, 2, 5, 3], [0, 1, 0, 1, 0]), [-1 / 1.0001, 0, 0, 0, 1 / 1.0001]);
  });
  it('a group of one sample has zero advantage', () => {
    close(groupNormalized([3], [0]), [0]);
  });
});

describe('rejection sampling selection', () => {
  it('keeps the best sample per prompt, the earlier one on a tie', () => {
    expect(topKPerPrompt([0.1, 0.5, 0.5, 0.2], [0, 0, 0, 1], 1)).toEqual([false, true, false, true]);
    expect(topKPerPrompt([0.1, 0.5, 0.3], [0, 0, 0], 2)).toEqual([false, true, true]);
  });
});

describe('diagnostics and the KL controller', () => {
  it('explained variance is 1 for a perfect critic and 0 for a constant one at the mean', () => {
    expect(explainedVariance([1, 2, 3], [1, 2, 3])).toBeCloseTo(1, 12);
    expect(explainedVariance([2, 2, 2], [1, 2, 3])).toBeCloseTo(0, 12);
  });
  it('the adaptive controller moves β by at most 20% × n/horizon', () => {
    // KL 0.3 against a target of 0.1: error clipped to 0.2; n/horizon = 100/1000 → β·1.02
    expect(adaptKl(0.01, 0.3, 0.1, 1000, 100)).toBeCloseTo(0.0102, 14);
    // KL 0.09: error −0.1 → β·(1 − 0.01)
    expect(adaptKl(0.01, 0.09, 0.1, 1000, 100)).toBeCloseTo(0.0099, 14);
  });
});
