/**
 * The over-long policy, parametrised over every tokenize function and every policy: 'error' names
 * file, line, token count and maxLength; 'drop' gives null; 'truncate' keeps the first maxLength
 * tokens (the whole prompt, cutting the response) and gives null when nothing is left to train on.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseJsonl } from '../../algorithms/data/jsonl.js';
import type { JsonlRecord } from '../../algorithms/data/jsonl.js';
import { tokenizeKto } from '../../algorithms/data/kto.js';
import type { LengthOptions } from '../../algorithms/data/overlong.js';
import { tokenizePreference } from '../../algorithms/data/preference.js';
import { pairAlternatingText, tokenizeRegression, tokenizeTextPair } from '../../algorithms/data/reward.js';
import { tokenizeSft } from '../../algorithms/data/sft.js';
import { DataError } from '../../algorithms/errors.js';
import { Tokenizer } from '../../models/tokenizer.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tok = Tokenizer.fromDir(path.join(root, 'models/fixtures/tiny-llama'));
const S = 'long.jsonl';
const HINT = '(overlong "drop" skips such records, "truncate" cuts them)';
const rec = (line: number, value: unknown): JsonlRecord => ({ ...parseJsonl(JSON.stringify(value), S)[0], line });
const ANSWER = 'The mitochondrion is the powerhouse of the cell, making ATP.';
const PROMPT = 'Q: What does the mitochondrion do?\nA:'; // 37 tokens (the fixture is byte-level)
const n = (s: string) => tok.encode(s, { addSpecialTokens: false }).length;
const seq = (prompt: number[], response: number[]) => ({ ids: [...prompt, ...response], lossMask: [...prompt.map(() => 0), ...response.map(() => 1)] });

interface Case {
  name: string;
  run: (limits: LengthOptions) => unknown;
  /** Tokens in all (of the longest sequence), and tokens truncation must keep (the prompt). */
  total: number;
  prompt: number;
  /** The message under 'error' at maxLength m, without the file:line prefix and the hint. */
  error: (m: number) => string;
  /** The result under 'truncate' at a maxLength m that leaves something to train on. */
  truncated: (m: number) => unknown;
}

const msgs = rec(3, { messages: [{ role: 'user', content: 'What does the mitochondrion do?' }, { role: 'assistant', content: ANSWER }] });
const chatPrompt = n('<|im_start|>user\nWhat does the mitochondrion do?<|im_end|>\n<|im_start|>assistant\n');
const chatFull = tokenizeSft(tok, msgs, S, { maxLength: 1000 });
const text = rec(4, { text: ANSWER });
const textFull = tokenizeSft(tok, text, S, { maxLength: 1000 });
const pc = rec(5, { prompt: PROMPT, completion: ` ${ANSWER}` });
const pref = rec(6, { prompt: PROMPT, chosen_response: ` ${ANSWER}`, rejected_response: ' Nothing.' });
const prefFull = tokenizePreference(tok, pref, S, 1000);
const kto = rec(7, { prompt: PROMPT, completion: ` ${ANSWER}`, label: true });
const ktoFull = tokenizeKto(tok, kto, S, { maxLength: 1000 })!;
const steer = rec(8, { text: `${PROMPT} ${ANSWER}<extra_id_2>`, label: [4, 3, -100] });
const [textPair] = pairAlternatingText([rec(9, { text: `${PROMPT} ${ANSWER}` }), rec(10, { text: `${PROMPT} No.` })], S);

