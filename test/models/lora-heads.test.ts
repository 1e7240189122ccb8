/** LoRA adapters and the reward/value heads. */
import { describe, expect, it } from 'vitest';
import { AdamW, Generator, noGrad, sum, tensor, tidy } from '../../kernels/index.js';
import type { Tensor } from '../../kernels/index.js';
import type { ModelConfig } from '../../models/config.js';
import { SequenceScoreModel, ValueModel, lastTokenIndex } from '../../models/heads.js';
import { applyLora } from '../../models/lora.js';
import { createModel } from '../../models/pretrained.js';

const CFG: ModelConfig = { family: 'llama', vocabSize: 30, hiddenSize: 32, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: 48 };
const ids = () => tensor([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [2, 5], { dtype: 'i32' });
const values = (t: Tensor) => Array.from(t.toArraySync());

describe('LoRA', () => {
  it('fresh adapters leave the output unchanged; only adapters get gradients; asBase is the base model', () => {
    const model = createModel(CFG, { gen: new Generator(1) });
    const base = tidy(() => noGrad(() => values(model.forward(ids()))));
    const lora = applyLora(model, { rank: 4, alpha: 8, targetModules: ['q_proj', 'v_proj'] }, new Generator(2));
    expect(lora.adapters.map((a) => a.name)).toEqual([
      'model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj',
    ]);
    expect(model.namedParameters().map(([n]) => n)).toContain('model.layers.0.self_attn.q_proj.lora_A.weight');
    expect(tidy(() => noGrad(() => values(model.forward(ids()))))).toEqual(base);

    tidy(() => sum(model.forward(ids())).backward());
    const withGrad = model.namedParameters().filter(([, p]) => p.grad).map(([n]) => n);
    expect(withGrad.length).toBe(8);
    expect(withGrad.every((n) => n.includes('lora_'))).toBe(true);

    // Train the adapters a little: the output moves, and asBase() still gives the base model.
    const opt = new AdamW(lora.parameters(), { lr: 0.05, weightDecay: 0 });
    opt.zeroGrad();
    for (let i = 0; i < 3; i++) {
      tidy(() => sum(model.forward(ids())).backward());
      opt.update();
      opt.zeroGrad();
    }
    const tuned = tidy(() => noGrad(() => values(model.forward(ids()))));
    expect(tuned).not.toEqual(base);
    expect(lora.asBase(() => tidy(() => values(model.forward(ids()))))).toEqual(base);
    model.dispose();
  });

  it('rejects a target that matches nothing', () => {
    const model = createModel(CFG, { gen: new Generator(1) });
    expect(() => applyLora(model, { targetModules: ['qkv'] }, new Generator(0))).toThrow('applyLora: no Linear matches targetModules [qkv]');
  });
});

describe('heads', () => {
  it('the reward is score · hidden state at the last real token (right padding), with gradients to the backbone', () => {
    const backbone = createModel(CFG, { gen: new Generator(3) });
    const rm = new SequenceScoreModel(backbone, 1, { gen: new Generator(4) });
    const mask = [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]];
    expect(lastTokenIndex(mask)).toEqual([2, 4]);
    const r = tidy(() => noGrad(() => values(rm.forward(ids(), mask))));
    const hidden = tidy(() => noGrad(() => backbone.hidden(ids()).toArraySync())); // [2, 5, 32]
    const w = Array.from(rm.score.weight.toArraySync());
    const expected = [2, 4].map((t, b) => w.reduce((s, wi, c) => s + wi * hidden[(b * 5 + t) * 32 + c], 0));
    r.forEach((x, i) => expect(x).toBeCloseTo(expected[i], 5));
    expect(rm.namedParameters().map(([n]) => n)).toContain('score.weight');
    tidy(() => sum(rm.forward(ids(), mask)).backward());
    expect(rm.score.weight.grad).not.toBeNull();
    expect(backbone.namedParameters().find(([n]) => n === 'model.embed_tokens.weight')![1].grad).not.toBeNull();
    expect(() => lastTokenIndex([[0, 0]])).toThrow('lastTokenIndex: row 0 has no real token');
  });

  it('a regression head gives N attributes and a value head one value per token', () => {
    const backbone = createModel(CFG, { gen: new Generator(5) });
    const reg = new SequenceScoreModel(backbone, 9, { gen: new Generator(6) });
    expect(tidy(() => noGrad(() => reg.forward(ids(), [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]).shape))).toEqual([2, 9]);
    const critic = new ValueModel(backbone, { gen: new Generator(7) });
    expect(tidy(() => noGrad(() => critic.forward(ids()).shape))).toEqual([2, 5]);
  });
});
