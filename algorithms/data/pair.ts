/**
 * A prompt and one response, tokenized apart so the response's tokens are known exactly: the
 * common step of preference pairs (DPO, Bradley-Terry RM), KTO and prompt-completion SFT.
 *
 * - Chat form (the prompt is a list of messages): prompt + response are rendered once with the chat
 *   template (`tokenizeConversation`); the prompt is every token before the response's assistant
 *   turn and the response runs to the end of its end-of-turn token (the separator after it, which
 *   nothing trains on, is left out).
 * - Plain text, NeMo-Aligner's rule (`style: 'nemo'`): the prompt already holds the template and the
 *   response its end-of-turn text, so both are tokenized verbatim, without special tokens, apart
 *   so no token can merge across their boundary.
 * - Plain text, TRL's rule (`style: 'trl'`): as TRL's trainers do, the prompt gets the tokenizer's
 *   special tokens (BOS where its post-processor adds one) and the response ends with EOS, which is
 *   appended unless the response already ends with it.
 */
import { normalizeMessages, tokenizeConversation } from '../../models/chat.js';
import type { ChatMessage } from '../../models/chat.js';
import type { Tokenizer } from '../../models/tokenizer.js';
import type { SftExample } from './sft.js';

/** How a plain-text (non-chat) record is tokenized; see the header. */
export type TextStyle = 'trl' | 'nemo';

/** A prompt and a response tokenized apart: the prompt's ids, then the response's. */
export interface PromptResponseIds {
  prompt: number[];
  response: number[];
}

export interface PromptResponseOptions {
  style: TextStyle;
  /** Chat template override for chat-form prompts; default the tokenizer's own (or ChatML). */
  template?: string;
  /** An empty plain-text response is scored, not refused (a sampled response that ended at once). */
  allowEmpty?: boolean;
}

/** A response as a record gives it: its text, or the assistant message itself (extra keys kept for the template). */
export type Response = string | ChatMessage;

/** Tokenize `prompt` then `response`; errors are plain Errors for the caller to place (see atRecord). */
export function tokenizePromptResponse(
  tok: Tokenizer, prompt: string | readonly ChatMessage[], response: Response, opts: PromptResponseOptions,
): PromptResponseIds {
  if (typeof prompt === 'string') {
    const text = typeof response === 'string' ? response : response.content;
    const ids = tok.encode(text, { addSpecialTokens: false });
    if (ids.length === 0 && !opts.allowEmpty) throw new Error('the response is empty');
    if (opts.style === 'nemo') return { prompt: tok.encode(prompt, { addSpecialTokens: false }), response: ids };
    if (tok.eosTokenId !== null && ids.at(-1) !== tok.eosTokenId) ids.push(tok.eosTokenId);
    return { prompt: tok.encode(prompt, { addSpecialTokens: true }), response: ids };
  }
  const turn: ChatMessage = typeof response === 'string' ? { role: 'assistant', content: response } : response;
  if (turn.role !== 'assistant') throw new Error(`the response must be an assistant message, got role "${turn.role}"`);
  const t = tokenizeConversation(tok, [...prompt, turn], { template: opts.template });
  const last = t.boundaries.at(-1)!;
  return { prompt: t.ids.slice(0, last.start), response: t.ids.slice(last.start, last.end) };
}

/**
 * One sequence from a prompt and a completion, training on the completion. KTO pairs prompt i
 * with completion j for its KL estimate; with `maxLength` the completion is cut to fit after the
 * prompt (each prompt fits by itself, since its own example did).
 */
export function joinPromptCompletion(
  prompt: readonly number[], completion: readonly number[], maxLength?: number,
): SftExample & { promptLength: number } {
  const kept = maxLength === undefined ? completion : completion.slice(0, Math.max(0, maxLength - prompt.length));
  return {
    ids: [...prompt, ...kept],
    lossMask: [...prompt.map(() => 0), ...kept.map(() => 1)],
    promptLength: prompt.length,
  };
}

/** A prompt field: a string (plain text) or a list of chat messages. */
export function promptValue(v: unknown, key = 'prompt'): string | ChatMessage[] {
  if (v === undefined) throw new Error(`missing key "${key}"`);
  if (typeof v === 'string') return v;
  if (!Array.isArray(v)) throw new Error(`"${key}" must be a string or a list of chat messages`);
  return normalizeMessages(v, key);
}

/** A response field: a string, an assistant message, or a list holding one assistant message. */
export function responseValue(v: unknown, key: string): Response {
  if (v === undefined) throw new Error(`missing key "${key}"`);
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && v.length !== 1) throw new Error(`"${key}" must hold one assistant message, got ${v.length} messages`);
  if (Array.isArray(v) || (typeof v === 'object' && v !== null)) {
    const [msg] = normalizeMessages(Array.isArray(v) ? v : [v], key);
    if (msg.role !== 'assistant') throw new Error(`"${key}" must be an assistant message, got role "${msg.role}"`);
    return msg;
  }
  throw new Error(`"${key}" must be a string or a chat message`);
}
