/**
 * SFT (and KD) examples from the record formats users bring, tokenized into ids and a loss mask
 * (1 on the tokens the loss trains on). One row of SFT_FORMATS per format, tried in order:
 *  - NeMo-Aligner prompt/response `{"input", "output"}`: one user turn and one assistant turn,
 *    rendered with the chat template;
 *  - chat: NeMo-Aligner `{"system", "conversations": [{"from", "value"}], "mask": "User"}` (also
 *    its Llama 3 header speaker names) and TRL `{"messages": [{"role", "content"}]}`: every
 *    assistant turn is trained;
 *  - TRL prompt-completion `{"prompt", "completion"}`: strings (TRL's plain-text rule, see pair.ts)
 *    or messages (prompt + completion rendered as one chat); only the completion is trained;
 *  - TRL language modelling `{"text"}`: tokenized with the tokenizer's special tokens and EOS
 *    appended, as TRL does; every token but the first is trained.
 * Other keys are ignored, so NeMo-Aligner KD rows (SFT rows carrying `tokens`, `labels`,
 * `loss_mask`, `topk_logits`, `topk_token_ids`, `log_sum_exp_logits`) read as SFT rows; the
 * teacher's logits are recomputed, not read.
 *
 * Length: `maxLength` and `overlong` follow overlong.ts ('error' by default; 'truncate' keeps the
 * first maxLength tokens and drops an example left with no trained token).
 */
import { normalizeConversation, normalizeMessages, renderChat, tokenizeConversation } from '../../models/chat.js';
import { steeredContent, steeredPromptText } from './steerlm.js';
import type { ChatMessage } from '../../models/chat.js';
import type { Tokenizer } from '../../models/tokenizer.js';
import type { JsonlRecord } from './jsonl.js';
import { atRecord, recordError, stringField } from './jsonl.js';
import { fitPromptResponse, fitSequence } from './overlong.js';
import type { LengthOptions } from './overlong.js';
import { joinPromptCompletion, promptValue, responseValue, tokenizePromptResponse } from './pair.js';

export interface SftExample {
  ids: number[];
  /** 1 on tokens that the loss trains on (assistant turns, the completion, or the whole text). */
  lossMask: number[];
}

export interface SftTokenizeOptions extends LengthOptions {
  /** Chat template override; default the tokenizer's own (or ChatML). */
  template?: string;
}

export interface SftFormat {
  /** Who defines it, and its keys, for errors and the README. */
  name: string;
  matches: (v: Record<string, unknown>) => boolean;
  /** The conversation the record describes, for formats that are chat; null for plain text. */
  messages: ((rec: JsonlRecord, source: string) => ChatMessage[]) | null;
  /** The example under the length policy (null: dropped); errors are placed by the caller. */
  tokenize: (tok: Tokenizer, rec: JsonlRecord, source: string, opts: SftTokenizeOptions) => SftExample | null;
}

/**
 * Render a conversation and train the assistant turns at or after `firstTrained` (a message index).
 * An assistant turn with a SteerLM `label` (NeMo-Aligner's SteerLM format) opens with the label
 * prefix (algorithms/data/steerlm.ts), which belongs to the prompt: it conditions the response and
 * is not trained.
 */
function chatExample(
  tok: Tokenizer, rec: JsonlRecord, source: string, messages: ChatMessage[], opts: SftTokenizeOptions, firstTrained = 0,
): SftExample | null {
  const steered = messages.map((m) => (m.role === 'assistant' && typeof m.label === 'string' ? { ...m, content: steeredContent(m.label, m.content) } : m));
  const t = tokenizeConversation(tok, steered, { template: opts.template });
  const lossMask = new Array<number>(t.ids.length).fill(0);
  for (const b of t.boundaries) {
    if (b.messageIndex < firstTrained) continue;
    const label = messages[b.messageIndex].label;
    const start = typeof label === 'string' ? labelEnd(tok, t.ids, steered, b.messageIndex, label, opts.template) : b.start;
    lossMask.fill(1, Math.max(b.start, start), b.end);
  }
  if (!lossMask.some(Boolean)) throw new Error('no assistant token is left to train on');
  return fitSequence({ ids: t.ids, lossMask }, opts, rec, source);
}

/** The first token after a steered turn's label prefix (by decoded length when BPE merged across it). */
function labelEnd(tok: Tokenizer, ids: readonly number[], messages: readonly ChatMessage[], i: number, label: string, template?: string): number {
  const prefix = steeredPromptText((m, g) => renderChat(tok, m as ChatMessage[], { template, addGenerationPrompt: g }), messages.slice(0, i), label);
  const exact = tok.encode(prefix, { addSpecialTokens: false });
  if (exact.every((id, k) => ids[k] === id)) return exact.length;
  let k = 0;
  while (k < ids.length && tok.decode(ids.slice(0, k)).length < prefix.length) k++;
  return k;
}

