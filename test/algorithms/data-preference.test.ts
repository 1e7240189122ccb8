/**
 * Preference records beyond the basic ones of data.test.ts: TRL implicit prompt (chat and plain
 * text), TRL plain-text BOS/EOS, "margin", multi-turn chat prompts, and every error with file:line.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseJsonl } from '../../algorithms/data/jsonl.js';
import type { JsonlRecord } from '../../algorithms/data/jsonl.js';
import { tokenizePreference } from '../../algorithms/data/preference.js';
import { tokenizePromptResponse } from '../../algorithms/data/pair.js';
import { DataError } from '../../algorithms/errors.js';
import { Tokenizer } from '../../models/tokenizer.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tok = Tokenizer.fromDir(path.join(root, 'models/fixtures/tiny-llama'));
const EOS = tok.eosTokenId!;
const masked = (e: { ids: number[]; lossMask: number[] }) => tok.decode(e.ids.filter((_, i) => e.lossMask[i]));
const records = (source: string, ...values: unknown[]): JsonlRecord[] => parseJsonl(values.map((v) => JSON.stringify(v)).join('\n'), source);

function dataError(fn: () => unknown): DataError {
  let err: unknown = null;
  try { fn(); } catch (e) { err = e; }
  expect(err).toBeInstanceOf(DataError);
  return err as DataError;
}

const SYSTEM = { role: 'system', content: 'You are a careful maths tutor.' };
const USER = { role: 'user', content: 'What is 7 x 8?' };
const GOOD = { role: 'assistant', content: '7 x 8 = 56.' };
const BAD = { role: 'assistant', content: '7 x 8 = 54.' };

describe('TRL implicit prompt (chosen and rejected are whole dialogues)', () => {
  it('chat form: the shared leading messages are the prompt; the result equals the explicit-prompt record', () => {
    const [implicit, explicit] = records('pref.jsonl',
      { chosen: [SYSTEM, USER, GOOD], rejected: [SYSTEM, USER, BAD] },
      { prompt: [SYSTEM, USER], chosen: [GOOD], rejected: [BAD] },
    );
    const p = tokenizePreference(tok, implicit, 'pref.jsonl', 128);
    expect(p).toEqual(tokenizePreference(tok, explicit, 'pref.jsonl', 128));
    expect(masked(p.chosen)).toBe('7 x 8 = 56.<|im_end|>');
    expect(masked(p.rejected)).toBe('7 x 8 = 54.<|im_end|>');
    expect(tok.decode(p.chosen.ids)).toBe('<|im_start|>system\nYou are a careful maths tutor.<|im_end|>\n<|im_start|>user\nWhat is 7 x 8?<|im_end|>\n<|im_start|>assistant\n7 x 8 = 56.<|im_end|>');
  });

  it('chat form, multi-turn: an earlier assistant turn is prompt, not trained', () => {
    const history = [USER, GOOD, { role: 'user', content: 'And 8 x 8?' }];
    const [rec] = records('pref.jsonl', { chosen: [...history, { role: 'assistant', content: '64.' }], rejected: [...history, { role: 'assistant', content: '72.' }] });
    const p = tokenizePreference(tok, rec, 'pref.jsonl', 256);
    expect(masked(p.chosen)).toBe('64.<|im_end|>');
    expect(masked(p.rejected)).toBe('72.<|im_end|>');
  });

  it('plain text (Anthropic HH style): the shared text is the prompt, the space before the answer goes with it', () => {
    const [rec] = records('hh.jsonl', {
      chosen: '\n\nHuman: What is 7 x 8?\n\nAssistant: 56, since 7 x 8 = 56.',
      rejected: '\n\nHuman: What is 7 x 8?\n\nAssistant: I do not know.',
    });
    const p = tokenizePreference(tok, rec, 'hh.jsonl', 128);
    const prompt = tok.encode('\n\nHuman: What is 7 x 8?\n\nAssistant:');
    expect(p.chosen.ids).toEqual([...prompt, ...tok.encode(' 56, since 7 x 8 = 56.'), EOS]);
    expect(p.rejected.ids).toEqual([...prompt, ...tok.encode(' I do not know.'), EOS]);
    expect(masked(p.chosen)).toBe(' 56, since 7 x 8 = 56.<|im_end|>');
  });

  it.each([
    [{ chosen: [{ role: 'user', content: 'What is 7 x 8?' }, GOOD], rejected: [{ role: 'user', content: 'What is 7 times 8?' }, BAD] },
      '"chosen" and "rejected" share no leading messages, so there is no prompt (TRL implicit prompt); add a "prompt" key'],
    [{ chosen: [USER, GOOD, { role: 'user', content: 'Thanks!' }], rejected: [USER, BAD, { role: 'user', content: 'Thanks!' }] },
      '"chosen" and "rejected" must differ only in their last message (the response); they share 1 leading message, then have 2 and 2 more'],
    [{ chosen: [USER, GOOD, { role: 'user', content: 'Great.' }], rejected: [USER, GOOD, { role: 'user', content: 'Wrong.' }] },
      'the last message of "chosen" must be an assistant turn (the response), got role "user"'],
    [{ chosen: [USER, GOOD], rejected: [USER, GOOD] }, '"chosen" and "rejected" are the same dialogue'],
    [{ chosen: 'Q: 7 x 8?\nA: 56', rejected: 'R: 7 x 8?\nA: 54' },
      '"chosen" and "rejected" share no leading text, so there is no prompt (TRL implicit prompt); add a "prompt" key'],
    [{ chosen: 'Q: 7 x 8?\nA: 56', rejected: 'Q: 7 x 8?\nA: 56' }, '"chosen" and "rejected" are the same text'],
    [{ chosen: 'Q: 7 x 8?\nA: 56', rejected: 'Q: 7 x 8?\nA: 5' }, 'one of "chosen" and "rejected" is the start of the other: no response left to compare'],
    [{ chosen: [USER, GOOD], rejected: 'Q: 7 x 8?' },
      'without a "prompt", "chosen" and "rejected" must be the whole dialogues (TRL implicit prompt): both lists of chat messages or both strings'],
    [{ chosen: [USER, { role: 'robot', content: 'x' }], rejected: [USER, BAD] }, 'chosen[1].role must be one of system, user, assistant, tool, got "robot"'],
    [{ chosen: [USER, GOOD] }, 'missing key "rejected"'],
  ])('bad implicit-prompt record %#: a DataError with file and line', (value, message) => {
    const [, rec] = records('pref.jsonl', { prompt: 'Q:', chosen: ' a', rejected: ' b' }, value);
    const err = dataError(() => tokenizePreference(tok, rec, 'pref.jsonl', 128));
    expect(err.message).toBe(`pref.jsonl:2: ${message}`);
    expect([err.file, err.line]).toEqual(['pref.jsonl', 2]);
  });
});

describe('explicit prompt: TRL plain text, margin, rewards', () => {
  const [trl, nemo, badMargin, twoTurns, userResponse] = records('pref.jsonl',
    { prompt: 'Q: What is 7 x 8?\nA:', chosen: ' 56', rejected: ' 54', margin: 2.5 },
    { prompt: 'Q: What is 7 x 8?\nA:', chosen_response: ' 56\n', rejected_response: ' 54\n', chosen_reward: 4, rejected_reward: 1.5 },
    { prompt: 'Q:', chosen: ' a', rejected: ' b', margin: 'large' },
    { prompt: [USER], chosen: [GOOD, GOOD], rejected: [BAD] },
    { prompt: [USER], chosen: [{ role: 'user', content: 'hm' }], rejected: [BAD] },
  );

  it('TRL plain text gets EOS after each response (TRL DPOTrainer); NeMo-Aligner text is verbatim', () => {
    const t = tokenizePreference(tok, trl, 'pref.jsonl', 64);
    expect(t.chosen.ids).toEqual([...tok.encode('Q: What is 7 x 8?\nA:'), ...tok.encode(' 56'), EOS]);
    expect(masked(t.rejected)).toBe(' 54<|im_end|>');
    expect(t.margin).toBe(2.5);
    const n = tokenizePreference(tok, nemo, 'pref.jsonl', 64);
    expect(n.chosen.ids).toEqual([...tok.encode('Q: What is 7 x 8?\nA:'), ...tok.encode(' 56\n')]);
    expect([n.chosenReward, n.rejectedReward, n.margin]).toEqual([4, 1.5, undefined]);
    expect('margin' in n).toBe(false);
  });

  it('a bad margin, a many-message response and a non-assistant response are named', () => {
    expect(dataError(() => tokenizePreference(tok, badMargin, 'pref.jsonl', 64)).message).toBe('pref.jsonl:3: "margin" must be a finite number, got "large"');
    expect(dataError(() => tokenizePreference(tok, twoTurns, 'pref.jsonl', 64)).message).toBe('pref.jsonl:4: "chosen" must hold one assistant message, got 2 messages');
    expect(dataError(() => tokenizePreference(tok, userResponse, 'pref.jsonl', 64)).message).toBe('pref.jsonl:5: "chosen" must be an assistant message, got role "user"');
  });
});

describe('tokenizePromptResponse: an empty plain-text response', () => {
  const fixtureTok = Tokenizer.fromDir(path.join(root, 'models/fixtures/tiny-llama'));

  it('is refused in training data, and scored (as EOS under TRL\'s rule, as nothing under NeMo-Aligner\'s) when a sample ended at once', () => {
    expect(() => tokenizePromptResponse(fixtureTok, 'Say: ', '', { style: 'trl' })).toThrow('the response is empty');
    expect(tokenizePromptResponse(fixtureTok, 'Say: ', '', { style: 'trl', allowEmpty: true }).response).toEqual([fixtureTok.eosTokenId]);
    expect(tokenizePromptResponse(fixtureTok, 'Say: ', '', { style: 'nemo', allowEmpty: true })).toEqual({ prompt: fixtureTok.encode('Say: ', { addSpecialTokens: false }), response: [] });
  });
});
