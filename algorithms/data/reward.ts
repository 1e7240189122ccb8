/**
 * Reward-model data beyond preference records (which preference.ts reads for Bradley-Terry pairs):
 *  - NeMo-Aligner pairwise text: alternating lines `{"text": prompt‖chosen}`, `{"text": prompt‖rejected}`,
 *    the chosen one at every even record index (0, 2, …) and its rejected one right after it.
 *    `pairAlternatingText` pairs the records (a generator for streams, or over an array) and
 *    `tokenizeTextPair` tokenizes one pair. `tokenizeRewardPairs` reads a whole stream in either
 *    pairwise format (these lines, or any preference format) into RewardPairs.
 *  - NeMo-Aligner regression (SteerLM attribute RM): `{"text": "…", "label": [f0, …, fN-1]}`, with
 *    −100 marking an attribute the loss skips; `tokenizeRegression` checks the label's arity.
 * Texts are NeMo-Aligner's, so they are tokenized verbatim: no special tokens added (the text holds
 * its template). The reward is read at the last token. Length: overlong.ts ('truncate' keeps the
 * first maxLength tokens, which cuts the end where the score is read: prefer 'drop' for RMs).
 */
import type { Tokenizer } from '../../models/tokenizer.js';
import { REGRESSION_MASK } from '../losses/reward.js';
import type { JsonlRecord } from './jsonl.js';
import { atRecord, describeJson, recordError, stringField } from './jsonl.js';
import { keptLength } from './overlong.js';
import type { LengthOptions } from './overlong.js';
import { tokenizePreference } from './preference.js';
import type { PreferenceExample, PreferenceTokenizeOptions } from './preference.js';

/** The two records of one NeMo-Aligner RM pair. */
export interface TextPair {
  chosen: JsonlRecord;
  rejected: JsonlRecord;
}

export interface RegressionExample {
  ids: number[];
  /** One target per attribute; REGRESSION_MASK (−100, losses/reward.ts) where the attribute is unknown. */
  labels: number[];
}

export interface RegressionTokenizeOptions extends LengthOptions {
  /** Attributes per label (regression.num_attributes; 9 in NeMo-Aligner's HelpSteer tutorials). */
  numAttributes: number;
}

function unpaired(rec: JsonlRecord, source: string, index: number): never {
  throw recordError(rec, source,
    `record ${index} is a chosen text with no rejected text after it: NeMo-Aligner RM data alternates {"text": prompt+chosen} and {"text": prompt+rejected} lines, so it needs an even number of records`);
}

/**
 * Pair alternating chosen/rejected records: record 2i is chosen and 2i+1 its rejected (indices
 * count records, not lines, so blank lines do not shift them). An array gives an array; a stream
 * (streamJsonl) gives a stream. An odd count is a DataError naming the last record's line.
 */
export function pairAlternatingText(records: readonly JsonlRecord[], source: string): TextPair[];
export function pairAlternatingText(records: AsyncIterable<JsonlRecord>, source: string): AsyncGenerator<TextPair>;
export function pairAlternatingText(records: readonly JsonlRecord[] | AsyncIterable<JsonlRecord>, source: string): TextPair[] | AsyncGenerator<TextPair> {
  if (!Array.isArray(records)) return pairStream(records as AsyncIterable<JsonlRecord>, source);
  const list = records as readonly JsonlRecord[];
  if (list.length % 2 === 1) unpaired(list[list.length - 1], source, list.length - 1);
  return Array.from({ length: list.length / 2 }, (_, i) => ({ chosen: list[2 * i], rejected: list[2 * i + 1] }));
}

async function* pairStream(records: AsyncIterable<JsonlRecord>, source: string): AsyncGenerator<TextPair> {
  let chosen: JsonlRecord | null = null;
  let index = 0;
  for await (const rec of records) {
    if (chosen === null) chosen = rec;
    else {
      yield { chosen, rejected: rec };
      chosen = null;
    }
    index++;
  }
  if (chosen !== null) unpaired(chosen, source, index - 1);
}

/**
 * A Bradley-Terry pair as the RM trains on it: the token ids of the chosen and of the rejected
 * sequence (the score is read at each one's last token), and the pair's margin (the record's
 * "margin", else 0).
 */
export interface RewardPair {
  chosen: number[];
  rejected: number[];
  margin: number;
}

/** A record prepared for training, or dropped by the overlong policy (with why, for the report). */
export type PreparedPair = { example: RewardPair } | { dropped: string };

