/**
 * Preference pairs for DPO and reward models, from the two record formats in use:
 *  - NeMo-Aligner: {"prompt", "chosen_response", "rejected_response", "chosen_reward"?, "rejected_reward"?};
 *  - TRL: {"prompt", "chosen", "rejected"}, strings or chat messages.
 * A plain-string prompt is taken as already templated (NeMo-Aligner's rule) and prompt and
 * response are tokenized separately, so no token can merge across their boundary; a prompt given
 * as chat messages is rendered with the chat template and the response as the assistant turn.
 */
import { tokenizeConversation } from '../../models/chat.js';
import type { ChatMessage } from '../../models/chat.js';
import type { Tokenizer } from '../../models/tokenizer.js';
import { DataError } from '../errors.js';
import type { JsonlRecord } from './jsonl.js';
import type { SftExample } from './sft.js';

export interface PreferenceExample {
  chosen: SftExample;
  rejected: SftExample;
  /** Ground-truth rewards (RPO); defaults 1 and 0 as NeMo-Aligner's. */
  chosenReward: number;
  rejectedReward: number;
}

function fail(source: string, rec: JsonlRecord, what: string): never {
  throw new DataError(`${source}:${rec.line}: ${what}`, source, rec.line);
}

/** A response given as a string, a message, or a one-message list → its text. */
function responseText(v: unknown, key: string, source: string, rec: JsonlRecord): string {
  if (typeof v === 'string') return v;
  const msg = Array.isArray(v) ? v.at(-1) : v;
  if (msg && typeof msg === 'object' && typeof (msg as ChatMessage).content === 'string') return (msg as ChatMessage).content as string;
  return fail(source, rec, v === undefined ? `missing key "${key}"` : `"${key}" must be a string or a chat message`);
}

function keysOf(rec: JsonlRecord): { chosen: string; rejected: string } {
  if ('chosen_response' in rec.value || 'rejected_response' in rec.value) return { chosen: 'chosen_response', rejected: 'rejected_response' };
  return { chosen: 'chosen', rejected: 'rejected' };
}

function tokenizePair(tok: Tokenizer, prompt: unknown, response: string, maxLength: number, source: string, rec: JsonlRecord): SftExample {
  if (typeof prompt === 'string') {
    const p = tok.encode(prompt, { addSpecialTokens: false });
    const r = tok.encode(response, { addSpecialTokens: false });
    if (r.length === 0) fail(source, rec, 'the response is empty');
    if (p.length + r.length > maxLength) fail(source, rec, `prompt (${p.length}) + response (${r.length}) tokens exceed maxLength ${maxLength}`);
    return { ids: [...p, ...r], lossMask: [...p.map(() => 0), ...r.map(() => 1)] };
  }
  if (!Array.isArray(prompt)) fail(source, rec, prompt === undefined ? 'missing key "prompt"' : '"prompt" must be a string or a list of chat messages');
  try {
    const t = tokenizeConversation(tok, [...(prompt as ChatMessage[]), { role: 'assistant', content: response }], { maxLength });
    return { ids: t.ids, lossMask: t.lossMask };
  } catch (err) {
    return fail(source, rec, (err as Error).message);
  }
}

export function tokenizePreference(tok: Tokenizer, rec: JsonlRecord, source: string, maxLength: number): PreferenceExample {
  const keys = keysOf(rec);
  const prompt = rec.value.prompt;
  const chosen = responseText(rec.value[keys.chosen], keys.chosen, source, rec);
  const rejected = responseText(rec.value[keys.rejected], keys.rejected, source, rec);
  const reward = (k: string, dflt: number): number => {
    const v = rec.value[k];
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isFinite(v)) fail(source, rec, `"${k}" must be a finite number`);
    return v;
  };
  return {
    chosen: tokenizePair(tok, prompt, chosen, maxLength, source, rec),
    rejected: tokenizePair(tok, prompt, rejected, maxLength, source, rec),
    chosenReward: reward('chosen_reward', 1),
    rejectedReward: reward('rejected_reward', 0),
  };
}
