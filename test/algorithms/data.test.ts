/** Dataset records: formats, tokenization, and errors that name the file and line. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseJsonl } from '../../algorithms/data/jsonl.js';
import { tokenizePreference } from '../../algorithms/data/preference.js';
import { tokenizeSft } from '../../algorithms/data/sft.js';
import { DataError } from '../../algorithms/errors.js';
import { lrAt } from '../../algorithms/schedule.js';
import { Tokenizer } from '../../models/tokenizer.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tok = Tokenizer.fromDir(path.join(root, 'models/fixtures/tiny-llama'));
const decodeMasked = (ids: number[], mask: number[]) => tok.decode(ids.filter((_, i) => mask[i]));

describe('JSONL', () => {
  it('a malformed line is a DataError with file and line', () => {
    const text = '{"input": "a", "output": "b"}\n\n{"input": "c", oops}\n';
    expect(() => parseJsonl(text, 'train.jsonl')).toThrow(DataError);
    expect(() => parseJsonl(text, 'train.jsonl')).toThrow(/^train\.jsonl:3: not valid JSON/);
    expect(() => parseJsonl('[1, 2]\n', 'x.jsonl')).toThrow('x.jsonl:1: expected a JSON object, got an array');
    expect(() => parseJsonl('\n  \n', 'empty.jsonl')).toThrow('empty.jsonl: the dataset is empty');
  });
});

describe('SFT records', () => {
  const [io, conv, msgs, bad] = parseJsonl([
    JSON.stringify({ input: 'Hi', output: 'Hello!' }),
    JSON.stringify({ system: '', conversations: [{ from: 'User', value: 'Hi' }, { from: 'Assistant', value: 'Hello!' }], mask: 'User' }),
    JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello!' }] }),
    JSON.stringify({ input: 'Hi' }),
  ].join('\n'), 'sft.jsonl');

  it('all three formats give the same ids and train only the assistant turn', () => {
    const a = tokenizeSft(tok, io, 'sft.jsonl', { maxLength: 128 });
    expect(tokenizeSft(tok, conv, 'sft.jsonl', { maxLength: 128 })).toEqual(a);
    expect(tokenizeSft(tok, msgs, 'sft.jsonl', { maxLength: 128 })).toEqual(a);
    expect(decodeMasked(a.ids, a.lossMask)).toBe('Hello!<|im_end|>');
  });

  it('a missing key and a too-long prompt name the file and line', () => {
    expect(() => tokenizeSft(tok, bad, 'sft.jsonl', { maxLength: 128 })).toThrow('sft.jsonl:4: missing key "output"');
    expect(() => tokenizeSft(tok, io, 'sft.jsonl', { maxLength: 5 })).toThrow(/^sft\.jsonl:1: /);
  });
});

describe('preference records', () => {
  const [nemo, trl, missing] = parseJsonl([
    JSON.stringify({ prompt: 'Q: 2+2?\nA:', chosen_response: ' 4', rejected_response: ' 5', chosen_reward: 3 }),
    JSON.stringify({ prompt: [{ role: 'user', content: '2+2?' }], chosen: [{ role: 'assistant', content: '4' }], rejected: '5' }),
    JSON.stringify({ prompt: 'x', chosen: 'y' }),
  ].join('\n'), 'pref.jsonl');

  it('NeMo-Aligner records: raw prompt, responses tokenized separately, rewards kept', () => {
    const p = tokenizePreference(tok, nemo, 'pref.jsonl', 64);
    expect(decodeMasked(p.chosen.ids, p.chosen.lossMask)).toBe(' 4');
    expect(decodeMasked(p.rejected.ids, p.rejected.lossMask)).toBe(' 5');
    expect([p.chosenReward, p.rejectedReward]).toEqual([3, 0]);
  });

  it('TRL conversational records use the chat template', () => {
    const p = tokenizePreference(tok, trl, 'pref.jsonl', 64);
    expect(decodeMasked(p.chosen.ids, p.chosen.lossMask)).toBe('4<|im_end|>');
    expect(tok.decode(p.rejected.ids)).toContain('<|im_start|>assistant\n5<|im_end|>');
  });

  it('a missing response is named', () => {
    expect(() => tokenizePreference(tok, missing, 'pref.jsonl', 64)).toThrow('pref.jsonl:3: missing key "rejected"');
  });
});

describe('learning-rate schedule', () => {
  it('warms up linearly, then decays by cosine to minLr', () => {
    const s = { lr: 1e-3, minLr: 1e-4, warmupSteps: 10, totalSteps: 110 };
    expect(lrAt(0, s)).toBeCloseTo(1e-4, 12);
    expect(lrAt(9, s)).toBeCloseTo(1e-3, 12);
    expect(lrAt(60, s)).toBeCloseTo(1e-4 + 0.5 * 9e-4, 12);
    expect(lrAt(110, s)).toBeCloseTo(1e-4, 12);
    expect(lrAt(500, s)).toBeCloseTo(1e-4, 12);
  });
});