function textIds(tok: Tokenizer, rec: JsonlRecord, source: string, opts: LengthOptions, what: string): number[] | null {
  return atRecord(rec, source, () => {
    const ids = tok.encode(stringField(rec, 'text', source), { addSpecialTokens: false });
    if (ids.length === 0) throw new Error('"text" is empty');
    const kept = keptLength(ids.length, opts, rec, source, what);
    return kept === null ? null : ids.slice(0, kept);
  });
}

/** Tokenize one NeMo-Aligner RM text pair; null when the overlong policy drops either side. */
export function tokenizeTextPair(tok: Tokenizer, pair: TextPair, source: string, opts: LengthOptions): RewardPair | null {
  const chosen = textIds(tok, pair.chosen, source, opts, 'the chosen text');
  const rejected = textIds(tok, pair.rejected, source, opts, 'the rejected text');
  return chosen === null || rejected === null ? null : { chosen, rejected, margin: 0 };
}

/** A preference example's pair of sequences, for the RM. */
export function rewardPair(ex: PreferenceExample): RewardPair {
  return { chosen: ex.chosen.ids, rejected: ex.rejected.ids, margin: ex.margin ?? 0 };
}

/** The first record of a stream (null if none), and an iterable over the whole stream again. */
async function peek(records: AsyncIterable<JsonlRecord>): Promise<{ first: JsonlRecord | null; all: AsyncIterable<JsonlRecord> }> {
  const it = records[Symbol.asyncIterator]();
  const head = await it.next();
  if (head.done) return { first: null, all: records };
  async function* all(): AsyncGenerator<JsonlRecord> {
    yield head.value;
    for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
  }
  return { first: head.value, all: all() };
}

/** Whether a record is a NeMo-Aligner alternating RM text line rather than a preference record. */
const isTextLine = (rec: JsonlRecord): boolean => 'text' in rec.value && !['chosen', 'rejected', 'chosen_response', 'rejected_response'].some((k) => k in rec.value);

/**
 * Every Bradley-Terry pair of a stream of records. The first record decides the format for the
 * file: a `{"text"}` line means NeMo-Aligner's alternating chosen/rejected lines (paired by
 * pairAlternatingText); anything else is read record by record as preference data
 * (tokenizePreference: NeMo-Aligner, TRL explicit or implicit prompt, optional "margin").
 */
export async function* tokenizeRewardPairs(
  tok: Tokenizer, records: AsyncIterable<JsonlRecord>, source: string, opts: PreferenceTokenizeOptions,
): AsyncGenerator<PreparedPair> {
  const dropped = (line: number): PreparedPair => ({ dropped: `line ${line}: longer than trainer.maxLength` });
  const { first, all } = await peek(records);
  if (first === null) return;
  if (isTextLine(first)) {
    for await (const pair of pairAlternatingText(all, source)) {
      const p = tokenizeTextPair(tok, pair, source, opts);
      yield p ? { example: p } : dropped(pair.chosen.line);
    }
    return;
  }
  for await (const rec of all) {
    const ex = tokenizePreference(tok, rec, source, opts);
    yield ex ? { example: rewardPair(ex) } : dropped(rec.line);
  }
}

/** Tokenize one regression RM record; null when the overlong policy drops it. */
export function tokenizeRegression(tok: Tokenizer, rec: JsonlRecord, source: string, opts: RegressionTokenizeOptions): RegressionExample | null {
  const n = opts.numAttributes;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`numAttributes must be a positive integer, got ${n}`);
  return atRecord(rec, source, () => {
    const label = rec.value.label;
    if (label === undefined) throw new Error(`missing key "label" (a list of ${n} numbers, ${REGRESSION_MASK} = masked)`);
    if (!Array.isArray(label)) throw new Error(`"label" must be a list of ${n} numbers (${REGRESSION_MASK} = masked), got ${describeJson(label)}`);
    if (label.length !== n) throw new Error(`"label" has ${label.length} values, expected ${n} (numAttributes)`);
    label.forEach((x, i) => {
      if (typeof x !== 'number' || !Number.isFinite(x)) throw new Error(`"label"[${i}] must be a finite number (${REGRESSION_MASK} = masked), got ${describeJson(x)}`);
    });
    const ids = tok.encode(stringField(rec, 'text', source), { addSpecialTokens: false });
    if (ids.length === 0) throw new Error('"text" is empty');
    const kept = keptLength(ids.length, opts, rec, source, 'the text');
    return kept === null ? null : { ids: ids.slice(0, kept), labels: label as number[] };
  });
}
