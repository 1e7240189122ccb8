/**
 * SteerLM 2.0's log P(a|x,y) from regression predictions (algorithms/pipelines/attributes.ts),
 * against numbers worked out by hand.
 */
import { describe, expect, it } from 'vitest';
import { thrownMessage } from '../../helpers/errors.js';
import { attributeLogProb, levelLogProbs } from '../../../algorithms/pipelines/attributes.js';
import { ConfigError } from '../../../algorithms/errors.js';

const NAMES = ['helpfulness', 'correctness', 'coherence', 'complexity', 'verbosity'];

describe('levelLogProbs', () => {
  it('is a discretised Gaussian around the prediction', () => {
    // μ = 2, σ = 1: scores −(v−2)²/2 = −2, −0.5, 0, −0.5, −2;
    // Z = 1 + 2e^−0.5 + 2e^−2 = 2.4837317…, log Z = 0.9097622…
    const lp = levelLogProbs(2);
    expect(lp[2]).toBeCloseTo(-0.909762221811897, 12);
    expect(lp[0]).toBeCloseTo(-2.909762221811897, 12);
    expect(lp[1]).toBeCloseTo(-1.409762221811897, 12);
    expect(lp[3]).toBeCloseTo(lp[1], 12);
    expect(lp.reduce((s, x) => s + Math.exp(x), 0)).toBeCloseTo(1, 12);
  });

  it('follows levels and sigma', () => {
    // μ = 1, L = 2: scores −0.5, 0, −0.5; log P(2) = −0.5 − log(1 + 2e^−0.5) = −1.2943768…
    expect(levelLogProbs(1, { levels: 2 })).toHaveLength(3);
    expect(levelLogProbs(1, { levels: 2 })[2]).toBeCloseTo(-1.2943767694176431, 12);
    // μ = 2, σ = 0.5: scores −2(v−2)² = −8, −2, 0, −2, −8; log P(2) = −log(1 + 2e^−2 + 2e^−8) = −0.2400726…
    expect(levelLogProbs(2, { sigma: 0.5 })[2]).toBeCloseTo(-0.2400726356859332, 12);
  });
});

describe('attributeLogProb', () => {
  it('sums the log-probabilities of the target levels', () => {
    // helpfulness μ 3.2 → level 4: scores −5.12, −2.42, −0.72, −0.02, −0.32, log Z = 0.8276770…,
    // so −0.32 − 0.8276770 = −1.1476770; verbosity μ 0.5 → level 0: −0.125 − 0.7588276 = −0.8838276.
    const predicted = [3.2, 3.9, 4.0, 1.5, 0.5];
    expect(attributeLogProb(predicted, NAMES, { helpfulness: 4 })).toBeCloseTo(-1.1476770274920087, 12);
    expect(attributeLogProb(predicted, NAMES, { helpfulness: 4, verbosity: 0 })).toBeCloseTo(-2.0315045913616134, 12);
    expect(attributeLogProb(predicted, NAMES, { verbosity: 1 })).toBeCloseTo(-0.8838275638696047, 12);
  });

  it('is log 1 = 0 for an empty target', () => {
    expect(attributeLogProb([1, 2], ['a', 'b'], {})).toBe(0);
  });

  it('rounds and clamps target levels, and lets predictions beyond the scale pile on the end', () => {
    const predicted = [3.2, 0, 0, 0, 0];
    expect(attributeLogProb(predicted, NAMES, { helpfulness: 3.6 })).toBeCloseTo(-1.1476770274920087, 12);
    expect(attributeLogProb(predicted, NAMES, { helpfulness: 9 })).toBeCloseTo(-1.1476770274920087, 12);
    expect(attributeLogProb(predicted, NAMES, { helpfulness: 2.6 })).toBeCloseTo(-0.8476770274920089, 12);
    // μ 6: scores −18, −12.5, −8, −4.5, −2; log P(4) = −0.0812033…
    expect(attributeLogProb([6], ['quality'], { quality: 4 })).toBeCloseTo(-0.08120332600475333, 12);
  });

  it('names the attribute that is not predicted, and other mistakes', () => {
    const err = (fn: () => unknown) => thrownMessage(fn, ConfigError);
    expect(err(() => attributeLogProb([1, 2], ['a', 'b'], { humor: 2 }))).toBe(
      'target attribute "humor" is not one the attribute model predicts (a, b); remove it from the target or rename it',
    );
    expect(err(() => attributeLogProb([1], ['a', 'b'], {}))).toBe('the attribute model gave 1 predictions for 2 attribute names (a, b): they must match one to one');
    expect(err(() => attributeLogProb([1, 2], ['a', 'a'], {}))).toBe('attribute name "a" appears twice in the attribute model\'s names (a, a)');
    expect(err(() => attributeLogProb([NaN], ['a'], { a: 1 }))).toBe('the attribute model\'s prediction for "a" is NaN, not a finite number');
    expect(err(() => attributeLogProb([1], ['a'], { a: NaN }))).toBe('target attribute "a" is NaN; give a level 0-4');
    expect(err(() => attributeLogProb([1], ['a'], {}, { levels: 0 }))).toBe('attribute levels must be a whole number ≥ 1 (levels are 0…levels), got 0');
    expect(err(() => attributeLogProb([1], ['a'], {}, { sigma: 0 }))).toBe('attribute sigma must be a positive number, got 0');
  });
});