const CASES: Case[] = [
  {
    name: 'SFT chat', run: (l) => tokenizeSft(tok, msgs, S, l), total: chatFull.ids.length, prompt: chatPrompt,
    error: (m) => `3: the example is ${chatFull.ids.length} tokens, more than maxLength ${m}`,
    truncated: (m) => ({ ids: chatFull.ids.slice(0, m), lossMask: chatFull.lossMask.slice(0, m) }),
  },
  {
    name: 'SFT text', run: (l) => tokenizeSft(tok, text, S, l), total: textFull.ids.length, prompt: 1,
    error: (m) => `4: the example is ${textFull.ids.length} tokens, more than maxLength ${m}`,
    truncated: (m) => ({ ids: textFull.ids.slice(0, m), lossMask: textFull.lossMask.slice(0, m) }),
  },
  {
    name: 'SFT prompt-completion', run: (l) => tokenizeSft(tok, pc, S, l), total: n(PROMPT) + n(` ${ANSWER}`) + 1, prompt: n(PROMPT),
    error: (m) => `5: the example (prompt 37 + response ${n(` ${ANSWER}`) + 1}) is ${n(PROMPT) + n(` ${ANSWER}`) + 1} tokens, more than maxLength ${m}`,
    truncated: (m) => seq(tok.encode(PROMPT), [...tok.encode(` ${ANSWER}`), tok.eosTokenId!].slice(0, m - n(PROMPT))),
  },
  {
    name: 'preference pair', run: (l) => tokenizePreference(tok, pref, S, l), total: prefFull.chosen.ids.length, prompt: n(PROMPT),
    error: (m) => `6: chosen (prompt 37 + response ${n(` ${ANSWER}`)}) is ${prefFull.chosen.ids.length} tokens, more than maxLength ${m}`,
    truncated: (m) => ({
      ...prefFull,
      chosen: seq(tok.encode(PROMPT), tok.encode(` ${ANSWER}`).slice(0, m - n(PROMPT))),
      rejected: seq(tok.encode(PROMPT), tok.encode(' Nothing.').slice(0, m - n(PROMPT))),
    }),
  },
  {
    name: 'KTO', run: (l) => tokenizeKto(tok, kto, S, l), total: ktoFull.prompt.length + ktoFull.completion.length, prompt: n(PROMPT),
    error: (m) => `7: the example (prompt 37 + response ${ktoFull.completion.length}) is ${ktoFull.prompt.length + ktoFull.completion.length} tokens, more than maxLength ${m}`,
    truncated: (m) => ({ ...ktoFull, completion: ktoFull.completion.slice(0, m - ktoFull.prompt.length) }),
  },
  {
    name: 'RM regression', run: (l) => tokenizeRegression(tok, steer, S, { ...l, numAttributes: 3 }), total: n(`${PROMPT} ${ANSWER}<extra_id_2>`), prompt: 0,
    error: (m) => `8: the text is ${n(`${PROMPT} ${ANSWER}<extra_id_2>`)} tokens, more than maxLength ${m}`,
    truncated: (m) => ({ ids: tok.encode(`${PROMPT} ${ANSWER}<extra_id_2>`).slice(0, m), labels: [4, 3, -100] }),
  },
  {
    name: 'RM text pair', run: (l) => tokenizeTextPair(tok, textPair, S, l), total: n(`${PROMPT} ${ANSWER}`), prompt: 0,
    error: (m) => `9: the chosen text is ${n(`${PROMPT} ${ANSWER}`)} tokens, more than maxLength ${m}`,
    truncated: (m) => ({ chosen: tok.encode(`${PROMPT} ${ANSWER}`).slice(0, m), rejected: tok.encode(`${PROMPT} No.`).slice(0, m), margin: 0 }),
  },
];

describe.each(CASES)('overlong: $name', (c) => {
  const m = c.prompt + 5; // fits the prompt and 5 response tokens, not the whole example

  it('fits: every policy returns the example untouched', () => {
    expect(c.total).toBeGreaterThan(m);
    const full = c.run({ maxLength: c.total });
    expect(full).not.toBeNull();
    for (const overlong of ['error', 'drop', 'truncate'] as const) expect(c.run({ maxLength: c.total, overlong })).toEqual(full);
  });

  it("'error' (the default) names the file, the line, the token count and maxLength", () => {
    for (const limits of [{ maxLength: m }, { maxLength: m, overlong: 'error' as const }]) {
      let err: unknown = null;
      try { c.run(limits); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(DataError);
      expect((err as Error).message).toBe(`${S}:${c.error(m)} ${HINT}`);
    }
  });

  it("'drop' returns null", () => {
    expect(c.run({ maxLength: m, overlong: 'drop' })).toBeNull();
  });

  it("'truncate' keeps the first maxLength tokens (the whole prompt); null when nothing is left to train on", () => {
    expect(c.run({ maxLength: m, overlong: 'truncate' })).toEqual(c.truncated(m));
    if (c.prompt > 0) expect(c.run({ maxLength: c.prompt, overlong: 'truncate' })).toBeNull();
  });
});

describe('overlong: pairs', () => {
  it('a preference pair is dropped when either side is; truncation cuts each response, keeping the prompt', () => {
    const r = rec(2, { prompt: PROMPT, chosen: ' Short.', rejected: ` ${ANSWER}` });
    const m = n(PROMPT) + 10;
    expect(tokenizePreference(tok, r, S, { maxLength: m, overlong: 'drop' })).toBeNull();
    const t = tokenizePreference(tok, r, S, { maxLength: m, overlong: 'truncate' })!;
    expect(t.chosen).toEqual(tokenizePreference(tok, r, S, 1000).chosen);
    expect(t.rejected.ids).toHaveLength(m);
    expect(tok.decode(t.rejected.ids.filter((_, i) => t.rejected.lossMask[i]))).toBe(` ${ANSWER}`.slice(0, 10));
    expect(() => tokenizePreference(tok, r, S, m)).toThrow(`${S}:2: rejected (prompt 37 + response ${n(` ${ANSWER}`) + 1}) is ${m - 10 + n(` ${ANSWER}`) + 1} tokens, more than maxLength ${m} ${HINT}`);
  });

  it('a chat conversation truncated inside its second assistant turn keeps what was trained before', () => {
    const two = rec(1, { messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }, { role: 'user', content: 'c' }, { role: 'assistant', content: ANSWER }] });
    const full = tokenizeSft(tok, two, S, { maxLength: 1000 });
    const cut = tokenizeSft(tok, two, S, { maxLength: full.ids.length - 5, overlong: 'truncate' })!;
    expect(cut.ids).toEqual(full.ids.slice(0, -5));
    expect(tok.decode(cut.ids.filter((_, i) => cut.lossMask[i]))).toBe(`b<|im_end|>${ANSWER.slice(0, -3)}`);
  });
});
