/**
 * Chat templates and the assistant-only loss mask for SFT.
 *
 * `renderChat` runs a tokenizer's Jinja chat template (`@huggingface/jinja`) with the variables
 * transformers' `apply_chat_template` passes. `tokenizeConversation` tokenizes the rendered
 * conversation once and marks the tokens of each assistant turn, as NeMo-Aligner does: render the
 * prompt before the turn (with the generation prompt), tokenize it, and check that its tokens are a
 * prefix of the conversation's tokens. See `tokenizeConversation` for the rules and fallbacks.
 * `normalizeConversation` turns NeMo-Aligner `conversations` records (plain or Llama 3 header
 * speaker names) and TRL `messages` records into one message list.
 */
import { Template } from '@huggingface/jinja';
import type { Tokenizer } from './tokenizer.js';
import { ChatTemplateError, ConversationFormatError, PromptTooLongError } from './tokenizer-errors.js';

export type Role = 'system' | 'user' | 'assistant' | 'tool';

/** One chat message. Other keys (reasoning_content, tool_calls, name, label) pass through to the template. */
export interface ChatMessage {
  role: Role;
  content: string;
  [key: string]: unknown;
}

/**
 * ChatML (`<|im_start|>role\n…<|im_end|>\n`), for tokenizers without a template, such as GPT-2.
 * Where `<|im_start|>`/`<|im_end|>` are not tokens of the vocabulary they are encoded as text.
 */
export const DEFAULT_CHAT_TEMPLATE =
  "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

export interface RenderOptions {
  /** Append the template's assistant header, as for generation. Default false. */
  addGenerationPrompt?: boolean;
  /** Overrides the tokenizer's template (and DEFAULT_CHAT_TEMPLATE). */
  template?: string;
  /** Extra template variables, e.g. `{ enable_thinking: false }` for Qwen3, or `tools`. */
  templateVars?: Record<string, unknown>;
}

const compiled = new Map<string, Template>();

/** The conversation as the template renders it. `tools` is left undefined unless templateVars sets it. */
export function renderChat(tokenizer: Tokenizer, messages: readonly ChatMessage[], opts: RenderOptions = {}): string {
  const source = opts.template ?? tokenizer.chatTemplate ?? DEFAULT_CHAT_TEMPLATE;
  try {
    let template = compiled.get(source);
    if (!template) compiled.set(source, (template = new Template(source)));
    return template.render({
      ...tokenizer.specialTokensMap(),
      ...opts.templateVars,
      messages,
      add_generation_prompt: opts.addGenerationPrompt ?? false,
    });
  } catch (e) {
    throw new ChatTemplateError(`chat template of ${tokenizer.name} failed to render: ${(e as Error).message}`);
  }
}

export interface TokenizeConversationOptions extends Omit<RenderOptions, 'addGenerationPrompt'> {
  /** Longest sequence, in tokens. Longer conversations lose tokens at the end (reported); a longer prompt is an error. */
  maxLength?: number;
  /** The text that ends an assistant turn and is trained. Default: the EOS token, else "<|im_end|>". */
  endOfTurn?: string;
}

/** A BPE merge across a prompt/response boundary: the shorter rendering's tokens are not a prefix. */
export interface BoundaryMismatch {
  /** Index of the assistant message in `messages`. */
  messageIndex: number;
  side: 'start' | 'end';
}

export interface TokenizedConversation {
  /** The rendered conversation that `ids` encode. */
  text: string;
  ids: number[];
  /** 1 on the tokens to train on (assistant turns, end-of-turn token included), 0 elsewhere. */
  lossMask: number[];
  /** Token span [start, end) of each trained assistant turn. */
  boundaries: { messageIndex: number; start: number; end: number }[];
  boundaryMismatches: BoundaryMismatch[];
  /** Human-readable notes: mismatches, template quirks and truncation. */
  warnings: string[];
  /** Tokens cut from the end to fit maxLength. */
  truncatedTokens: number;
}

