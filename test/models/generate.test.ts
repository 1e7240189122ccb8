/** Generation: cache ≡ no cache, per-row seeds, EOS and stop strings, log-probs, and bad input. */
import { describe, expect, it } from 'vitest';
import { Generator, noGrad, tensor, tidy } from '../../kernels/index.js';
import { generate } from '../../models/generate.js';
import { logprobs } from '../../models/logprobs.js';
import { createModel } from '../../models/pretrained.js';
import type { ModelConfig } from '../../models/config.js';

const LLAMA: ModelConfig = { family: 'llama', vocabSize: 40, hiddenSize: 32, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: 64, maxPositionEmbeddings: 48 };
const MISTRAL: ModelConfig = { ...LLAMA, modelType: 'mistral', slidingWindow: 5 } as ModelConfig;
const GPT2: ModelConfig = { family: 'gpt2', vocabSize: 40, nPositions: 48, hiddenSize: 32, numLayers: 2, numHeads: 4 };
const PROMPTS = [[1, 2, 3, 4, 5, 6, 7], [9, 8], [30, 31, 32, 33]];
const letters = (ids: number[]): string => ids.map((i) => String.fromCharCode(97 + (i % 26))).join('');

// The sliding-window model decodes with the concatenating cache; the others with fixed buffers.
describe.each([['llama', LLAMA], ['mistral (sliding window 5)', MISTRAL], ['gpt2', GPT2]] as const)('generate on %s', (_name, config) => {
  // A larger init spread makes the random model's predictions peaked, so greedy paths are not ties.
  const model = createModel(config, { gen: new Generator(11) });

  it('greedy decoding with the KV cache equals decoding without it, for prompts of different lengths', async () => {
    const withCache = await generate(model, PROMPTS, { maxNewTokens: 12, temperature: 0 });
    const without = await generate(model, PROMPTS, { maxNewTokens: 12, temperature: 0, useCache: false });
    expect(withCache.tokens).toEqual(without.tokens);
    withCache.logprobs.flat().forEach((lp, i) => expect(lp).toBeCloseTo(without.logprobs.flat()[i], 4));
    expect(withCache.finishReason).toEqual(['length', 'length', 'length']);
    expect(withCache.ended).toEqual([false, false, false]);
  });

  it('a row sampled with its seed gives the same tokens alone or in any batch', async () => {
    const opts = { maxNewTokens: 10, temperature: 1.0, topK: 20, topP: 0.9 };
    const batch = await generate(model, PROMPTS, { ...opts, seeds: [5, 6, 7] });
    const alone = await generate(model, [PROMPTS[2]], { ...opts, seeds: [7] });
    const reordered = await generate(model, [PROMPTS[2], PROMPTS[0]], { ...opts, seeds: [7, 5] });
    expect(alone.tokens[0]).toEqual(batch.tokens[2]);
    expect(reordered.tokens[0]).toEqual(batch.tokens[2]);
    expect(reordered.tokens[1]).toEqual(batch.tokens[0]);
  });

  it('returned log-probs equal those that logprobs() computes for the same sequences', async () => {
    const out = await generate(model, [PROMPTS[0]], { maxNewTokens: 6, temperature: 1, seeds: [3] });
    const seq = [...PROMPTS[0], ...out.tokens[0]];
    const mask = seq.map((_, t) => (t >= PROMPTS[0].length ? 1 : 0));
    const lp = tidy(() => noGrad(() => logprobs(model, { ids: [seq], lossMask: [mask] }).toArraySync()));
    const scored = Array.from(lp).slice(PROMPTS[0].length - 1);
    scored.forEach((x, i) => expect(x).toBeCloseTo(out.logprobs[0][i], 4));
  });

  it('logprobs() at a temperature τ are log softmax(logits/τ) of the next token, by hand', () => {
    const seq = [...PROMPTS[0], 11, 12];
    const mask = seq.map((_, t) => (t >= PROMPTS[0].length ? 1 : 0));
    const tau = 0.7;
    const lp = Array.from(tidy(() => noGrad(() => logprobs(model, { ids: [seq], lossMask: [mask] }, tau).toArraySync()))); // [1·(T−1)]
    const logits = Array.from(tidy(() => noGrad(() => model.forward(tensor(seq, [1, seq.length], { dtype: 'i32' })).toArraySync()))); // [1·T·V]
    const V = config.vocabSize;
    for (let t = PROMPTS[0].length; t < seq.length; t++) {
      const z = logits.slice((t - 1) * V, t * V).map((v) => v / tau);
      const m = Math.max(...z);
      const logZ = m + Math.log(z.reduce((a, v) => a + Math.exp(v - m), 0));
      expect(lp[t - 1]).toBeCloseTo(z[seq[t]] - logZ, 4);
    }
    expect(lp[0]).toBe(0); // a prompt position is not scored
  });

  it('EOS ends a row and stop strings end a row, each reported', async () => {
    const free = await generate(model, PROMPTS, { maxNewTokens: 8, temperature: 0 });
    const eosToken = free.tokens[0][2];
    const withEos = await generate(model, PROMPTS, { maxNewTokens: 8, temperature: 0, eosTokenIds: [eosToken] });
    expect(withEos.tokens[0]).toEqual(free.tokens[0].slice(0, free.tokens[0].indexOf(eosToken) + 1));
    expect(withEos.ended[0]).toBe(true);
    expect(withEos.finishReason[0]).toBe('eos');

    const stop = letters(free.tokens[1].slice(3, 5));
    const withStop = await generate(model, PROMPTS, { maxNewTokens: 8, temperature: 0, stopStrings: [stop], decode: letters });
    expect(letters(withStop.tokens[1])).toContain(stop);
    expect(withStop.tokens[1].length).toBeLessThanOrEqual(5);
    expect(withStop.finishReason[1]).toBe('stop');
  });

  it('a prompt longer than the context window is a clear error', async () => {
    await expect(generate(model, [new Array(45).fill(1)], { maxNewTokens: 8 })).rejects.toThrow(
      'generate: prompt 0 has 45 tokens; with maxNewTokens 8 that exceeds the context window of 48',
    );
    await expect(generate(model, [[1], []], { maxNewTokens: 2 })).rejects.toThrow('generate: prompt 1 is empty');
  });
});
