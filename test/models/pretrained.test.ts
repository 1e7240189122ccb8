/** The committed tiny fixture models, and loading errors that name what is wrong. */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { noGrad, tidy } from '../../kernels/index.js';
import { renderChat } from '../../models/chat.js';
import { generate } from '../../models/generate.js';
import { CheckpointError } from '../../models/hf/errors.js';
import { logprobs } from '../../models/logprobs.js';
import { loadPretrained } from '../../models/pretrained.js';
import { Tokenizer } from '../../models/tokenizer.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'aligner-pretrained-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The error a load fails with (the test fails if it succeeds). */
async function loadError(dir: string): Promise<Error> {
  try {
    await loadPretrained(dir);
  } catch (err) {
    return err as Error;
  }
  throw new Error(`loading ${dir} should have failed`);
}

/** Sentences the fixtures never saw (they trained on nlp-corpus docs 1–4). */
function heldOut(): string[] {
  const dir = path.join(path.dirname(createRequire(import.meta.url).resolve('nlp-corpus')), '../../builds');
  return (JSON.parse(readFileSync(path.join(dir, 'doc-9.json'), 'utf8')) as string[]).slice(0, 8);
}

describe.each(['tiny-llama', 'tiny-gpt2'])('fixture %s', (name) => {
  const dir = path.join(root, 'models/fixtures', name);

  it('is under 1 MB, loads with its tokenizer, and predicts held-out English far better than chance', async () => {
    expect(statSync(path.join(dir, 'model.safetensors')).size).toBeLessThan(1024 * 1024);
    const tok = Tokenizer.fromDir(dir);
    const model = await loadPretrained(dir);
    const ids = heldOut().map((s) => tok.encode(s, { addSpecialTokens: false }).slice(0, 48));
    const T = Math.min(...ids.map((r) => r.length));
    const batch = ids.map((r) => r.slice(0, T));
    const lp = tidy(() => noGrad(() => logprobs(model, { ids: batch, lossMask: batch.map((r) => r.map(() => 1)) }).toArraySync()));
    const nll = -Array.from(lp).reduce((a, b) => a + b, 0) / lp.length;
    // Uniform over 259 tokens would be ln 259 = 5.56 nats per byte.
    expect(nll).toBeLessThan(3.0);
    model.dispose();
  });

  it('renders its chat template and generates from it, stopping at <|im_end|>', async () => {
    const tok = Tokenizer.fromDir(dir);
    const model = await loadPretrained(dir);
    const prompt = renderChat(tok, [{ role: 'user', content: 'Say something.' }], { addGenerationPrompt: true });
    expect(prompt).toBe('<|im_start|>user\nSay something.<|im_end|>\n<|im_start|>assistant\n');
    const ids = tok.encode(prompt, { addSpecialTokens: false });
    const out = await generate(model, [ids], { maxNewTokens: 20, temperature: 0.8, seeds: [1], eosTokenIds: [tok.requireTokenId('<|im_end|>')] });
    expect(out.tokens[0].length).toBeGreaterThan(0);
    expect(typeof tok.decode(out.tokens[0])).toBe('string');
    model.dispose();
  });
});

describe('loading errors', () => {
  const fixture = path.join(root, 'models/fixtures/hf/tiny-llama');
  const folder = (name: string, config: (c: Record<string, unknown>) => Record<string, unknown>): string => {
    const dir = path.join(tmp, name);
    mkdirSync(dir, { recursive: true });
    copyFileSync(path.join(fixture, 'model.safetensors'), path.join(dir, 'model.safetensors'));
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config(JSON.parse(readFileSync(path.join(fixture, 'config.json'), 'utf8')))));
    return dir;
  };

  it('an unknown architecture names the model_type and the supported ones', async () => {
    const dir = folder('bert', (c) => ({ ...c, model_type: 'bert' }));
    const err = await loadError(dir);
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.message).toBe(`${dir}: config.json: model_type "bert" is not supported; supported: llama, mistral, qwen2, gpt2`);
  });

  it('a config whose sizes disagree with the tensors lists every mismatched tensor', async () => {
    const dir = folder('wide', (c) => ({ ...c, intermediate_size: 40 }));
    const err = await loadError(dir);
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.message).toContain(`${dir}: the checkpoint does not match the model`);
    expect(err.message).toContain('wrong shape (6): model.layers.0.mlp.gate_proj.weight: expected [40,32], got [48,32]');
  });

  it('missing and extra tensors are all listed by name', async () => {
    const dir = folder('layers', (c) => ({ ...c, num_hidden_layers: 3 }));
    const err = await loadError(dir);
    expect(err.message).toMatch(/missing \(9\): model\.layers\.2\.self_attn\.q_proj\.weight, /);
    const fewer = folder('fewer', (c) => ({ ...c, num_hidden_layers: 1 }));
    const err2 = await loadError(fewer);
    expect(err2.message).toMatch(/unexpected \(9\): model\.layers\.1\./);
  });
});
