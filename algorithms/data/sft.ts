/**
 * SFT examples from the three record formats users bring, tokenized with the model's chat
 * template (or a plain prompt template) into ids and an assistant-only loss mask:
 *  - NeMo-Aligner prompt/response: {"input", "output"};
 *  - NeMo-Aligner chat: {"system", "conversations": [{"from", "value"}], "mask": "User"};
 *  - TRL conversational: {"messages": [{"role", "content"}]}.
 */
import { normalizeConversation, tokenizeConversation } from '../../models/chat.js';
import type { ChatMessage } from '../../models/chat.js';
import type { Tokenizer } from '../../models/tokenizer.js';
import { DataError } from '../errors.js';
import type { JsonlRecord } from './jsonl.js';
import { stringField } from './jsonl.js';

export interface SftExample {
  ids: number[];
  /** 1 on tokens that the loss trains on (assistant turns). */
  lossMask: number[];
}

export interface SftTokenizeOptions {
  maxLength: number;
  /** Chat template override; default the tokenizer's own (or ChatML). */
  template?: string;
}


/** The conversation a record describes, in chat-message form. */
export function sftMessages(rec: JsonlRecord, source: string): ChatMessage[] {
  const v = rec.value;
  if ('input' in v || 'output' in v) {
    return [{ role: 'user', content: stringField(rec, 'input', source) }, { role: 'assistant', content: stringField(rec, 'output', source) }];
  }
  if ('messages' in v || 'conversations' in v) {
    try {
      return normalizeConversation(v);
    } catch (err) {
      throw new DataError(`${source}:${rec.line}: ${(err as Error).message}`, source, rec.line);
    }
  }
  throw new DataError(
    `${source}:${rec.line}: unrecognised SFT record; expected {"input","output"}, {"conversations": [...]} or {"messages": [...]}, got keys [${Object.keys(v).join(', ')}]`,
    source, rec.line,
  );
}

export function tokenizeSft(tok: Tokenizer, rec: JsonlRecord, source: string, opts: SftTokenizeOptions): SftExample {
  const messages = sftMessages(rec, source);
  try {
    const t = tokenizeConversation(tok, messages, { template: opts.template, maxLength: opts.maxLength });
    if (!t.lossMask.some(Boolean)) throw new Error('no assistant token is left to train on');
    return { ids: t.ids, lossMask: t.lossMask };
  } catch (err) {
    if (err instanceof DataError) throw err;
    throw new DataError(`${source}:${rec.line}: ${(err as Error).message}`, source, rec.line);
  }
}
