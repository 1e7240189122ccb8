/**
 * Preference pairs for DPO and Bradley-Terry reward models, from the record formats in use:
 *  - NeMo-Aligner: {"prompt", "chosen_response", "rejected_response", "chosen_reward"?, "rejected_reward"?};
 *  - TRL explicit prompt: {"prompt", "chosen", "rejected"}, strings or chat messages;
 *  - TRL implicit prompt: {"chosen", "rejected"} only, each the whole dialogue (a list of messages,
 *    or one string). The shared leading messages are the prompt and the differing last assistant
 *    turn is the response; for strings the prompt is the longest shared leading text, without the
 *    space before the first differing character (TRL's `extract_prompt`).
 *  - optional "margin" (TRL's RewardTrainer column): a per-pair number for margin losses.
 * Plain-text prompts and responses are tokenized apart (pair.ts): NeMo-Aligner's verbatim, TRL's
 * with BOS and EOS as TRL adds them; a chat prompt is rendered with the chat template and the
 * response as the assistant turn after it. Only the response is trained, in every format.
 * NeMo-Aligner's alternating RM text lines are read by reward.ts.
 *
 * Length: each of chosen and rejected follows overlong.ts; 'truncate' cuts the responses, and the
 * pair is dropped (null) when either side is dropped.
 */
import { normalizeMessages } from '../../models/chat.js';
import type { ChatMessage } from '../../models/chat.js';
import type { Tokenizer } from '../../models/tokenizer.js';
import type { JsonlRecord } from './jsonl.js';
import { atRecord } from './jsonl.js';
import { fitPromptResponse } from './overlong.js';
import type { LengthOptions } from './overlong.js';
import { joinPromptCompletion, promptValue, responseValue, tokenizePromptResponse } from './pair.js';
import type { Response } from './pair.js';
import type { SftExample } from './sft.js';

export interface PreferenceExample {
  chosen: SftExample;
  rejected: SftExample;
  /** Ground-truth rewards (RPO); defaults 1 and 0 as NeMo-Aligner's. */
  chosenReward: number;
  rejectedReward: number;
  /** The record's "margin" (TRL), for margin Bradley-Terry losses; absent when the record has none. */
  margin?: number;
}

export interface PreferenceTokenizeOptions extends LengthOptions {
  /** Chat template override for chat-form records; default the tokenizer's own (or ChatML). */
  template?: string;
}

interface Pair {
  prompt: string | ChatMessage[];
  chosen: Response;
  rejected: Response;
}

const canonical = (m: ChatMessage): string => JSON.stringify(Object.keys(m).sort().map((k) => [k, m[k]]));

/** TRL implicit prompt, chat form: the shared leading messages, then one differing assistant turn each. */
function splitMessages(chosen: ChatMessage[], rejected: ChatMessage[]): Pair {
  let k = 0;
  while (k < chosen.length && k < rejected.length && canonical(chosen[k]) === canonical(rejected[k])) k++;
  if (k === chosen.length && k === rejected.length) throw new Error('"chosen" and "rejected" are the same dialogue');
  if (k === 0) {
    throw new Error('"chosen" and "rejected" share no leading messages, so there is no prompt (TRL implicit prompt); add a "prompt" key');
  }
  if (chosen.length !== k + 1 || rejected.length !== k + 1) {
    throw new Error(`"chosen" and "rejected" must differ only in their last message (the response); they share ${k} leading message${k === 1 ? '' : 's'}, then have ${chosen.length - k} and ${rejected.length - k} more`);
  }
  for (const [key, list] of [['chosen', chosen], ['rejected', rejected]] as const) {
    if (list[k].role !== 'assistant') throw new Error(`the last message of "${key}" must be an assistant turn (the response), got role "${list[k].role}"`);
  }
  return { prompt: chosen.slice(0, k), chosen: chosen[k], rejected: rejected[k] };
}

