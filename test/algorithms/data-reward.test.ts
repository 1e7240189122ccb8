/**
 * Reward-model data: NeMo-Aligner's alternating text lines, Bradley-Terry pairs from every
 * preference format (with margins), and the regression format with its label checks.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseJsonl, streamJsonl } from '../../algorithms/data/jsonl.js';
import type { JsonlRecord } from '../../algorithms/data/jsonl.js';
import { tokenizePreference } from '../../algorithms/data/preference.js';
import {
  pairAlternatingText, rewardPair, tokenizeRegression, tokenizeRewardPairs, tokenizeTextPair,
} from '../../algorithms/data/reward.js';
import type { PreparedPair, TextPair } from '../../algorithms/data/reward.js';
import { DataError } from '../../algorithms/errors.js';
import { Tokenizer } from '../../models/tokenizer.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tok = Tokenizer.fromDir(path.join(root, 'models/fixtures/tiny-llama'));
const records = (source: string, ...values: unknown[]): JsonlRecord[] => parseJsonl(values.map((v) => JSON.stringify(v)).join('\n'), source);
const dir = mkdtempSync(path.join(os.tmpdir(), 'aligner-rm-'));
const file = (name: string, values: unknown[]): string => {
  const p = path.join(dir, name);
  writeFileSync(p, values.map((v) => JSON.stringify(v)).join('\n'));
  return p;
};

function dataError(fn: () => unknown): DataError {
  let err: unknown = null;
  try { fn(); } catch (e) { err = e; }
  expect(err).toBeInstanceOf(DataError);
  return err as DataError;
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const PROMPT = '<extra_id_0>System\n\n<extra_id_1>User\nName a prime number.\n<extra_id_1>Assistant\n';
const TEXTS = [
  { text: `${PROMPT}7 is prime.\n<extra_id_1>` },
  { text: `${PROMPT}9 is prime.\n<extra_id_1>` },
  { text: `${PROMPT}2, the only even prime.\n<extra_id_1>` },
  { text: `${PROMPT}Primes do not exist.\n<extra_id_1>` },
];

describe('NeMo-Aligner alternating RM text lines', () => {
  it('pairs record 2i (chosen) with 2i+1 (rejected), tokenized verbatim', () => {
    const recs = records('rm.jsonl', ...TEXTS);
    const pairs = pairAlternatingText(recs, 'rm.jsonl');
    expect(pairs.map((p) => [p.chosen.line, p.rejected.line])).toEqual([[1, 2], [3, 4]]);
    const p = tokenizeTextPair(tok, pairs[1], 'rm.jsonl', { maxLength: 256 })!;
    expect(p.chosen).toEqual(tok.encode(TEXTS[2].text, { addSpecialTokens: false }));
    expect(tok.decode(p.rejected)).toBe(TEXTS[3].text);
    expect(p.margin).toBe(0);
  });

  it('an odd number of records names the unpaired line, from an array or a stream', async () => {
    const recs = parseJsonl([...TEXTS.slice(0, 3).map((t) => JSON.stringify(t)), '', ''].join('\n'), 'rm.jsonl');
    expect(dataError(() => pairAlternatingText(recs, 'rm.jsonl')).message).toMatch(/^rm\.jsonl:3: record 2 is a chosen text with no rejected text after it/);
    const p = file('odd.jsonl', TEXTS.slice(0, 3));
    const err = await collect(pairAlternatingText(streamJsonl(p, 'odd.jsonl'), 'odd.jsonl')).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(DataError);
    expect((err as Error).message).toMatch(/^odd\.jsonl:3: record 2 is a chosen text/);
  });

  it('a line without "text" is named', () => {
    const [a, b] = records('rm.jsonl', TEXTS[0], { txt: 'oops' });
    expect(dataError(() => tokenizeTextPair(tok, { chosen: a, rejected: b } as TextPair, 'rm.jsonl', { maxLength: 256 })).message).toBe('rm.jsonl:2: missing key "text"');
  });
});

describe('tokenizeRewardPairs: every pairwise format of a file', () => {
  it('alternating text lines, streamed', async () => {
    const got = await collect(tokenizeRewardPairs(tok, streamJsonl(file('text.jsonl', TEXTS)), 'text.jsonl', { maxLength: 256 }));
    expect(got).toHaveLength(2);
    expect(tok.decode((got[0] as { example: { chosen: number[] } }).example.chosen)).toBe(TEXTS[0].text);
  });

  it('preference records of mixed formats, with margins; drops reported with the line', async () => {
    const values = [
      { prompt: 'Q: Name a prime.\nA:', chosen_response: ' 7\n', rejected_response: ' 9\n' },
      { prompt: [{ role: 'user', content: 'Name a prime.' }], chosen: [{ role: 'assistant', content: '7' }], rejected: [{ role: 'assistant', content: '9' }], margin: 1.5 },
      { chosen: [{ role: 'user', content: 'Name a prime.' }, { role: 'assistant', content: '7' }], rejected: [{ role: 'user', content: 'Name a prime.' }, { role: 'assistant', content: '9' }] },
      { prompt: 'Q: Name a prime.\nA:', chosen: ` 7${' and 11'.repeat(20)}`, rejected: ' 9' },
    ];
    const got: PreparedPair[] = await collect(tokenizeRewardPairs(tok, streamJsonl(file('pref.jsonl', values)), 'pref.jsonl', { maxLength: 64, overlong: 'drop' }));
    const recs = records('pref.jsonl', ...values);
    expect(got[0]).toEqual({ example: rewardPair(tokenizePreference(tok, recs[0], 'pref.jsonl', 64)) });
    expect(got[1]).toEqual({ example: { ...rewardPair(tokenizePreference(tok, recs[1], 'pref.jsonl', 64)), margin: 1.5 } });
    expect(got[2]).toEqual({ example: { ...(got[1] as { example: object }).example, margin: 0 } }); // implicit prompt = explicit
    expect(got[3]).toEqual({ dropped: 'line 4: longer than trainer.maxLength' });
    const ex = (got[1] as { example: { chosen: number[] } }).example;
    expect(tok.decode(ex.chosen)).toBe('<|im_start|>user\nName a prime.<|im_end|>\n<|im_start|>assistant\n7<|im_end|>');
  });

  it('a bad preference record fails the stream with its file and line', async () => {
    const p = file('bad.jsonl', [{ prompt: 'Q:', chosen: ' a', rejected: ' b' }, { prompt: 'Q:', chosen: ' a' }]);
    const err = await collect(tokenizeRewardPairs(tok, streamJsonl(p, 'bad.jsonl'), 'bad.jsonl', { maxLength: 64 })).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(DataError);
    expect((err as Error).message).toBe('bad.jsonl:2: missing key "rejected"');
  });
});

describe('regression RM records {"text", "label": [...]}', () => {
  const text = '<extra_id_0>System\n\n<extra_id_1>User\nName a prime.\n<extra_id_1>Assistant\n7\n<extra_id_2>';
  const [good, short, nonNumber, missing, notList, masked] = records('steer.jsonl',
    { text, label: [4, 4, 3.5, 2, 2, -100, -100, -100, -100] },
    { text, label: [4, 4, 3, 2, 2] },
    { text, label: [4, 'high', 3, 2, 2, 0, 0, 0, 0] },
    { text },
    { text, label: 'helpfulness:4' },
    { text, label: new Array(9).fill(-100) },
  );
  const opts = { numAttributes: 9, maxLength: 256 };

  it('tokenizes the text verbatim and keeps the labels, −100 included', () => {
    const e = tokenizeRegression(tok, good, 'steer.jsonl', opts)!;
    expect(e.ids).toEqual(tok.encode(text, { addSpecialTokens: false }));
    expect(e.labels).toEqual([4, 4, 3.5, 2, 2, -100, -100, -100, -100]);
    expect(tokenizeRegression(tok, masked, 'steer.jsonl', opts)!.labels).toEqual(new Array(9).fill(-100));
  });

  it.each([
    [short, 'steer.jsonl:2: "label" has 5 values, expected 9 (numAttributes)'],
    [nonNumber, 'steer.jsonl:3: "label"[1] must be a finite number (-100 = masked), got a string of 4 characters'],
    [missing, 'steer.jsonl:4: missing key "label" (a list of 9 numbers, -100 = masked)'],
    [notList, 'steer.jsonl:5: "label" must be a list of 9 numbers (-100 = masked), got a string of 13 characters'],
  ])('bad label %#: file, line, expected and got', (rec, message) => {
    const err = dataError(() => tokenizeRegression(tok, rec, 'steer.jsonl', opts));
    expect(err.message).toBe(message);
    expect(err.line).toBe(rec.line);
  });
});
