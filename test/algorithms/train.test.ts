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
import type { PreferenceExample } from '../../algorithms/data/preference.js';
import type { SftExample } from '../../algorithms/data/sft.js';
import { NonFiniteLossError } from '../../algorithms/errors.js';
import { dpo, preferenceLogps } from '../../algorithms/recipes/dpo.js';
import type { DpoConfig } from '../../algorithms/recipes/dpo.js';
import { parseRecipeConfig } from '../../algorithms/recipes/index.js';
import { sft, sftEvaluate } from '../../algorithms/recipes/sft.js';
import type { SftConfig } from '../../algorithms/recipes/sft.js';
import type { StepContext } from '../../algorithms/recipes/types.js';
import { arraySource, optimizerStep } from '../../algorithms/train/runner.js';
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

function context<C extends SftConfig | DpoConfig>(recipe: 'sft' | 'dpo', model: CausalLM, over: Record<string, unknown>): StepContext<C> {
  const config = parseRecipeConfig(recipe, { model: fixture, data: { train: 'unused.jsonl' }, trainer: { warmupSteps: 0, ...over } }) as C;
  const trainer = config.trainer;
  return { model, trainer, config, seed: 3, opt: new AdamW(model.parameters(), { lr: trainer.lr, beta1: trainer.beta1, beta2: trainer.beta2, weightDecay: trainer.weightDecay }) };
}
const sftStep = (ctx: StepContext<SftConfig>, data: SftExample[], step: number) => optimizerStep(sft, ctx, arraySource(data), null, step);

describe('training steps', () => {
  it('micro-batch × accumulation gives the same step as one large batch', async () => {
    const data = sftData(0, 16);
    const run = async (mbs: number) => {
      const model = await loadPretrained(fixture);
      const ctx = context<SftConfig>('sft', model, { globalBatchSize: 8, microBatchSize: mbs, lr: 1e-3, minLr: 1e-3, maxSteps: 2 });
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
    const ctx = context<SftConfig>('sft', model, { globalBatchSize: 8, microBatchSize: 8, lr: 1e-3, minLr: 1e-4, maxSteps: 30 });
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
    const refTrain = arraySource(await preferenceLogps(model, train, false, 8)), refValid = arraySource(await preferenceLogps(model, valid, false, 8));
    const ctx = context<DpoConfig>('dpo', model, { globalBatchSize: 8, microBatchSize: 4, lr: 2e-3, minLr: 2e-4, maxSteps: 24 });
    const before = await dpo.evaluate(ctx, arraySource(valid), refValid);
    for (let s = 0; s < 24; s++) await optimizerStep(dpo, ctx, arraySource(train), refTrain, s);
    const after = await dpo.evaluate(ctx, arraySource(valid), refValid);
    expect(after.metrics.accuracy).toBeGreaterThanOrEqual(0.9);
    expect(after.metrics.margin).toBeGreaterThan(before.metrics.margin + 0.5);
    expect(after.loss).toBeLessThan(before.loss);
    model.dispose();
  });

  it('a NaN loss stops training with the step in the message', async () => {
    const model = await loadPretrained(fixture);
    const w = model.parameters()[0];
    const values = Float32Array.from(w.toArraySync());
    values.fill(NaN, 0, values.length);
    w.backend.write(w.storageFor('test'), values);
    const ctx = context<SftConfig>('sft', model, { globalBatchSize: 4, microBatchSize: 4, maxSteps: 5 });
    await expect(sftStep(ctx, sftData(0, 8), 0)).rejects.toThrow(NonFiniteLossError);
    await expect(sftStep(ctx, sftData(0, 8), 0)).rejects.toThrow(/loss is NaN at step 1; lower trainer\.lr/);
    model.dispose();
  });
});
