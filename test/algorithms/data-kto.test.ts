/** KTO records: TRL (strings and chat) and NeMo-Aligner, prompt and completion ids kept apart, and the label errors. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseJsonl } from '../../algorithms/data/jsonl.js';
import type { JsonlRecord } from '../../algorithms/data/jsonl.js';
import { ktoSequence, tokenizeKto } from '../../algorithms/data/kto.js';
import { joinPromptCompletion } from '../../algorithms/data/pair.js';
import { DataError } from '../../algorithms/errors.js';
import { Tokenizer } from '../../models/tokenizer.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tok = Tokenizer.fromDir(path.join(root, 'models/fixtures/tiny-llama'));
const EOS = tok.eosTokenId!;
const records = (source: string, ...values: unknown[]): JsonlRecord[] => parseJsonl(values.map((v) => JSON.stringify(v)).join('\n'), source);
const opts = { maxLength: 128 };

function dataError(fn: () => unknown): DataError {
  let err: unknown = null;
  try { fn(); } catch (e) { err = e; }
  expect(err).toBeInstanceOf(DataError);
  return err as DataError;
}

const NEMO_PROMPT = '<extra_id_0>System\n\n<extra_id_1>User\nIs the sky blue?\n<extra_id_1>Assistant\n';

describe('KTO records', () => {
  const [trl, chat, nemo, noLabel, badLabel, noPreference, badPreference] = records('kto.jsonl',
    { prompt: 'Q: Is the sky blue?\nA:', completion: ' Yes, on a clear day.', label: true },
    { prompt: [{ role: 'user', content: 'Is the sky blue?' }], completion: [{ role: 'assistant', content: 'No, it is green.' }], label: false },
    { prompt: NEMO_PROMPT, response: 'Yes.\n<extra_id_1>', preference: 'chosen' },
    { prompt: 'Q: Is the sky blue?\nA:', completion: ' Yes.' },
    { prompt: 'Q: Is the sky blue?\nA:', completion: ' Yes.', label: 'good' },
    { prompt: NEMO_PROMPT, response: 'Yes.' },
    { prompt: NEMO_PROMPT, response: 'Yes.', preference: 'better' },
  );

  it('TRL plain text: prompt and completion apart, EOS ends the completion, label → desirable', () => {
    expect(tokenizeKto(tok, trl, 'kto.jsonl', opts)).toEqual({
      prompt: tok.encode('Q: Is the sky blue?\nA:'),
      completion: [...tok.encode(' Yes, on a clear day.'), EOS],
      desirable: true,
    });
  });

  it('TRL chat: the prompt is the templated turns up to the assistant header, the completion the turn', () => {
    const e = tokenizeKto(tok, chat, 'kto.jsonl', opts)!;
    expect(tok.decode(e.prompt)).toBe('<|im_start|>user\nIs the sky blue?<|im_end|>\n<|im_start|>assistant\n');
    expect(tok.decode(e.completion)).toBe('No, it is green.<|im_end|>');
    expect(e.desirable).toBe(false);
  });

  it('NeMo-Aligner: verbatim text; "chosen" is desirable', () => {
    expect(tokenizeKto(tok, nemo, 'kto.jsonl', opts)).toEqual({
      prompt: tok.encode(NEMO_PROMPT, { addSpecialTokens: false }),
      completion: tok.encode('Yes.\n<extra_id_1>', { addSpecialTokens: false }),
      desirable: true,
    });
  });

  it('joinPromptCompletion builds own and mismatched (KL) sequences, training the completion only', () => {
    const a = tokenizeKto(tok, trl, 'kto.jsonl', opts)!;
    const b = tokenizeKto(tok, chat, 'kto.jsonl', opts)!;
    const own = ktoSequence(a);
    expect(own).toEqual({ ...joinPromptCompletion(a.prompt, a.completion), desirable: true });
    expect(own.ids).toEqual([...a.prompt, ...a.completion]);
    expect(own.promptLength).toBe(a.prompt.length);
    expect(tok.decode(own.ids.filter((_, i) => own.lossMask[i]))).toBe(' Yes, on a clear day.<|im_end|>');
    const kl = joinPromptCompletion(a.prompt, b.completion, a.prompt.length + 5);
    expect(kl.ids).toEqual([...a.prompt, ...b.completion.slice(0, 5)]);
    expect(kl.lossMask.reduce((s, m) => s + m, 0)).toBe(5);
  });

  it.each([
    [noLabel, 'kto.jsonl:4: missing key "label" (true for a desirable completion, false for an undesirable one)'],
    [badLabel, 'kto.jsonl:5: "label" must be true (desirable) or false (undesirable), got "good"'],
    [noPreference, 'kto.jsonl:6: missing key "preference" ("chosen" for a desirable response, "rejected" for an undesirable one)'],
    [badPreference, 'kto.jsonl:7: "preference" must be "chosen" or "rejected", got "better"'],
  ])('a record without a usable label is a DataError with file and line (%#)', (rec, message) => {
    const err = dataError(() => tokenizeKto(tok, rec, 'kto.jsonl', opts));
    expect(err.message).toBe(message);
    expect(err.line).toBe(rec.line);
  });

  it('a missing completion or prompt is named', () => {
    const [noCompletion, noPrompt] = records('kto.jsonl', { prompt: 'Q:', label: true }, { completion: ' a', label: true });
    expect(dataError(() => tokenizeKto(tok, noCompletion, 'kto.jsonl', opts)).message).toBe('kto.jsonl:1: missing key "completion"');
    expect(dataError(() => tokenizeKto(tok, noPrompt, 'kto.jsonl', opts)).message).toBe('kto.jsonl:2: missing key "prompt"');
  });
});