/**
 * Tokenize a conversation and mask everything but the assistant turns.
 *
 * For each assistant message i, in the rendering `full` of the whole conversation:
 * - start: the rendering of messages[0..i) with the generation prompt. It must be a prefix of
 *   `full`. Where the template renders that prompt differently when a reply follows (Qwen3 with
 *   `enable_thinking: false` puts an empty `<think>` block in the generation prompt but not in
 *   earlier assistant turns), the turn starts where the two renderings diverge; this is reported
 *   in `warnings`. The messages before i must always render the same (else ChatTemplateError).
 * - end: the end of the first end-of-turn marker after the start, so `<|im_end|>` is trained and
 *   the template's separator after it ("\n") is not. A template without a marker trains the whole
 *   rendered turn.
 * - tokens: the prompt's tokens must be a prefix of `ids` (likewise the text up to the end). When
 *   BPE merged across the boundary they are not; the mismatch is reported and the boundary is
 *   placed by decoded character offsets: a token that straddles the boundary is trained (the
 *   response must be learnt whole; TRL does the same with merged prompt/response tokens).
 */
export function tokenizeConversation(
  tokenizer: Tokenizer, messages: readonly ChatMessage[], opts: TokenizeConversationOptions = {},
): TokenizedConversation {
  const render = (upTo: number, addGenerationPrompt: boolean): string =>
    renderChat(tokenizer, messages.slice(0, upTo), { ...opts, addGenerationPrompt });
  const markers = opts.endOfTurn !== undefined ? [opts.endOfTurn] : [tokenizer.eosToken, '<|im_end|>'].filter((m): m is string => !!m);
  const text = render(messages.length, false);
  const ids = tokenizer.encode(text, { addSpecialTokens: false });
  const lossMask = new Array<number>(ids.length).fill(0);
  const out: TokenizedConversation = { text, ids, lossMask, boundaries: [], boundaryMismatches: [], warnings: [], truncatedTokens: 0 };
  const decodedLength = memoDecodedLength(tokenizer, ids);

  messages.forEach((m, i) => {
    if (m.role !== 'assistant') return;
    const before = render(i, false);
    if (!text.startsWith(before)) {
      throw new ChatTemplateError(`message ${i}: the template renders messages[0..${i}) differently when later messages follow, so turn boundaries cannot be found`);
    }
    const prompt = render(i, true);
    let startChar = prompt.length;
    if (!text.startsWith(prompt)) {
      startChar = commonPrefixLength(prompt, text);
      if (startChar < before.length) throw new ChatTemplateError(`message ${i}: the generation prompt changes how messages[0..${i}) render`);
      out.warnings.push(`message ${i}: the generation prompt ${JSON.stringify(prompt.slice(startChar))} does not appear in the conversation; the turn starts at ${JSON.stringify(text.slice(before.length, startChar))}`);
    }
    const turn = render(i + 1, false);
    const turnEnd = text.startsWith(turn) ? turn.length : null;
    let endChar = firstMarkerEnd(text, markers, startChar, turnEnd ?? text.length) ?? turnEnd;
    if (endChar === null) {
      throw new ChatTemplateError(`message ${i}: no end-of-turn marker (${markers.join(', ') || 'none'}) after the assistant turn; pass endOfTurn`);
    }
    endChar = Math.max(endChar, startChar);

    const start = tokenBoundary(tokenizer, ids, text.slice(0, startChar), decodedLength, 'start');
    const stop = tokenBoundary(tokenizer, ids, text.slice(0, endChar), decodedLength, 'end');
    for (const [side, exact, at] of [['start', start.exact, startChar], ['end', stop.exact, endChar]] as const) {
      if (exact) continue;
      out.boundaryMismatches.push({ messageIndex: i, side });
      out.warnings.push(`message ${i}: BPE merged tokens across the ${side} of the assistant turn (${JSON.stringify(text.slice(Math.max(0, at - 12), at))} | ${JSON.stringify(text.slice(at, at + 12))}); aligned by decoded character offsets, straddling token trained`);
    }
    const end = Math.max(start.k, stop.k);
    out.boundaries.push({ messageIndex: i, start: start.k, end });
    lossMask.fill(1, start.k, end);
  });
  if (out.boundaries.length === 0) throw new ConversationFormatError('conversation has no assistant message to train on');
  return opts.maxLength === undefined ? out : truncate(out, opts.maxLength);
}