/** TRL implicit prompt, plain text: the longest shared leading text, less a trailing space. */
function splitText(chosen: string, rejected: string): Pair {
  let k = 0;
  while (k < chosen.length && k < rejected.length && chosen[k] === rejected[k]) k++;
  if (chosen === rejected) throw new Error('"chosen" and "rejected" are the same text');
  if (k === chosen.length || k === rejected.length) throw new Error('one of "chosen" and "rejected" is the start of the other: no response left to compare');
  if (k > 0 && chosen[k - 1] === ' ') k--; // the space belongs to the response, as TRL's extract_prompt does
  if (k === 0) throw new Error('"chosen" and "rejected" share no leading text, so there is no prompt (TRL implicit prompt); add a "prompt" key');
  return { prompt: chosen.slice(0, k), chosen: chosen.slice(k), rejected: rejected.slice(k) };
}

function implicitPrompt(chosen: unknown, rejected: unknown): Pair {
  if (chosen === undefined) throw new Error('missing key "chosen"');
  if (rejected === undefined) throw new Error('missing key "rejected"');
  if (typeof chosen === 'string' && typeof rejected === 'string') return splitText(chosen, rejected);
  if (Array.isArray(chosen) && Array.isArray(rejected)) return splitMessages(normalizeMessages(chosen, 'chosen'), normalizeMessages(rejected, 'rejected'));
  throw new Error('without a "prompt", "chosen" and "rejected" must be the whole dialogues (TRL implicit prompt): both lists of chat messages or both strings');
}

function numberOr(rec: JsonlRecord, key: string, dflt: number): number {
  const v = rec.value[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`"${key}" must be a finite number, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * Tokenize one preference record; null when the overlong policy drops it. `opts` may be the
 * maxLength alone (overlong 'error').
 */
export function tokenizePreference(tok: Tokenizer, rec: JsonlRecord, source: string, maxLength: number): PreferenceExample;
export function tokenizePreference(tok: Tokenizer, rec: JsonlRecord, source: string, opts: PreferenceTokenizeOptions & { overlong?: 'error' }): PreferenceExample;
export function tokenizePreference(tok: Tokenizer, rec: JsonlRecord, source: string, opts: number | PreferenceTokenizeOptions): PreferenceExample | null;
export function tokenizePreference(tok: Tokenizer, rec: JsonlRecord, source: string, opts: number | PreferenceTokenizeOptions): PreferenceExample | null {
  const o: PreferenceTokenizeOptions = typeof opts === 'number' ? { maxLength: opts } : opts;
  return atRecord(rec, source, () => {
    const v = rec.value;
    const nemo = 'chosen_response' in v || 'rejected_response' in v;
    const [ck, rk] = nemo ? ['chosen_response', 'rejected_response'] : ['chosen', 'rejected'];
    const pair: Pair = !nemo && !('prompt' in v)
      ? implicitPrompt(v.chosen, v.rejected)
      : { prompt: promptValue(v.prompt), chosen: responseValue(v[ck], ck), rejected: responseValue(v[rk], rk) };
    const chosenReward = numberOr(rec, 'chosen_reward', 1);
    const rejectedReward = numberOr(rec, 'rejected_reward', 0);
    const margin = v.margin === undefined ? undefined : numberOr(rec, 'margin', 0);
    const side = (what: string, response: Response): SftExample | null => {
      const fitted = fitPromptResponse(tokenizePromptResponse(tok, pair.prompt, response, { style: nemo ? 'nemo' : 'trl', template: o.template }), o, rec, source, what);
      if (fitted === null) return null;
      const { ids, lossMask } = joinPromptCompletion(fitted.prompt, fitted.response);
      return { ids, lossMask };
    };
    const chosen = side('chosen', pair.chosen);
    const rejected = side('rejected', pair.rejected);
    if (chosen === null || rejected === null) return null;
    return { chosen, rejected, chosenReward, rejectedReward, ...(margin === undefined ? {} : { margin }) };
  });
}
