/**
 * SFT and KD record formats: TRL prompt-completion (standard and conversational), TRL language
 * modelling text, NeMo-Aligner Llama 3 chat, KD rows with teacher keys; each on a real-looking
 * record, with the tokens trained and the errors (file and line).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseJsonl } from '../../algorithms/data/jsonl.js';
import type { JsonlRecord } from '../../algorithms/data/jsonl.js';
import { sftMessages, tokenizeSft } from '../../algorithms/data/sft.js';
import { DataError } from '../../algorithms/errors.js';
import { normalizeConversation } from '../../models/chat.js';
import { Tokenizer } from '../../models/tokenizer.js';
import { ConversationFormatError } from '../../models/tokenizer-errors.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const fixture = path.join(root, 'models/fixtures/tiny-llama');
const tok = Tokenizer.fromDir(fixture);
/** The same byte-level tokenizer with a post-processor that adds <|endoftext|> as BOS, as Llama's adds <s>. */
const bosTok = (() => {
  const json = JSON.parse(readFileSync(path.join(fixture, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
  const config = JSON.parse(readFileSync(path.join(fixture, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  const bos = { SpecialToken: { id: '<|endoftext|>', type_id: 0 } };
  json.post_processor = {
    type: 'TemplateProcessing',
    single: [bos, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [bos, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: { '<|endoftext|>': { id: '<|endoftext|>', ids: [256], tokens: ['<|endoftext|>'] } },
  };
  return new Tokenizer(json, { ...config, bos_token: '<|endoftext|>' }, { name: 'bos-tokenizer' });
})();
const EOS = tok.eosTokenId!;
const masked = (t: Tokenizer, e: { ids: number[]; lossMask: number[] }) => t.decode(e.ids.filter((_, i) => e.lossMask[i]));
const records = (source: string, ...values: unknown[]): JsonlRecord[] => parseJsonl(values.map((v) => JSON.stringify(v)).join('\n'), source);
const opts = { maxLength: 256 };

function dataError(fn: () => unknown): DataError {
  let err: unknown = null;
  try { fn(); } catch (e) { err = e; }
  expect(err).toBeInstanceOf(DataError);
  return err as DataError;
}

const SKY = [{ role: 'user', content: 'What colour is the sky?' }, { role: 'assistant', content: 'Blue, on a clear day.' }];

describe('TRL prompt-completion', () => {
  const [standard, conversational, mixed, multi, promptOnly] = records('pc.jsonl',
    { prompt: 'The capital of France is', completion: ' Paris.' },
    { prompt: [SKY[0]], completion: [SKY[1]] },
    { prompt: [SKY[0]], completion: 'Blue, on a clear day.' },
    { prompt: [SKY[0], SKY[1], { role: 'user', content: 'And at night?' }], completion: [{ role: 'assistant', content: 'Black.' }] },
    { prompt: 'The capital of France is' },
  );

  it('standard: prompt and completion tokenized apart, EOS appended, only the completion trained', () => {
    const e = tokenizeSft(tok, standard, 'pc.jsonl', opts);
    expect(e.ids).toEqual([...tok.encode('The capital of France is'), ...tok.encode(' Paris.'), EOS]);
    expect(masked(tok, e)).toBe(' Paris.<|im_end|>');
    expect(e.lossMask.slice(0, 24).every((m) => m === 0)).toBe(true);
    // With a tokenizer whose post-processor adds BOS, the prompt starts with it, as TRL tokenizes.
    const b = tokenizeSft(bosTok, standard, 'pc.jsonl', opts);
    expect(b.ids[0]).toBe(256);
    expect(b.ids.slice(1)).toEqual(e.ids);
    expect(masked(bosTok, b)).toBe(' Paris.<|im_end|>');
  });

  it('conversational: rendered as one chat, the completion trained, the same as the messages form', () => {
    const e = tokenizeSft(tok, conversational, 'pc.jsonl', opts);
    expect(tok.decode(e.ids)).toBe('<|im_start|>user\nWhat colour is the sky?<|im_end|>\n<|im_start|>assistant\nBlue, on a clear day.<|im_end|>\n');
    expect(masked(tok, e)).toBe('Blue, on a clear day.<|im_end|>');
    expect(tokenizeSft(tok, records('m.jsonl', { messages: SKY })[0], 'm.jsonl', opts)).toEqual(e);
    expect(tokenizeSft(tok, mixed, 'pc.jsonl', opts)).toEqual(e);
    expect(sftMessages(conversational, 'pc.jsonl')).toEqual(SKY);
  });

  it('an assistant turn inside the prompt is context, not trained', () => {
    const e = tokenizeSft(tok, multi, 'pc.jsonl', opts);
    expect(masked(tok, e)).toBe('Black.<|im_end|>');
    const asMessages = tokenizeSft(tok, records('m.jsonl', { messages: sftMessages(multi, 'pc.jsonl') })[0], 'm.jsonl', opts);
    expect(asMessages.ids).toEqual(e.ids);
    expect(masked(tok, asMessages)).toBe('Blue, on a clear day.<|im_end|>Black.<|im_end|>');
  });

  it('errors name the file and line', () => {
    expect(dataError(() => tokenizeSft(tok, promptOnly, 'pc.jsonl', opts)).message).toBe('pc.jsonl:5: missing key "completion"');
    expect(dataError(() => sftMessages(standard, 'pc.jsonl')).message).toBe('pc.jsonl:1: a plain-text prompt/completion record has no chat messages');
    const [badRole] = records('pc.jsonl', { prompt: [{ role: 'human', content: 'hi' }], completion: 'x' });
    expect(dataError(() => tokenizeSft(tok, badRole, 'pc.jsonl', opts)).message).toBe('pc.jsonl:1: prompt[0].role must be one of system, user, assistant, tool, got "human"');
  });
});

describe('TRL language modelling {"text"}', () => {
  const [text, empty] = records('lm.jsonl', { text: 'Photosynthesis turns light into sugar.' }, { text: '' });

  it('trains every token but the first, with EOS appended (and BOS where the tokenizer adds it)', () => {
    const e = tokenizeSft(tok, text, 'lm.jsonl', opts);
    expect(e.ids).toEqual([...tok.encode('Photosynthesis turns light into sugar.'), EOS]);
    expect(e.lossMask).toEqual(e.ids.map((_, i) => (i === 0 ? 0 : 1)));
    expect(masked(tok, e)).toBe('hotosynthesis turns light into sugar.<|im_end|>');
    const b = tokenizeSft(bosTok, text, 'lm.jsonl', opts);
    expect(b.ids[0]).toBe(256);
    expect(masked(bosTok, b)).toBe('Photosynthesis turns light into sugar.<|im_end|>');
    expect(dataError(() => sftMessages(text, 'lm.jsonl')).message).toBe('lm.jsonl:1: a TRL language modelling {"text"} record is plain text and has no chat messages');
  });

  it('an empty text leaves nothing to train on', () => {
    expect(dataError(() => tokenizeSft(tok, empty, 'lm.jsonl', opts)).message).toBe('lm.jsonl:2: "text" is 1 token(s); at least 2 are needed to train on');
  });
});

describe('NeMo-Aligner Llama 3 chat', () => {
  const H = (role: string) => `<|start_header_id|>${role}<|end_header_id|>`;
  const llama3 = {
    system: 'You are a helpful assistant.',
    conversations: [
      { from: H('user'), value: 'What colour is the sky?' },
      { from: H('assistant'), value: 'Blue, on a clear day.' },
      { from: H('user'), value: 'And at night?' },
      { from: H('assistant'), value: 'Black.' },
    ],
    mask: H('user'),
    system_token: H('system'),
    type: 'VALUE_TO_TEXT',
  };
  const messages = [
    { role: 'system', content: 'You are a helpful assistant.' }, SKY[0], SKY[1],
    { role: 'user', content: 'And at night?' }, { role: 'assistant', content: 'Black.' },
  ];

  it('header speaker names map to roles; the result is the TRL messages record', () => {
    expect(normalizeConversation(llama3)).toEqual(messages);
    const [rec, trl] = records('l3.jsonl', llama3, { messages });
    const e = tokenizeSft(tok, rec, 'l3.jsonl', opts);
    expect(e).toEqual(tokenizeSft(tok, trl, 'l3.jsonl', opts));
    expect(masked(tok, e)).toBe('Blue, on a clear day.<|im_end|>Black.<|im_end|>');
  });

  it('speaker names are case-insensitive, bare or in a header, with whitespace around', () => {
    const mixed = {
      conversations: [{ from: `${H('User')}\n\n`, value: 'Hi' }, { from: 'assistant', value: 'Hello!' }, { from: 'USER', value: 'Bye' }, { from: H(' Assistant '), value: 'Bye!' }],
      mask: 'user',
    };
    expect(normalizeConversation(mixed).map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
  });

  it.each([
    [{ ...llama3, mask: H('assistant') }, '"mask" "<|start_header_id|>assistant<|end_header_id|>" is not supported: only "User" (train on the Assistant turns)'],
    [{ ...llama3, conversations: [{ from: H('ipython'), value: '42' }] }, 'conversations[0].from must be "User" or "Assistant", got "<|start_header_id|>ipython<|end_header_id|>"'],
    [{ ...llama3, system_token: 7 }, '"system_token" must be a string'],
    // The plain NeMo-Aligner rules are unchanged.
    [{ conversations: [{ from: 'User', value: 'a' }], mask: 'Assistant' }, '"mask" "Assistant" is not supported: only "User" (train on the Assistant turns)'],
    [{ conversations: [{ from: 'User', value: 'a' }, { from: 'Bot', value: 'b' }] }, 'conversations[1].from must be "User" or "Assistant", got "Bot"'],
  ])('bad record %#: a ConversationFormatError, and a DataError with file:line from tokenizeSft', (record, message) => {
    expect(() => normalizeConversation(record)).toThrow(ConversationFormatError);
    expect(() => normalizeConversation(record)).toThrow(message);
    const [, rec] = records('l3.jsonl', { messages }, record);
    expect(dataError(() => tokenizeSft(tok, rec, 'l3.jsonl', opts)).message).toBe(`l3.jsonl:2: ${message}`);
  });
});

describe('KD rows (NeMo-Aligner synthetic-kd.jsonl)', () => {
  const teacher = {
    tokens: [128000, 9906, 0], labels: [9906, 0, 128009], loss_mask: [0, 1, 1],
    topk_logits: [[12.5, 11.0, 9.75, 9.5], [8.25, 7.5, 7.0, 6.5], [15.0, 9.0, 8.5, 8.0]],
    topk_token_ids: [[9906, 13347, 40, 1], [0, 13, 11, 30], [128009, 198, 220, 13]],
    log_sum_exp_logits: [13.1, 9.4, 15.02],
  };
  const rows = [
    { system: '', conversations: [{ from: 'User', value: 'Hi' }, { from: 'Assistant', value: 'Hello!' }], mask: 'User', type: 'TEXT_TO_VALUE' },
    { input: 'Hi', output: 'Hello!' },
    { messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello!' }] },
  ];

  it.each(rows.map((r, i) => [i, r] as const))('format %i: teacher keys are ignored; the row tokenizes as the plain SFT row', (_, row) => {
    const [withKd, plain] = records('kd.jsonl', { ...row, ...teacher }, row);
    const e = tokenizeSft(tok, withKd, 'kd.jsonl', opts);
    expect(e).toEqual(tokenizeSft(tok, plain, 'kd.jsonl', opts));
    expect(masked(tok, e)).toBe('Hello!<|im_end|>');
  });

  it('a row with only teacher keys is not an SFT record, and says which formats are', () => {
    const [bare] = records('kd.jsonl', teacher);
    expect(dataError(() => tokenizeSft(tok, bare, 'kd.jsonl', opts)).message).toBe(
      'kd.jsonl:1: unrecognised SFT record; expected NeMo-Aligner prompt/response {"input", "output"}, chat {"conversations": [...]} (NeMo-Aligner) or {"messages": [...]} (TRL), TRL prompt-completion {"prompt", "completion"}, TRL language modelling {"text"}; got keys [tokens, labels, loss_mask, topk_logits, topk_token_ids, log_sum_exp_logits]',
    );
  });
});

describe('NeMo-Aligner SteerLM chat (attribute labels on assistant turns)', () => {
  const steer = {
    system: '',
    conversations: [
      { from: 'User', value: 'Shout it' },
      { from: 'Assistant', value: 'HELLO', label: 'shouting:4,verbosity:0' },
      { from: 'User', value: 'Now softly' },
      { from: 'Assistant', value: 'hello', label: 'shouting:0,verbosity:0' },
    ],
    mask: 'User',
  };

  it('the label opens the assistant turn after <extra_id_2>, as part of the prompt: only the responses train', () => {
    const [rec] = records('steer.jsonl', steer);
    const e = tokenizeSft(tok, rec, 'steer.jsonl', opts);
    const text = tok.decode(e.ids);
    expect(text).toBe('<|im_start|>user\nShout it<|im_end|>\n<|im_start|>assistant\n<extra_id_2>shouting:4,verbosity:0\nHELLO<|im_end|>\n'
      + '<|im_start|>user\nNow softly<|im_end|>\n<|im_start|>assistant\n<extra_id_2>shouting:0,verbosity:0\nhello<|im_end|>\n');
    expect(masked(tok, e)).toBe('HELLO<|im_end|>hello<|im_end|>');
  });

  it('a turn without a label trains as before', () => {
    const plain = { ...steer, conversations: steer.conversations.map(({ from, value }) => ({ from, value })) };
    const [rec] = records('plain.jsonl', plain);
    expect(masked(tok, tokenizeSft(tok, rec, 'plain.jsonl', opts))).toBe('HELLO<|im_end|>hello<|im_end|>');
    expect(tok.decode(tokenizeSft(tok, rec, 'plain.jsonl', opts).ids)).not.toContain('<extra_id_2>');
  });
});
