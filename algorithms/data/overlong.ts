/**
 * The over-long policy (`data.overlong`): what every tokenize function of algorithms/data does
 * with an example longer than `maxLength` tokens.
 *  - 'error' (default): a DataError `file:line: … is N tokens (…), more than maxLength M`, so
 *    preparation fails before training, naming the record.
 *  - 'drop': the function returns null; the caller counts the dropped record.
 *  - 'truncate': keep the first maxLength tokens. For a prompt and a response (preference pairs,
 *    KTO, prompt-completion) only the response is cut and the whole prompt is kept; a prompt that
 *    alone fills maxLength is dropped (null). An example left with nothing to train on (no token of
 *    its loss mask) is dropped too. A prompt is never cut: its start is the instruction.
 */
import type { OVERLONG_POLICIES } from '../config/common.js';
import type { JsonlRecord } from './jsonl.js';
import { recordError } from './jsonl.js';
import type { PromptResponseIds } from './pair.js';
import type { SftExample } from './sft.js';

export type OverlongPolicy = (typeof OVERLONG_POLICIES)[number];

export interface LengthOptions {
  /** Longest tokenized sequence (trainer.maxLength). */
  maxLength: number;
  /** What to do with a longer one; default 'error'. */
  overlong?: OverlongPolicy;
  /** Told the record's line when 'truncate' cuts it (for the preparation report). */
  onTruncate?: (line: number) => void;
}

/**
 * How many tokens of an n-token example to keep: n when it fits, maxLength to truncate, null to
 * drop; under 'error' a DataError naming the record. `what` names the sequence and its parts
 * ("chosen (prompt 12 + response 40)").
 */
export function keptLength(n: number, limits: LengthOptions, rec: JsonlRecord, source: string, what: string): number | null {
  const { maxLength } = limits;
  if (!Number.isInteger(maxLength) || maxLength < 1) throw new RangeError(`maxLength must be a positive integer, got ${maxLength}`);
  if (n <= maxLength) return n;
  const policy = limits.overlong ?? 'error';
  switch (policy) {
    case 'error':
      throw recordError(rec, source, `${what} is ${n} tokens, more than maxLength ${maxLength} (overlong "drop" skips such records, "truncate" cuts them)`);
    case 'drop':
      return null;
    case 'truncate':
      limits.onTruncate?.(rec.line);
      return maxLength;
    default:
      throw new RangeError(`overlong must be one of error, drop, truncate, got ${JSON.stringify(policy)}`);
  }
}

/** One sequence under the policy: truncation keeps its first maxLength tokens; null if none of them is trained. */
export function fitSequence<T extends SftExample>(ex: T, limits: LengthOptions, rec: JsonlRecord, source: string, what = 'the example'): T | null {
  const n = keptLength(ex.ids.length, limits, rec, source, what);
  if (n === null) return null;
  if (n === ex.ids.length) return ex;
  const lossMask = ex.lossMask.slice(0, n);
  return lossMask.some(Boolean) ? { ...ex, ids: ex.ids.slice(0, n), lossMask } : null;
}

/** A prompt and a response under the policy: truncation cuts the response; null when the prompt alone fills maxLength. */
export function fitPromptResponse(
  p: PromptResponseIds, limits: LengthOptions, rec: JsonlRecord, source: string, what = 'the example',
): PromptResponseIds | null {
  const n = keptLength(p.prompt.length + p.response.length, limits, rec, source, `${what} (prompt ${p.prompt.length} + response ${p.response.length})`);
  if (n === null) return null;
  if (n === p.prompt.length + p.response.length) return p;
  const room = n - p.prompt.length;
  return room > 0 ? { prompt: p.prompt, response: p.response.slice(0, room) } : null;
}
