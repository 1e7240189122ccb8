/**
 * Continuous batching: every row equals the row generated alone (greedy and sampled with its seed),
 * whatever the batch size and however often slots are refilled and the cache compacted; rows that
 * end early free their slot for the queue; EOS and stop strings behave as in generate().
 */
import { describe, expect, it, vi } from 'vitest';
import { Generator } from '../../kernels/index.js';
import { KVCache } from '../../models/causal-lm.js';
import { generateContinuous } from '../../models/continuous.js';
import { generate } from '../../models/generate.js';
import { createModel } from '../../models/pretrained.js';
import type { ModelConfig } from '../../models/config.js';

const LLAMA: ModelConfig = { family: 'llama', vocabSize: 40, hiddenSize: 32, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: 64, maxPositionEmbeddings: 64 };
const GPT2: ModelConfig = { family: 'gpt2', vocabSize: 40, nPositions: 64, hiddenSize: 32, numLayers: 2, numHeads: 4 };
// Twelve prompts of 1 to 9 tokens: with 3 slots and 8 new tokens the cursor passes the capacity
// (9 + 8 + 8 = 25) several times, so compaction and refills are exercised.
const PROMPTS = Array.from({ length: 12 }, (_, i) => Array.from({ length: 1 + ((i * 5) % 9) }, (_, j) => (i * 7 + j * 3) % 40));

describe.each([['llama', LLAMA], ['gpt2', GPT2]] as const)('continuous batching on %s', (_name, config) => {
  const model = createModel(config, { gen: new Generator(11) });

  it('greedy rows equal each row generated alone, with 1, 3 and 12 slots', async () => {
    const alone = await Promise.all(PROMPTS.map((p) => generate(model, [p], { maxNewTokens: 8, temperature: 0 })));
    const shifts = vi.spyOn(KVCache.prototype, 'shiftLeft');
    const inserts = vi.spyOn(KVCache.prototype, 'insertRow');
    for (const batchSize of [1, 3, 12]) {
      shifts.mockClear();
      inserts.mockClear();
      const c = await generateContinuous(model, PROMPTS, { maxNewTokens: 8, temperature: 0, batchSize });
      // Every prompt after the first batch was inserted into a freed slot; small batches compact the cache.
      expect(inserts).toHaveBeenCalledTimes(12 - batchSize);
      if (batchSize < 12) expect(shifts.mock.calls.length).toBeGreaterThan(0);
      c.tokens.forEach((t, i) => expect(t, `prompt ${i}, ${batchSize} slots`).toEqual(alone[i].tokens[0]));
      c.logprobs.flat().forEach((lp, k) => expect(lp).toBeCloseTo(alone.flatMap((a) => a.logprobs[0])[k], 4));
    }
    shifts.mockRestore();
    inserts.mockRestore();
  });

  it('a row sampled with its seed gives the same tokens as alone, whatever its neighbours and slot', async () => {
    const opts = { maxNewTokens: 8, temperature: 1, topK: 20, topP: 0.95 };
    const seeds = PROMPTS.map((_, i) => 100 + i);
    const alone = await Promise.all(PROMPTS.map((p, i) => generate(model, [p], { ...opts, seeds: [seeds[i]] })));
    const c = await generateContinuous(model, PROMPTS, { ...opts, seeds, batchSize: 4 });
    c.tokens.forEach((t, i) => expect(t, `prompt ${i}`).toEqual(alone[i].tokens[0]));
  });

  it('rows that end (EOS) free their slot: all prompts are served, ended rows stop at their EOS', async () => {
    const greedy = await generate(model, PROMPTS, { maxNewTokens: 8, temperature: 0 });
    const eos = greedy.tokens[0][2]; // a token some rows produce early
    const c = await generateContinuous(model, PROMPTS, { maxNewTokens: 8, temperature: 0, batchSize: 3, eosTokenIds: [eos] });
    const ref = await Promise.all(PROMPTS.map((p) => generate(model, [p], { maxNewTokens: 8, temperature: 0, eosTokenIds: [eos] })));
    c.tokens.forEach((t, i) => {
      expect(t).toEqual(ref[i].tokens[0]);
      expect(c.finishReason[i]).toBe(ref[i].finishReason[0]);
    });
    expect(c.ended.some(Boolean)).toBe(true);
  });

  it('checks its options', async () => {
    await expect(generateContinuous(model, PROMPTS, { maxNewTokens: 4, batchSize: 0 })).rejects.toThrow(/batchSize must be a positive integer/);
    await expect(generateContinuous(model, [[]], { maxNewTokens: 4, batchSize: 2 })).rejects.toThrow(/prompt 0 is empty/);
  });
});
