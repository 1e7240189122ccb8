/**
 * Prompt datasets of the online recipes (PPO, REINFORCE, GRPO, rejection sampling): one prompt per
 * record, tokenized up to where the response starts, plus the whole record as UTF-8 JSON so that
 * a programmatic reward sees its other keys (an expected answer) and the rollout viewer its text.
 *
 * Accepted records:
 *  - TRL prompt-only: {"prompt": "…"} or {"prompt": [{"role", "content"}, …]} (extra keys kept);
 *  - TRL conversational: {"messages": [… ending with a user turn]};
 *  - NeMo-Aligner RLHF: {"text": "…"} (the prompt with its template already applied, tokenized verbatim).
 * Plain-text prompts follow pair.ts's rules: TRL style gets the tokenizer's special tokens (BOS),
 * NeMo-Aligner's `text` none. Chat prompts end with the template's generation header.
 */
import type { ChatMessage } from '../../models/chat.js';
import { normalizeMessages, tokenizeConversation } from '../../models/chat.js';
import type { Tokenizer } from '../../models/tokenizer.js';
import { atRecord } from './jsonl.js';
import type { JsonlRecord } from './jsonl.js';
import { promptValue } from './pair.js';

export interface PromptExample {
  /** The prompt's token ids, ending where the response starts. */
  ids: number[];
  /** UTF-8 bytes of the record as JSON (its `prompt` normalised: a string or messages). */
  record: number[];
}

export const PROMPT_FIELDS = { ids: 'u32[]', record: 'u8[]' } as const;

export interface PromptOptions {
  /** Longest prompt; trainer.maxLength − rollout.maxNewTokens. */
  maxPromptLength: number;
  /** error (fail naming the line) or drop. A prompt is never cut: its end is where the answer begins. */
  overlong: 'error' | 'drop' | 'truncate';
  template?: string;
}

/** What a record asks the policy to continue: plain text (with its tokenization style) or messages. */
export function promptOf(v: Record<string, unknown>): { prompt: string | ChatMessage[]; verbatim: boolean } {
  if ('prompt' in v) return { prompt: promptValue(v.prompt), verbatim: false };
  if ('messages' in v) {
    const messages = normalizeMessages(v.messages, 'messages');
    if (messages.at(-1)?.role === 'assistant') throw new Error('"messages" ends with an assistant turn; a prompt record ends with the user turn the policy answers');
    return { prompt: messages, verbatim: false };
  }
  if ('text' in v) {
    if (typeof v.text !== 'string' || v.text === '') throw new Error('"text" must be a non-empty string');
    return { prompt: v.text, verbatim: true };
  }
  throw new Error('missing key "prompt" (or "messages", or NeMo-Aligner\'s "text")');
}

function promptIds(tok: Tokenizer, p: { prompt: string | ChatMessage[]; verbatim: boolean }, template?: string): number[] {
  if (typeof p.prompt === 'string') return tok.encode(p.prompt, { addSpecialTokens: !p.verbatim });
  const t = tokenizeConversation(tok, [...p.prompt, { role: 'assistant', content: 'x' }], { template });
  return t.ids.slice(0, t.boundaries.at(-1)!.start);
}

const utf8 = (s: string): number[] => [...Buffer.from(s, 'utf8')];

/** Tokenize one prompt record; null when data.overlong drops it. */
export function tokenizePrompt(tok: Tokenizer, rec: JsonlRecord, source: string, opts: PromptOptions): PromptExample | null {
  return atRecord(rec, source, () => {
    const p = promptOf(rec.value);
    const ids = promptIds(tok, p, opts.template);
    if (ids.length === 0) throw new Error('the prompt is empty');
    if (ids.length > opts.maxPromptLength) {
      if (opts.overlong === 'error') {
        throw new Error(`the prompt has ${ids.length} tokens; with rollout.maxNewTokens it must fit trainer.maxLength (at most ${opts.maxPromptLength} prompt tokens). Raise trainer.maxLength, or set data.overlong to drop`);
      }
      return null;
    }
    return { ids, record: utf8(JSON.stringify({ ...rec.value, line: rec.line })) };
  });
}

/** The record back from its bytes. */
export function recordOf(example: Pick<PromptExample, 'record'>): Record<string, unknown> {
  return JSON.parse(Buffer.from(example.record).toString('utf8')) as Record<string, unknown>;
}

/** A prompt as text, for the rollout viewer and error messages (chat prompts as their last user turn). */
export function promptText(record: Record<string, unknown>): string {
  const p = promptOf(record).prompt;
  return typeof p === 'string' ? p : p.at(-1)?.content ?? '';
}
