/**
 * Hugging Face parity: checkpoints that transformers saved (models/fixtures/make_hf_parity.py) load
 * here and give transformers' logits within 1e-4; what we save reloads bit-identically.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { tensor, tidy, noGrad } from '../../kernels/index.js';
import type { CausalLM } from '../../models/causal-lm.js';
import { loadPretrained, savePretrained } from '../../models/pretrained.js';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../models/fixtures/hf');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'aligner-hf-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Parity { input_ids: number[][]; attention_mask: number[][]; logits: number[][][] }

function logitsOf(model: CausalLM, p: Parity): Float32Array | Float64Array | Int32Array {
  const B = p.input_ids.length, T = p.input_ids[0].length;
  // Left padding: positions count real tokens only, as the fixture script passes them to transformers.
  const positions = p.attention_mask.map((row) => {
    let k = -1;
    return row.map((m) => Math.max(0, (k += m)));
  });
  return tidy(() => noGrad(() => model.forward(tensor(p.input_ids.flat(), [B, T], { dtype: 'i32' }), {
    mask: tensor(p.attention_mask.flat(), [B, T]), positions,
  }).toArraySync()));
}

describe.each(['tiny-llama', 'tiny-qwen2', 'tiny-gpt2', 'tiny-mistral'])('%s saved by transformers', (name) => {
  const dir = path.join(fixtures, name);
  const parity: Parity = JSON.parse(readFileSync(path.join(dir, 'parity.json'), 'utf8'));

  it('loads and matches transformers\' logits within 1e-4 (padded row included)', async () => {
    const model = await loadPretrained(dir);
    const got = logitsOf(model, parity);
    const want = parity.logits.flat(2);
    // Padding positions of row 2 see no keys; transformers fills them differently. Compare real tokens.
    const V = parity.logits[0][0].length, T = parity.input_ids[0].length;
    let worst = 0, compared = 0;
    parity.attention_mask.forEach((row, b) => row.forEach((m, t) => {
      if (!m) return;
      for (let v = 0; v < V; v++, compared++) worst = Math.max(worst, Math.abs(got[(b * T + t) * V + v] - want[(b * T + t) * V + v]));
    }));
    expect(compared).toBe(14 * V);
    expect(worst).toBeLessThan(1e-4);
    // Logits of a random model are O(0.1–1): the bound is tight relative to them.
    expect(Math.max(...want.map(Math.abs))).toBeGreaterThan(0.05);
    model.dispose();
  });

  it('saves a folder that reloads with identical logits (and that make_hf_parity.py --check accepts)', async () => {
    const model = await loadPretrained(dir);
    const out = path.join(tmp, name);
    await savePretrained(model, out);
    const before = logitsOf(model, parity);
    const reloaded = await loadPretrained(out);
    expect(Buffer.from(logitsOf(reloaded, parity).buffer).equals(Buffer.from(before.buffer))).toBe(true);
    // The check mode of the fixture script compares transformers' logits on this folder with these.
    writeFileSync(path.join(out, 'parity.json'), JSON.stringify(parity));
    model.dispose();
    reloaded.dispose();
  });
});
