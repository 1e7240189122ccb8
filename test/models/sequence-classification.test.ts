/** Reward models saved and loaded as Hugging Face sequence classifiers (models/sequence-classification.ts). */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { DisposedError, Generator, currentBackend, noGrad, randn, tensor, tidy } from '../../kernels/index.js';
import type { CausalLM } from '../../models/causal-lm.js';
import type { ModelConfig } from '../../models/config.js';
import { SequenceScoreModel } from '../../models/heads.js';
import { CheckpointError } from '../../models/hf/errors.js';
import { readSafetensors } from '../../models/hf/safetensors.js';
import { applyLora } from '../../models/lora.js';
import { createModel, loadPretrained, savePretrained } from '../../models/pretrained.js';
import {
  NotARewardModelError, loadSequenceClassifier, requireClassifier, saveSequenceClassifier, scoreInitStd,
} from '../../models/sequence-classification.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// ALIGN_SEQCLS_OUT keeps the folders (with scores.json) for models/fixtures/check_hf_seqcls.py.
const keep = process.env.ALIGN_SEQCLS_OUT;
const tmp = keep ?? mkdtempSync(path.join(os.tmpdir(), 'aligner-seqcls-'));
afterAll(() => {
  if (!keep) rmSync(tmp, { recursive: true, force: true });
});
let dirs = 0;
const freshDir = (name: string): string => path.join(tmp, `${name}-${dirs++}`);

const LLAMA: ModelConfig = {
  family: 'llama', vocabSize: 30, hiddenSize: 32, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: 48, eosTokenId: 2,
};
const GPT2: ModelConfig = { family: 'gpt2', vocabSize: 30, nPositions: 16, hiddenSize: 32, numLayers: 2, numHeads: 4, eosTokenId: 2 };

/** transformers' parameter names of a 2-layer …ForSequenceClassification, written out by hand. */
const HF_NAMES = {
  llama: [
    'model.embed_tokens.weight',
    ...[0, 1].flatMap((i) => [
      'self_attn.q_proj.weight', 'self_attn.k_proj.weight', 'self_attn.v_proj.weight', 'self_attn.o_proj.weight',
      'mlp.gate_proj.weight', 'mlp.up_proj.weight', 'mlp.down_proj.weight', 'input_layernorm.weight', 'post_attention_layernorm.weight',
    ].map((s) => `model.layers.${i}.${s}`)),
    'model.norm.weight', 'score.weight',
  ],
  gpt2: [
    'transformer.wte.weight', 'transformer.wpe.weight',
    ...[0, 1].flatMap((i) => [
      'ln_1.weight', 'ln_1.bias', 'attn.c_attn.weight', 'attn.c_attn.bias', 'attn.c_proj.weight', 'attn.c_proj.bias',
      'ln_2.weight', 'ln_2.bias', 'mlp.c_fc.weight', 'mlp.c_fc.bias', 'mlp.c_proj.weight', 'mlp.c_proj.bias',
    ].map((s) => `transformer.h.${i}.${s}`)),
    'transformer.ln_f.weight', 'transformer.ln_f.bias', 'score.weight',
  ],
};