const ioMessages = (rec: JsonlRecord, source: string): ChatMessage[] => [
  { role: 'user', content: stringField(rec, 'input', source) },
  { role: 'assistant', content: stringField(rec, 'output', source) },
];

const chatMessages = (rec: JsonlRecord, source: string): ChatMessage[] => atRecord(rec, source, () => normalizeConversation(rec.value));

/** Conversational prompt-completion: the prompt's messages, then the completion's. */
function promptCompletionMessages(rec: JsonlRecord, source: string): ChatMessage[] {
  return atRecord(rec, source, () => {
    const prompt = promptValue(rec.value.prompt);
    if (typeof prompt === 'string') throw new Error('a plain-text prompt/completion record has no chat messages');
    const c = rec.value.completion;
    if (c === undefined) throw new Error('missing key "completion"');
    const completion = typeof c === 'string' ? [{ role: 'assistant' as const, content: c }] : normalizeMessages(Array.isArray(c) ? c : [c], 'completion');
    return [...prompt, ...completion];
  });
}

export const SFT_FORMATS: readonly SftFormat[] = [
  {
    name: 'NeMo-Aligner prompt/response {"input", "output"}',
    matches: (v) => 'input' in v || 'output' in v,
    messages: ioMessages,
    tokenize: (tok, rec, source, opts) => chatExample(tok, rec, source, ioMessages(rec, source), opts),
  },
  {
    name: 'chat {"conversations": [...]} (NeMo-Aligner) or {"messages": [...]} (TRL)',
    matches: (v) => 'messages' in v || 'conversations' in v,
    messages: chatMessages,
    tokenize: (tok, rec, source, opts) => chatExample(tok, rec, source, chatMessages(rec, source), opts),
  },
  {
    name: 'TRL prompt-completion {"prompt", "completion"}',
    matches: (v) => 'prompt' in v || 'completion' in v,
    messages: promptCompletionMessages,
    tokenize: (tok, rec, source, opts) => {
      if (typeof rec.value.prompt !== 'string') {
        const messages = promptCompletionMessages(rec, source); // checks that "prompt" is a list of messages
        return chatExample(tok, rec, source, messages, opts, (rec.value.prompt as unknown[]).length);
      }
      const p = tokenizePromptResponse(tok, rec.value.prompt, responseValue(rec.value.completion, 'completion'), { style: 'trl', template: opts.template });
      const fitted = fitPromptResponse(p, opts, rec, source);
      if (fitted === null) return null;
      const { ids, lossMask } = joinPromptCompletion(fitted.prompt, fitted.response);
      return { ids, lossMask };
    },
  },
  {
    name: 'TRL language modelling {"text"}',
    matches: (v) => 'text' in v,
    messages: null,
    tokenize: (tok, rec, source, opts) => {
      const text = stringField(rec, 'text', source);
      const ids = tok.encode(text, { addSpecialTokens: true });
      if (tok.eosTokenId !== null && ids.at(-1) !== tok.eosTokenId) ids.push(tok.eosTokenId);
      if (ids.length < 2) throw new Error(`"text" is ${ids.length} token(s); at least 2 are needed to train on`);
      return fitSequence({ ids, lossMask: ids.map((_, i) => (i === 0 ? 0 : 1)) }, opts, rec, source);
    },
  },
];

function formatOf(rec: JsonlRecord, source: string): SftFormat {
  const format = SFT_FORMATS.find((f) => f.matches(rec.value));
  if (format) return format;
  throw recordError(rec, source,
    `unrecognised SFT record; expected ${SFT_FORMATS.map((f) => f.name).join(', ')}; got keys [${Object.keys(rec.value).join(', ')}]`);
}

/** The conversation a record describes, in chat-message form (a DataError for plain-text formats). */
export function sftMessages(rec: JsonlRecord, source: string): ChatMessage[] {
  const format = formatOf(rec, source);
  if (format.messages === null) throw recordError(rec, source, `a ${format.name} record is plain text and has no chat messages`);
  return format.messages(rec, source);
}

/** Tokenize one SFT record: the example, or null when the overlong policy drops it. */
export function tokenizeSft(tok: Tokenizer, rec: JsonlRecord, source: string, opts: SftTokenizeOptions & { overlong?: 'error' }): SftExample;
export function tokenizeSft(tok: Tokenizer, rec: JsonlRecord, source: string, opts: SftTokenizeOptions): SftExample | null;
export function tokenizeSft(tok: Tokenizer, rec: JsonlRecord, source: string, opts: SftTokenizeOptions): SftExample | null {
  const format = formatOf(rec, source);
  return atRecord(rec, source, () => format.tokenize(tok, rec, source, opts));
}
