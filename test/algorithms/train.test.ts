/**
 * Training steps on the tiny fixture model: micro-batch × accumulation ≡ one large batch, SFT
 * lowers held-out loss, DPO learns a synthetic preference on held-out pairs, a NaN loss stops
 * the run with a clear error.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { trainerSchema } from '../../algorithms/config/common.js';
import type { PreferenceExample } from '../../algorithms/data/preference.js';
import type { SftExample } from '../../algorithms/data/sft.js';
import { NonFiniteLossError } from '../../algorithms/errors.js';
import { dpoEvaluate, dpoStep, preferenceLogps, sftEvaluate, sftStep } from '../../algorithms/train/steps.js';
import type { TrainContext } from '../../algorithms/train/steps.js';
import { AdamW } from '../../kernels/index.js';
import type { CausalLM } from '../../models/causal-lm.js';
import { loadPretrained } from '../../models/pretrained.js';
import { Tokenizer } from '../../models/tokenizer.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const fixture = path.join(root, 'models/fixtures/tiny-llama');
const tok = Tokenizer.fromDir(fixture);
const sentences: string[] = JSON.parse(readFileSync(path.join(path.dirname(createRequire(import.meta.url).resolve('nlp-corpus')), '../../builds/doc-7.json'), 'utf8'));

/** Questions about held-out sentences, all answered in one house style that SFT has to learn. */
function sftData(from: number, n: number): SftExample[] {
  return sentences.slice(from, from + n).map((s) => {
    const p = tok.encode(`Q: ${s.slice(0, 30)}\nA:`, { addSpecialTokens: false }), r = tok.encode(' Sure, here it is.', { addSpecialTokens: false });
    return { ids: [...p, ...r], lossMask: [...p.map(() => 0), ...r.map(() => 1)] };
  });
}

function context(model: CausalLM, over: Partial<ReturnType<typeof trainerSchema.parse>>): TrainContext {
  const trainer = trainerSchema.parse({ warmupSteps: 0, ...over });
  return { model, trainer, seed: 3, opt: new AdamW(model.parameters(), { lr: trainer.lr, beta1: trainer.beta1, beta2: trainer.beta2, weightDecay: trainer.weightDecay }) };
}

describe('training steps', () => {
  it('micro-batch × accumulation gives the same step as one large batch', async () => {
    const data = sftData(0, 16);
    const run = async (mbs: number) => {
      const model = await loadPretrained(fixture);
      const ctx = context(model, { globalBatchSize: 8, microBatchSize: mbs, lr: 1e-3, minLr: 1e-3, maxSteps: 2 });
      const m = [await sftStep(ctx, data, 0), await sftStep(ctx, data, 1)];
      const w = model.parameters()[3].toArraySync();
      model.dispose();
      return { m, w };
    };
    const big = await run(8), small = await run(2);
    expect(small.m[0].loss).toBeCloseTo(big.m[0].loss, 5);
    expect(small.m[1].loss).toBeCloseTo(big.m[1].loss, 5);
    expect(small.m[0].gradNorm).toBeCloseTo(big.m[0].gradNorm, 4);
    Array.from(small.w).forEach((x, i) => expect(x).toBeCloseTo(big.w[i], 5));
  });

  it('SFT lowers the held-out loss from ≈ 2.1 to below 0.5 nats/token in 30 steps', async () => {
    const model = await loadPretrained(fixture);
    const train = sftData(100, 64), valid = sftData(300, 16);
    const ctx = context(model, { globalBatchSize: 8, microBatchSize: 8, lr: 1e-3, minLr: 1e-4, maxSteps: 30 });
    const before = await sftEvaluate(model, valid, 8);
    for (let s = 0; s < 30; s++) await sftStep(ctx, train, s);
    const after = await sftEvaluate(model, valid, 8);
    expect(before).toBeGreaterThan(1.5);
    expect(after).toBeLessThan(0.5);
    model.dispose();
  });

  it('DPO learns to prefer lower-case answers: held-out reward accuracy ≥ 0.9', async () => {
    const model = await loadPretrained(fixture);
    const pairs = (from: number, n: number): PreferenceExample[] => sentences.slice(from, from + n).map((s) => {
      const p = tok.encode('Answer: ', { addSpecialTokens: false });
      const row = (text: string) => {
        const r = tok.encode(text, { addSpecialTokens: false });
        return { ids: [...p, ...r], lossMask: [...p.map(() => 0), ...r.map(() => 1)] };
      };
      const text = s.slice(0, 24);
      return { chosen: row(text.toLowerCase()), rejected: row(text.toUpperCase()), chosenReward: 1, rejectedReward: 0 };
    });
    const train = pairs(500, 64), valid = pairs(700, 32);
    const o = { beta: 0.2, loss: 'dpo' as const, averageLogProbs: false };
    const refTrain = await preferenceLogps(model, train, false, 8), refValid = await preferenceLogps(model, valid, false, 8);
    const ctx = context(model, { globalBatchSize: 8, microBatchSize: 4, lr: 2e-3, minLr: 2e-4, maxSteps: 24 });
    const before = dpoEvaluate(ctx, valid, refValid, o);
    for (let s = 0; s < 24; s++) await dpoStep(ctx, train, refTrain, o, s);
    const after = dpoEvaluate(ctx, valid, refValid, o);
    // Before any update ρ_c ≈ ρ_r ≈ 0 (up to rounding between batchings): no preference yet.
    expect(before.metrics.accuracy).toBeLessThan(0.6);
    expect(after.metrics.accuracy).toBeGreaterThanOrEqual(0.9);
    expect(after.loss).toBeLessThan(before.loss);
    model.dispose();
  });

  it('a NaN loss stops training with the step in the message', async () => {
    const model = await loadPretrained(fixture);
    const w = model.parameters()[0];
    const values = Float32Array.from(w.toArraySync());
    values.fill(NaN, 0, values.length);
    w.backend.write(w.storageFor('test'), values);
    const ctx = context(model, { globalBatchSize: 4, microBatchSize: 4, maxSteps: 5 });
    await expect(sftStep(ctx, sftData(0, 8), 0)).rejects.toThrow(NonFiniteLossError);
    await expect(sftStep(ctx, sftData(0, 8), 0)).rejects.toThrow(/loss is NaN at step 1; lower trainer\.lr/);
    model.dispose();
  });
});