// Right padding with pad id 0; no real token is 0, so transformers' "last non-pad token" is ours.
const IDS = [[5, 17, 3, 22, 8, 1], [7, 7, 23, 0, 0, 0], [9, 4, 0, 0, 0, 0]];
const MASK = IDS.map((r) => r.map((id) => (id !== 0 ? 1 : 0)));
const ids = () => tensor(IDS.flat(), [3, 6], { dtype: 'i32' });
const scoresOf = (rm: SequenceScoreModel): Float32Array => tidy(() => noGrad(() => rm.forward(ids(), MASK).toArraySync())) as Float32Array;
const hiddenOf = (m: CausalLM): Float32Array => tidy(() => noGrad(() => m.hidden(ids()).toArraySync())) as Float32Array;
const bitsEqual = (a: Float32Array, b: Float32Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
const configOf = (dir: string): Record<string, unknown> => JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;

/** The error a promise rejects with (the test fails if it resolves). */
async function errorOf(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

describe.each([
  ['llama', LLAMA, 'LlamaForSequenceClassification'],
  ['gpt2', GPT2, 'GPT2ForSequenceClassification'],
] as const)('%s', (family, cfg, arch) => {
  const rewardModel = (labels: number, seed = 1) =>
    new SequenceScoreModel(createModel(cfg, { gen: new Generator(seed) }), labels, { gen: new Generator(seed + 100), std: 0.1 });

  it("namedParameters() are exactly transformers' names (no lm_head)", () => {
    const rm = rewardModel(1);
    expect(rm.namedParameters().map(([n]) => n)).toEqual(HF_NAMES[family]);
    expect(rm.numLabels).toBe(1);
    rm.dispose();
  });

  it('save → load gives bit-identical scores, and the folder has the classifier layout and config', async () => {
    const rm = rewardModel(3);
    const dir = freshDir(`${family}-rm`);
    const saved = await saveSequenceClassifier(rm, dir, { labelNames: ['helpfulness', 'correctness', 'coherence'], padTokenId: 0 });
    expect(saved).toEqual({ architecture: arch, numLabels: 3, labelNames: ['helpfulness', 'correctness', 'coherence'], padTokenId: 0, files: ['model.safetensors'] });

    const { tensors } = await readSafetensors(path.join(dir, 'model.safetensors'));
    expect([...tensors.keys()].sort()).toEqual([...HF_NAMES[family]].sort());
    expect(tensors.get('score.weight')!.shape).toEqual([3, 32]);
    const c = configOf(dir);
    expect(c).toMatchObject({
      architectures: [arch], model_type: family, num_labels: 3, problem_type: 'regression', pad_token_id: 0, eos_token_id: 2,
      id2label: { 0: 'helpfulness', 1: 'correctness', 2: 'coherence' }, label2id: { helpfulness: 0, correctness: 1, coherence: 2 },
    });

    const before = scoresOf(rm);
    const loaded = await loadSequenceClassifier(dir);
    expect(loaded).toMatchObject({ numLabels: 3, labelNames: ['helpfulness', 'correctness', 'coherence'], source: 'classifier', padTokenId: 0 });
    expect(bitsEqual(scoresOf(loaded.model), before)).toBe(true);
    expect(before.length).toBe(9);
    expect(Math.max(...before.map(Math.abs))).toBeGreaterThan(1e-3); // a real score, not zeros
    // Kept for the by-hand transformers check (models/fixtures/check_hf_seqcls.py).
    if (keep) writeFileSync(path.join(dir, 'scores.json'), JSON.stringify({ input_ids: IDS, attention_mask: MASK, scores: Array.from(before) }));
    // The classifier does not load as a causal LM, and says what to use instead.
    await expect(loadPretrained(dir)).rejects.toThrow(`${dir}: is a sequence classifier (architectures ["${arch}"], score.weight present), not a causal LM: load it with loadSequenceClassifier`);
    rm.dispose();
    loaded.model.dispose();
  });

  it('a causal-LM folder loads as a backbone with identical hidden states and a fresh head drawn from the seed', async () => {
    const lm = createModel(cfg, { gen: new Generator(3) });
    const dir = freshDir(`${family}-lm`);
    await savePretrained(lm, dir);
    const a = await loadSequenceClassifier(dir, { numLabels: 2, gen: new Generator(7) });
    expect(a).toMatchObject({ numLabels: 2, labelNames: ['LABEL_0', 'LABEL_1'], source: 'causal-lm', padTokenId: null });
    expect(bitsEqual(hiddenOf(a.model.backbone), hiddenOf(lm))).toBe(true);
    expect(a.model.namedParameters().map(([n]) => n)).toEqual(HF_NAMES[family]);
    // The head is N(0, 1/(C+1)) drawn from gen: exactly these values.
    const want = tidy(() => randn([2, 32], new Generator(7), { std: scoreInitStd(32) }).toArraySync());
    expect(Array.from(a.model.score.weight.toArraySync())).toEqual(Array.from(want));
    expect(scoreInitStd(32)).toBeCloseTo(1 / Math.sqrt(33), 12);
    const b = await loadSequenceClassifier(dir, { numLabels: 2, gen: new Generator(7) });
    const c = await loadSequenceClassifier(dir, { numLabels: 2, gen: new Generator(8) });
    expect(bitsEqual(scoresOf(b.model), scoresOf(a.model))).toBe(true);
    expect(Array.from(c.model.score.weight.toArraySync())).not.toEqual(Array.from(want));
    // No classifier there: a caller that needs one is told what to do.
    await expect(requireClassifier(dir)).rejects.toThrow(NotARewardModelError);
    for (const m of [lm, a.model, b.model, c.model]) m.dispose();
  });

  it('dispose() frees the backbone (caches included) and the head', () => {
    const backend = currentBackend();
    const start = backend.stats().liveBuffers;
    const rm = rewardModel(2);
    scoresOf(rm); // builds the backbone's cached tables (Llama RoPE)
    expect(backend.stats().liveBuffers).toBeGreaterThan(start);
    rm.dispose();
    expect(backend.stats().liveBuffers).toBe(start);
  });
});

describe('pad_token_id', () => {
  const rm = (cfg: ModelConfig) => new SequenceScoreModel(createModel(cfg, { gen: new Generator(1) }), 1, { gen: new Generator(2) });

  it('comes from the option, else the config, else the (first) eos id; neither is an error; null writes none', async () => {
    const cases: [ModelConfig, number | null | undefined, number | null][] = [
      [{ ...LLAMA, padTokenId: 5 }, 4, 4],
      [{ ...LLAMA, padTokenId: 5 }, undefined, 5],
      [{ ...LLAMA, eosTokenId: [3, 9] }, undefined, 3],
      [GPT2, undefined, 2],
      [{ ...LLAMA, eosTokenId: null }, null, null],
    ];
    for (const [cfg, given, want] of cases) {
      const m = rm(cfg);
      const dir = freshDir('pad');
      const saved = await saveSequenceClassifier(m, dir, given === undefined ? {} : { padTokenId: given });
      expect(saved.padTokenId).toBe(want);
      expect(configOf(dir).pad_token_id).toBe(want);
      expect((await loadSequenceClassifier(dir)).padTokenId).toBe(want);
      m.dispose();
    }
    const m = rm({ ...LLAMA, eosTokenId: null });
    const dir = freshDir('nopad');
    const err = await errorOf(saveSequenceClassifier(m, dir));
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.message).toBe(
      `${dir}: no pad token id for the classifier: the config has neither padTokenId nor eosTokenId; pass opts.padTokenId (transformers needs one to find the last token when batch > 1), or null to write none`,
    );
    await expect(saveSequenceClassifier(m, dir, { padTokenId: 30 })).rejects.toThrow(`${dir}: pad token id 30 is not a token id of the vocabulary (0 … 29)`);
    m.dispose();
  });
});

describe('errors', () => {
  it('numLabels that differ from the folder name both numbers', async () => {
    const rm = new SequenceScoreModel(createModel(LLAMA, { gen: new Generator(1) }), 3, { gen: new Generator(2) });
    const dir = freshDir('three');
    await saveSequenceClassifier(rm, dir);
    const err = await errorOf(loadSequenceClassifier(dir, { numLabels: 1 }));
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.message).toBe(`${dir}: the classifier has 3 labels (score.weight is [3,32]) but numLabels 1 was asked for`);
    // Default names may be renamed on load; wrong counts may not.
    expect((await loadSequenceClassifier(dir, { labelNames: ['a', 'b', 'c'] })).labelNames).toEqual(['a', 'b', 'c']);
    await expect(loadSequenceClassifier(dir, { labelNames: ['a'] })).rejects.toThrow(`${dir}: 1 label names given for a classifier of 3 labels`);
    await expect(saveSequenceClassifier(rm, freshDir('names'), { labelNames: ['a', 'b'] })).rejects.toThrow('2 label names for a score head of 3 labels');
    rm.dispose();
  });

  it('named labels in the folder must agree with the ones asked for', async () => {
    const rm = new SequenceScoreModel(createModel(GPT2, { gen: new Generator(1) }), 2, { gen: new Generator(2) });
    const dir = freshDir('named');
    await saveSequenceClassifier(rm, dir, { labelNames: ['helpful', 'harmless'] });
    await expect(loadSequenceClassifier(dir, { labelNames: ['harmless', 'helpful'] })).rejects.toThrow(
      `${dir}: config.json labels are [helpful, harmless] but [harmless, helpful] were given`,
    );
    rm.dispose();
  });

  it('requireClassifier names the architectures and the fix; it accepts classifiers, sharded ones too', async () => {
    const fixture = path.join(root, 'models/fixtures/hf/tiny-llama');
    const err = await errorOf(requireClassifier(fixture));
    expect(err).toBeInstanceOf(NotARewardModelError);
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.message).toBe(
      `${fixture}: not a reward model: config.json architectures is [LlamaForCausalLM] and there is no score.weight; ` +
        'train one with `align run rm` (or load the folder with loadSequenceClassifier to start from a fresh head)',
    );
    expect((err as NotARewardModelError).architectures).toEqual(['LlamaForCausalLM']);

    const rm = new SequenceScoreModel(createModel(LLAMA, { gen: new Generator(1) }), 1, { gen: new Generator(2) });
    const dir = freshDir('sharded');
    await saveSequenceClassifier(rm, dir, { maxShardBytes: 8000 });
    expect(readdirSync(dir)).toContain('model.safetensors.index.json');
    expect(await requireClassifier(dir)).toEqual({ architectures: ['LlamaForSequenceClassification'] });
    expect(bitsEqual(scoresOf((await loadSequenceClassifier(dir)).model), scoresOf(rm))).toBe(true);
    rm.dispose();
  });

  it('a classifier config without score.weight, and LoRA adapters on save, are errors', async () => {
    const lm = createModel(LLAMA, { gen: new Generator(1) });
    const dir = freshDir('nohead');
    await savePretrained(lm, dir);
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...configOf(dir), architectures: ['LlamaForSequenceClassification'] }));
    await expect(loadSequenceClassifier(dir)).rejects.toThrow(`${dir}: config.json architectures is [LlamaForSequenceClassification] but there is no score.weight in the weights`);

    const rm = new SequenceScoreModel(lm, 1, { gen: new Generator(2) });
    applyLora(rm, { targetModules: ['q_proj'] }, new Generator(3));
    await expect(saveSequenceClassifier(rm, freshDir('lora'))).rejects.toThrow('model.layers.0.self_attn.q_proj.lora_A.weight is a LoRA adapter');
    rm.dispose();
  });
});

describe('the transformers-saved fixture as a base model', () => {
  it('loads with hidden states equal to loadPretrained, and its lm_head is freed', async () => {
    const fixture = path.join(root, 'models/fixtures/hf/tiny-llama');
    const lm = await loadPretrained(fixture);
    const { model, source } = await loadSequenceClassifier(fixture, { gen: new Generator(1) });
    expect(source).toBe('causal-lm');
    expect(bitsEqual(hiddenOf(model.backbone), hiddenOf(lm))).toBe(true);
    expect(() => tidy(() => model.backbone.forward(ids()))).toThrow(DisposedError);
    lm.dispose();
    model.dispose();
  });
});