/** Where the tokens of `prefixText` end in `ids`: exact when they are a token prefix, else by decoded length. */
function tokenBoundary(
  tokenizer: Tokenizer, ids: readonly number[], prefixText: string, decodedLength: (k: number) => number, side: 'start' | 'end',
): { k: number; exact: boolean } {
  const prefix = tokenizer.encode(prefixText, { addSpecialTokens: false });
  let same = 0;
  while (same < prefix.length && prefix[same] === ids[same]) same++;
  if (same === prefix.length) return { k: same, exact: true };
  // Decoded lengths compare normalized text with normalized text (Qwen3 applies NFC).
  const target = tokenizer.decode(prefix).length;
  let lo = same, hi = ids.length;
  if (side === 'start') {
    // The last k whose decoded prefix fits inside the prompt: tokens from k on touch the response.
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (decodedLength(mid) <= target) lo = mid; else hi = mid - 1;
    }
  } else {
    // The first k whose decoded prefix covers the whole turn: the straddling token is included.
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (decodedLength(mid) >= target) hi = mid; else lo = mid + 1;
    }
  }
  return { k: lo, exact: false };
}

function memoDecodedLength(tokenizer: Tokenizer, ids: readonly number[]): (k: number) => number {
  const memo = new Map<number, number>();
  return (k) => {
    let n = memo.get(k);
    if (n === undefined) memo.set(k, (n = tokenizer.decode(ids.slice(0, k)).length));
    return n;
  };
}

function commonPrefixLength(a: string, b: string): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

function firstMarkerEnd(text: string, markers: readonly string[], from: number, limit: number): number | null {
  let best: number | null = null;
  for (const m of markers) {
    const at = text.indexOf(m, from);
    if (at >= 0 && at + m.length <= limit && (best === null || at + m.length < best)) best = at + m.length;
  }
  return best;
}

function truncate(out: TokenizedConversation, maxLength: number): TokenizedConversation {
  if (!Number.isInteger(maxLength) || maxLength < 1) throw new RangeError(`maxLength must be a positive integer, got ${maxLength}`);
  const n = out.ids.length;
  if (n <= maxLength) return out;
  const first = out.boundaries[0];
  if (first.start >= maxLength) {
    throw new PromptTooLongError(`prompt is ${first.start} tokens (before assistant message ${first.messageIndex}) and maxLength is ${maxLength}: no response token fits, and prompts are never truncated`);
  }
  out.ids.length = maxLength;
  out.lossMask.length = maxLength;
  out.boundaries = out.boundaries.filter((b) => b.start < maxLength).map((b) => ({ ...b, end: Math.min(b.end, maxLength) }));
  out.truncatedTokens = n - maxLength;
  out.warnings.push(`conversation is ${n} tokens; truncated to maxLength ${maxLength} (the last ${n - maxLength} tokens dropped)`);
  return out;
}

const ROLES: readonly Role[] = ['system', 'user', 'assistant', 'tool'];
/** The role of each NeMo-Aligner speaker name, lower-cased. */
const NEMO_SPEAKERS: Record<string, Role> = { user: 'user', assistant: 'assistant' };
/** A Llama 3 header, as NeMo-Aligner's Llama 3 chat data names speakers: `<|start_header_id|>user<|end_header_id|>`. */
const LLAMA3_HEADER = /^<\|start_header_id\|>\s*([^<]*?)\s*<\|end_header_id\|>$/;

/**
 * The role a NeMo-Aligner speaker name (`from`, `mask`) stands for: "User" or "Assistant", bare or
 * inside a Llama 3 header (`<|start_header_id|>assistant<|end_header_id|>`), case-insensitive and
 * ignoring surrounding whitespace; undefined for any other name.
 */
export function nemoSpeakerRole(name: unknown): Role | undefined {
  if (typeof name !== 'string') return undefined;
  const trimmed = name.trim();
  const speaker = (LLAMA3_HEADER.exec(trimmed)?.[1] ?? trimmed).toLowerCase();
  return Object.hasOwn(NEMO_SPEAKERS, speaker) ? NEMO_SPEAKERS[speaker] : undefined;
}

