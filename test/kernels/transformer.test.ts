/**
 * Whole-engine checks on a tiny causal transformer (2 layers, d=64): it overfits a small batch,
 * training is bit-for-bit deterministic, and native memory stays flat over 2,000 steps.
 */
import { describe, expect, it } from 'vitest';
import { AdamW, Generator, currentBackend, tensor } from '../../kernels/index.js';
import type { Tensor } from '../../kernels/index.js';
import { LlamaForCausalLM } from '../../models/llama.js';
import type { LlamaConfig } from '../../models/llama.js';
import { lmTrainStep } from '../../models/lm-step.js';

const TINY: LlamaConfig = { vocabSize: 32, hiddenSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: 128 };

function batch(gen: Generator, B: number, T: number, V: number): { ids: Tensor; targets: Tensor } {
  const seq = Array.from({ length: B * (T + 1) }, () => gen.int(V));
  const ids: number[] = [], targets: number[] = [];
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      ids.push(seq[b * (T + 1) + t]);
      targets.push(seq[b * (T + 1) + t + 1]);
    }
  }
  return { ids: tensor(ids, [B, T], { dtype: 'i32' }).keep(), targets: tensor(targets, [B, T], { dtype: 'i32' }).keep() };
}

async function train(seed: number, steps: number, cfg = TINY, B = 4, T = 16): Promise<{ losses: number[]; model: LlamaForCausalLM; opt: AdamW }> {
  const model = new LlamaForCausalLM(cfg, { gen: new Generator(seed) });
  const opt = new AdamW(model.parameters(), { lr: 1e-2, beta2: 0.99, weightDecay: 0 });
  const { ids, targets } = batch(new Generator(seed + 1), B, T, cfg.vocabSize);
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    const loss = lmTrainStep(model, opt, ids, targets, { count: B * T });
    losses.push(await loss.item());
    loss.dispose();
  }
  ids.dispose();
  targets.dispose();
  return { losses, model, opt };
}

describe(`tiny transformer on ${currentBackend().name}`, () => {
  it('overfits a batch of 4 × 16 random tokens: loss from ≈ ln 32 = 3.47 to below 0.05 in 150 steps', async () => {
    const { losses, model, opt } = await train(1, 150);
    expect(losses[0]).toBeGreaterThan(3.2);
    expect(losses.at(-1)).toBeLessThan(0.05);
    model.dispose();
    opt.dispose();
  });

  it('two runs with the same seed give bit-identical weights after 20 steps', async () => {
    const a = await train(7, 20), b = await train(7, 20);
    expect(a.losses).toEqual(b.losses);
    const wa = a.model.stateDict(), wb = b.model.stateDict();
    for (const [name, values] of wa) expect(Buffer.from(values.buffer).equals(Buffer.from(wb.get(name)!.buffer)), name).toBe(true);
    for (const r of [a, b]) {
      r.model.dispose();
      r.opt.dispose();
    }
  });

  it('native memory is flat over 2,000 training steps', async () => {
    const backend = currentBackend();
    const cfg: LlamaConfig = { vocabSize: 16, hiddenSize: 16, numLayers: 1, numHeads: 2, numKvHeads: 1, intermediateSize: 32 };
    const model = new LlamaForCausalLM(cfg, { gen: new Generator(3) });
    const opt = new AdamW(model.parameters(), { lr: 1e-3 });
    const { ids, targets } = batch(new Generator(4), 2, 8, cfg.vocabSize);
    const snapshots: { step: number; buffers: number; bytes: number; cached: number; rss: number }[] = [];
    for (let i = 1; i <= 2000; i++) {
      const loss = lmTrainStep(model, opt, ids, targets, { count: 16 });
      if (i % 500 === 0 || i === 100) {
        await loss.item();
        const { liveBuffers, liveBytes, cachedBytes = 0 } = backend.stats();
        snapshots.push({ step: i, buffers: liveBuffers, bytes: liveBytes, cached: cachedBytes, rss: process.memoryUsage().rss });
      }
      loss.dispose();
    }
    const first = snapshots[0];
    for (const s of snapshots) {
      // Live storages and the allocator's cache of freed blocks both stay exactly the same.
      expect({ step: s.step, buffers: s.buffers, bytes: s.bytes, cached: s.cached }).toEqual({
        step: s.step, buffers: first.buffers, bytes: first.bytes, cached: first.cached,
      });
    }
    // Resident memory may wobble with the JS heap, but must not grow with the step count.
    expect(snapshots.at(-1)!.rss - first.rss).toBeLessThan(64 * 2 ** 20);
    model.dispose();
    opt.dispose();
    ids.dispose();
    targets.dispose();
  });
});
