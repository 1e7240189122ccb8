/**
 * KTO examples (unpaired preferences): a prompt, one completion, and whether it is desirable.
 *  - TRL: {"prompt", "completion", "label": true|false}, strings or chat messages;
 *  - NeMo-Aligner: {"prompt", "response", "preference": "chosen"|"rejected"}.
 * Prompt and completion ids are kept apart because KTO's KL reference point pairs prompt i with
 * completion j (Ethayarajh et al. 2024, §4): `joinPromptCompletion(a.prompt, b.completion,
 * maxLength)` builds a mismatched sequence, `ktoSequence(ex)` the example's own. Tokenization is
 * pair.ts's (NeMo-Aligner text verbatim, TRL text with BOS/EOS, chat prompts through the template).
 *
 * Length: overlong.ts; 'truncate' cuts the completion and keeps the whole prompt, and drops the
 * record (null) when the prompt alone fills maxLength.
 */
import type { Tokenizer } from '../../models/tokenizer.js';
import type { JsonlRecord } from './jsonl.js';
import { atRecord } from './jsonl.js';
import { fitPromptResponse } from './overlong.js';
import type { LengthOptions } from './overlong.js';
import { joinPromptCompletion, promptValue, responseValue, tokenizePromptResponse } from './pair.js';
import type { SftExample } from './sft.js';

export interface KtoExample {
  prompt: number[];
  completion: number[];
  /** true: a desirable completion (TRL label true, NeMo-Aligner "chosen"). */
  desirable: boolean;
}

export interface KtoTokenizeOptions extends LengthOptions {
  /** Chat template override for chat-form records; default the tokenizer's own (or ChatML). */
  template?: string;
}

const PREFERENCES: Record<string, boolean> = { chosen: true, rejected: false };

function desirableOf(rec: JsonlRecord, nemo: boolean): boolean {
  const v = rec.value;
  if (nemo) {
    const p = v.preference;
    if (p === undefined) throw new Error('missing key "preference" ("chosen" for a desirable response, "rejected" for an undesirable one)');
    if (typeof p !== 'string' || !Object.hasOwn(PREFERENCES, p)) throw new Error(`"preference" must be "chosen" or "rejected", got ${JSON.stringify(p)}`);
    return PREFERENCES[p];
  }
  if (v.label === undefined) throw new Error('missing key "label" (true for a desirable completion, false for an undesirable one)');
  if (typeof v.label !== 'boolean') throw new Error(`"label" must be true (desirable) or false (undesirable), got ${JSON.stringify(v.label)}`);
  return v.label;
}

/** Tokenize one KTO record; null when the overlong policy drops it. */
export function tokenizeKto(tok: Tokenizer, rec: JsonlRecord, source: string, opts: KtoTokenizeOptions): KtoExample | null {
  return atRecord(rec, source, () => {
    const v = rec.value;
    const nemo = 'response' in v || 'preference' in v;
    const key = nemo ? 'response' : 'completion';
    const prompt = promptValue(v.prompt);
    const completion = responseValue(v[key], key);
    const desirable = desirableOf(rec, nemo);
    const ids = tokenizePromptResponse(tok, prompt, completion, { style: nemo ? 'nemo' : 'trl', template: opts.template });
    const fitted = fitPromptResponse(ids, opts, rec, source);
    return fitted && { prompt: fitted.prompt, completion: fitted.response, desirable };
  });
}

/** The example's own sequence: ids, the completion-only loss mask, the prompt's length, and its label. */
export function ktoSequence(ex: KtoExample): SftExample & { promptLength: number; desirable: boolean } {
  return { ...joinPromptCompletion(ex.prompt, ex.completion), desirable: ex.desirable };
}