/**
 * A dataset record as chat messages. Accepted:
 * - TRL: `{"messages": [{"role", "content"}...]}` or the bare list; content is a string or a list
 *   of `{"type": "text", "text"}` parts (joined);
 * - NeMo-Aligner SFT chat: `{"system", "conversations": [{"from": "User"|"Assistant", "value"}], "mask": "User"}`.
 *   An empty system prompt is dropped (HF templates would render an empty system turn); `label`
 *   (SteerLM) is kept on the message; only a mask naming the user (train on Assistant turns) is
 *   supported. Other keys (`type`, KD's `tokens`, `topk_logits`, …) are ignored.
 * - NeMo-Aligner Llama 3 chat: the same, with speakers named by header tokens
 *   (`"from": "<|start_header_id|>user<|end_header_id|>"`, the same `mask`, and an optional
 *   `"system_token"`). The headers only name roles: the model's chat template renders the turns.
 */
export function normalizeConversation(record: unknown): ChatMessage[] {
  if (Array.isArray(record)) return normalizeMessages(record, 'messages');
  if (!isObject(record)) throw new ConversationFormatError('record must be an object with "messages" (TRL) or "conversations" (NeMo-Aligner)');
  if ('messages' in record && 'conversations' in record) {
    throw new ConversationFormatError('record has both "messages" (TRL) and "conversations" (NeMo-Aligner); keep one');
  }
  if ('messages' in record) {
    if (!Array.isArray(record.messages)) throw new ConversationFormatError('"messages" must be a list of {"role", "content"} objects');
    return normalizeMessages(record.messages, 'messages');
  }
  if ('conversations' in record) return normalizeNemo(record);
  throw new ConversationFormatError(`record has neither "messages" (TRL) nor "conversations" (NeMo-Aligner); keys: ${Object.keys(record).join(', ') || 'none'}`);
}

/** A list of TRL `{"role", "content"}` messages, checked; `where` names the list in errors ("prompt", "chosen"). */
export function normalizeMessages(list: unknown, where: string): ChatMessage[] {
  if (!Array.isArray(list)) throw new ConversationFormatError(`"${where}" must be a list of {"role", "content"} objects`);
  if (list.length === 0) throw new ConversationFormatError(`"${where}" is empty`);
  return list.map((m, i) => {
    if (!isObject(m)) throw new ConversationFormatError(`${where}[${i}] must be an object with "role" and "content"`);
    if (!ROLES.includes(m.role as Role)) {
      throw new ConversationFormatError(`${where}[${i}].role must be one of ${ROLES.join(', ')}, got ${JSON.stringify(m.role)}`);
    }
    return { ...m, role: m.role as Role, content: textContent(m.content, `${where}[${i}].content`) };
  });
}

function textContent(c: unknown, where: string): string {
  if (typeof c === 'string') return c;
  if (Array.isArray(c) && c.every((p) => isObject(p) && p.type === 'text' && typeof p.text === 'string')) {
    return c.map((p) => (p as { text: string }).text).join('');
  }
  throw new ConversationFormatError(`${where} must be a string or a list of {"type": "text", "text": ...} parts`);
}

function normalizeNemo(record: Record<string, unknown>): ChatMessage[] {
  const { system, conversations, mask } = record;
  if (system !== undefined && typeof system !== 'string') throw new ConversationFormatError('"system" must be a string');
  if (record.system_token !== undefined && typeof record.system_token !== 'string') throw new ConversationFormatError('"system_token" must be a string');
  if (mask !== undefined && nemoSpeakerRole(mask) !== 'user') {
    throw new ConversationFormatError(`"mask" ${JSON.stringify(mask)} is not supported: only "User" (train on the Assistant turns)`);
  }
  if (!Array.isArray(conversations) || conversations.length === 0) {
    throw new ConversationFormatError('"conversations" must be a non-empty list of {"from", "value"} objects');
  }
  const out: ChatMessage[] = system ? [{ role: 'system', content: system }] : [];
  conversations.forEach((turn, i) => {
    if (!isObject(turn)) throw new ConversationFormatError(`conversations[${i}] must be an object with "from" and "value"`);
    const role = nemoSpeakerRole(turn.from);
    if (!role) throw new ConversationFormatError(`conversations[${i}].from must be "User" or "Assistant", got ${JSON.stringify(turn.from)}`);
    if (typeof turn.value !== 'string') throw new ConversationFormatError(`conversations[${i}].value must be a string`);
    out.push(turn.label === undefined || turn.label === null ? { role, content: turn.value } : { role, content: turn.value, label: turn.label });
  });
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
