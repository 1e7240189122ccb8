/** LoRA on disk: adapters round-trip bit for bit in PEFT's layout, and the merged model computes what the adapted one does. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Generator, noGrad, tensor, tidy } from '../../kernels/index.js';
import { applyLora } from '../../models/lora.js';
import { ADAPTER_CONFIG, loadAdapters, saveAdapters, saveMerged } from '../../models/lora-io.js';
import { createModel, loadPretrained } from '../../models/pretrained.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'aligner-lora-io-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const config = { family: 'llama' as const, vocabSize: 40, hiddenSize: 16, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: 24, maxPositionEmbeddings: 32 };
const targets = { rank: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'] };

/** An adapted model whose B matrices are random (a fresh adapter is a no-op, which would test nothing). */
function adapted(seed: number) {
  const model = createModel(config, { gen: new Generator(1) });
  const lora = applyLora(model, targets, new Generator(seed));
  const g = new Generator(seed + 1);
  for (const { adapter } of lora.adapters) {
    const w = adapter.B.weight;
    w.backend.write(w.storageFor('test'), Array.from({ length: w.numel }, () => 0.2 * (g.uniform() - 0.5)));
  }
  return { model, lora };
}

const ids = tensor([1, 5, 9, 2, 7, 3, 8, 4], [2, 4], { dtype: 'i32' });
const logits = (m: ReturnType<typeof createModel>) => tidy(() => noGrad(() => Array.from(m.forward(ids).toArraySync()))); // [2, 4, V]

describe('LoRA on disk', () => {
  it('the merged model (W + α/r·B·A) gives the adapted model\'s logits and loads as a plain Hugging Face model', async () => {
    const { model, lora } = adapted(3);
    const dir = path.join(tmp, 'merged');
    await saveMerged(model, lora, dir);
    const merged = await loadPretrained(dir);
    const [a, b] = [logits(model), logits(merged)];
    a.forEach((x, i) => expect(b[i]).toBeCloseTo(x, 4));
    lora.setEnabled(false);
    expect(logits(model)).not.toEqual(a); // the adapters did change the model
    model.dispose();
    merged.dispose();
  });

  it('adapters round-trip bit for bit, with PEFT names and adapter_config.json', async () => {
    const { model } = adapted(5);
    const dir = path.join(tmp, 'adapters');
    await saveAdapters(model, targets, dir, 'base-model');
    expect(JSON.parse(readFileSync(path.join(dir, ADAPTER_CONFIG), 'utf8'))).toMatchObject({ peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: targets.targetModules, base_model_name_or_path: 'base-model' });
    const fresh = createModel(config, { gen: new Generator(1) });
    applyLora(fresh, targets, new Generator(99));
    await loadAdapters(fresh, dir);
    const names = (m: typeof model) => m.namedParameters().filter(([n]) => n.includes('lora_'));
    expect(names(fresh).map(([n]) => n)).toEqual(names(model).map(([n]) => n));
    names(fresh).forEach(([n, p], i) => expect(Array.from(p.toArraySync()), n).toEqual(Array.from(names(model)[i][1].toArraySync())));
    expect(logits(fresh)).toEqual(logits(model));
    model.dispose();
    fresh.dispose();
  });

  it('a missing adapter tensor is a CheckpointError naming it', async () => {
    const dir = path.join(tmp, 'partial');
    const fewer = createModel(config, { gen: new Generator(1) });
    applyLora(fewer, { ...targets, targetModules: ['q_proj'] }, new Generator(1));
    await saveAdapters(fewer, targets, dir, 'base');
    const more = createModel(config, { gen: new Generator(1) });
    applyLora(more, { ...targets, targetModules: ['q_proj', 'k_proj'] }, new Generator(1));
    await expect(loadAdapters(more, dir)).rejects.toThrow(/adapter_model\.safetensors: missing base_model\.model\.model\.layers\.0\.self_attn\.k_proj\.lora_A\.weight/);
    fewer.dispose();
    more.dispose();
  });
});
