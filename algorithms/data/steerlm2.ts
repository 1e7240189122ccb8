/**
 * SteerLM 2.0 records (NeMo-Aligner SteerLM2Dataset, docs/user-guide/steerlm2.rst): one prompt, the
 * attribute label it was steered with, and n responses sampled from the initial SteerLM model Q′,
 * each with log P(a|x,y) (attribute model), log P(y|x) (unconditional model) and log Q′(y|a,x):
 *
 *   {"system": "", "prompt_turns": [{"from": "User", "value": "2+2?"}], "label": "quality:4,toxicity:0",
 *    "responses": [{"from": "Assistant", "value": "4", "log(P(a|x,y))": -0.2, "log(P(y|x))": -3.1, "log(Q(y|a,x))": -2.9}, …]}
 *
 * One record is one example: the group of its n responses. Every record of a file has the same n.
 *
 * Token ids. Sampling, scoring and training must see the same ids, so they all come from this pair:
 *  - steeredPromptIds: the chat template's rendering of [system, …prompt_turns] with the generation
 *    prompt, then labelPrefix(label) as text (steerlm.ts: part of the prompt, never trained), encoded
 *    as one text without special tokens (the template writes its own, as tokenizeConversation).
 *  - steeredResponseIds: the response text and the text that closes an assistant turn in the template
 *    (assistantTurnEnd: `<|im_end|>` for ChatML). Encoded together with the prompt, as NeMo-Aligner
 *    does, when the prompt's ids stay a prefix of that encoding; when BPE merges a token across the
 *    boundary they are not, and the response is encoded on its own instead, so the sequence is always
 *    promptIds ‖ responseIds: the prompt a sampler was given, continued. Score log Q′ and log P(y|x)
 *    on these ids (not on the ids the sampler emitted, which may tokenize the text differently).
 */
import { nemoSpeakerRole, renderChat } from '../../models/chat.js';
import type { ChatMessage } from '../../models/chat.js';
import type { Tokenizer } from '../../models/tokenizer.js';
import { importanceWeights } from '../losses/steerlm2.js';
import { atRecord, describeJson, recordError } from './jsonl.js';
import type { JsonlRecord } from './jsonl.js';
import { keptLength } from './overlong.js';
import { joinPromptCompletion } from './pair.js';
import type { SftExample } from './sft.js';
import { labelPrefix } from './steerlm.js';

/** The record's log-prob keys, as NeMo-Aligner names them. */
export const LOGP_KEYS = { attribute: 'log(P(a|x,y))', unconditional: 'log(P(y|x))', steered: 'log(Q(y|a,x))' } as const;

export interface SteerLM2Example {
  /** steeredPromptIds: the prompt and the label prefix. */
  prompt: number[];
  /** The n responses' steeredResponseIds, concatenated (each ends with the end-of-turn). */
  responses: number[];
  /** Tokens of each response. */
  lengths: number[];
  /** w′_i (eqs. 6–7), computed here from the record's log-probs. */
  weights: number[];
  /** log Q′(y_i|a,x) as the record gives it. */
  logQPrime: number[];
}

/** f32 for w′ and log Q′ as in NeMo-Aligner's collate (torch.FloatTensor): ample for weights and log-prob sums. */
export const STEERLM2_FIELDS = { prompt: 'u32[]', responses: 'u32[]', lengths: 'u32[]', weights: 'f32[]', logQPrime: 'f32[]' } as const;

/** One sampled response and its three log-probs. */
export interface SteerLM2Sample {
  text: string;
  logPa: number;
  logPy: number;
  logQ: number;
}

export interface SteerLM2Record {
  /** The system turn (when non-empty) and the prompt turns, as chat messages. */
  messages: ChatMessage[];
  label: string;
  responses: SteerLM2Sample[];
}

export interface SteeringOptions {
  /** Chat template override (steerlm2.chatTemplate); default the tokenizer's own, else ChatML. */
  template?: string;
}

/** The prompt ids of a steered turn: the chat prompt with its generation header, then labelPrefix(label) (see the header). */
export function steeredPromptIds(tok: Tokenizer, messages: readonly ChatMessage[], label: string, opts: SteeringOptions = {}): number[] {
  const text = renderChat(tok, messages, { addGenerationPrompt: true, template: opts.template }) + labelPrefix(label);
  return tok.encode(text, { addSpecialTokens: false });
}

const PROBE = 'steerlm2-probe-3f9c';
const turnEnds = new WeakMap<Tokenizer, Map<string, string>>();

/** The text a template writes after an assistant message's content up to the end of its end-of-turn marker (EOS, else `<|im_end|>`). */
export function assistantTurnEnd(tok: Tokenizer, template?: string): string {
  const byTemplate = turnEnds.get(tok) ?? new Map<string, string>();
  turnEnds.set(tok, byTemplate);
  const key = template ?? '';
  const known = byTemplate.get(key);
  if (known !== undefined) return known;
  const text = renderChat(tok, [{ role: 'user', content: 'hi' }, { role: 'assistant', content: PROBE }], { template });
  const at = text.lastIndexOf(PROBE), from = at + PROBE.length;
  const markers = [...new Set([tok.eosToken, '<|im_end|>'])].filter((m): m is string => !!m);
  const ends = markers.map((m) => text.indexOf(m, from)).flatMap((i, k) => (i < 0 ? [] : [i + markers[k].length]));
  if (at < 0 || ends.length === 0) {
    throw new Error(`the chat template of ${tok.name} does not close an assistant turn with ${markers.join(' or ') || 'an end-of-turn token'}; set steerlm2.chatTemplate`);
  }
  byTemplate.set(key, text.slice(from, Math.min(...ends)));
  return byTemplate.get(key)!;
}

/** The ids of a response after `promptIds` (steeredPromptIds), end-of-turn included (see the header). */
export function steeredResponseIds(tok: Tokenizer, promptIds: readonly number[], responseText: string, opts: SteeringOptions = {}): number[] {
  const tail = responseText + assistantTurnEnd(tok, opts.template);
  const joint = tok.encode(tok.decode(promptIds) + tail, { addSpecialTokens: false });
  if (promptIds.every((id, i) => joint[i] === id)) return joint.slice(promptIds.length);
  return tok.encode(tail, { addSpecialTokens: false });
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function finite(v: Record<string, unknown>, key: string, where: string): number {
  const x = v[key];
  if (x === undefined) throw new Error(`${where} is missing "${key}"`);
  if (typeof x !== 'number' || !Number.isFinite(x)) throw new Error(`${where}["${key}"] must be a finite number, got ${typeof x === 'number' ? x : describeJson(x)}`);
  return x;
}

/** The system turn (when non-empty) and the prompt turns of a SteerLM2 record, checked. */
export function promptMessages(v: Record<string, unknown>): ChatMessage[] {
  if (v.system !== undefined && typeof v.system !== 'string') throw new Error(`"system" must be a string, got ${describeJson(v.system)}`);
  const turns = v.prompt_turns;
  if (turns === undefined) throw new Error('missing key "prompt_turns"');
  if (!Array.isArray(turns) || turns.length === 0) throw new Error(`"prompt_turns" must be a non-empty list of {"from", "value"} turns, got ${describeJson(turns)}`);
  if (turns.length % 2 === 0) throw new Error(`"prompt_turns" has ${turns.length} turns; it needs an odd number (User, Assistant, …, User: the responses answer the last User turn)`);
  const out: ChatMessage[] = v.system ? [{ role: 'system', content: v.system }] : [];
  turns.forEach((t, i) => {
    const want = i % 2 === 0 ? 'user' : 'assistant';
    if (!isObject(t)) throw new Error(`prompt_turns[${i}] must be an object with "from" and "value", got ${describeJson(t)}`);
    if (nemoSpeakerRole(t.from) !== want) throw new Error(`prompt_turns[${i}].from must be "${want === 'user' ? 'User' : 'Assistant'}" (turns alternate User, Assistant, …), got ${describeJson(t.from)}`);
    if (typeof t.value !== 'string') throw new Error(`prompt_turns[${i}].value must be a string, got ${describeJson(t.value)}`);
    out.push({ role: want, content: t.value });
  });
  return out;
}

function samples(v: Record<string, unknown>): SteerLM2Sample[] {
  const rs = v.responses;
  if (rs === undefined) throw new Error('missing key "responses"');
  if (!Array.isArray(rs)) throw new Error(`"responses" must be a list of {"from", "value", "${LOGP_KEYS.attribute}", "${LOGP_KEYS.unconditional}", "${LOGP_KEYS.steered}"}, got ${describeJson(rs)}`);
  if (rs.length < 2) throw new Error(`"responses" has ${rs.length}; SteerLM 2.0 needs at least 2 per prompt (its weights are normalised over them)`);
  return rs.map((r, i) => {
    const where = `responses[${i}]`;
    if (!isObject(r)) throw new Error(`${where} must be an object, got ${describeJson(r)}`);
    if (r.from === undefined) throw new Error(`${where} is missing "from"`);
    if (nemoSpeakerRole(r.from) !== 'assistant') throw new Error(`${where}.from must be "Assistant", got ${describeJson(r.from)}`);
    if (typeof r.value !== 'string') throw new Error(`${where}.value must be a string, got ${describeJson(r.value)}`);
    return { text: r.value, logPa: finite(r, LOGP_KEYS.attribute, where), logPy: finite(r, LOGP_KEYS.unconditional, where), logQ: finite(r, LOGP_KEYS.steered, where) };
  });
}

/** A record checked: a DataError naming the file, the line and the field otherwise. */
export function parseSteerLM2(rec: JsonlRecord, source: string): SteerLM2Record {
  return atRecord(rec, source, () => {
    const messages = promptMessages(rec.value);
    const label = rec.value.label;
    if (label === undefined) throw new Error('missing key "label" (the attributes the responses were steered with, e.g. "quality:4,toxicity:0")');
    if (typeof label !== 'string' || label === '') throw new Error(`"label" must be a non-empty string, got ${describeJson(label)}`);
    return { messages, label, responses: samples(rec.value) };
  });
}

/** The n every record must have: the first record's (or steerlm2.numResponses); returns it, or a DataError. */
export function checkGroupSize(r: SteerLM2Record, rec: JsonlRecord, source: string, expected: { n: number; from: string } | null): { n: number; from: string } {
  const n = r.responses.length;
  if (expected === null) return { n, from: `line ${rec.line}` };
  if (n !== expected.n) throw recordError(rec, source, `"responses" has ${n}, but ${expected.from} has ${expected.n}: every record needs the same number of responses`);
  return expected;
}

export interface SteerLM2Options extends SteeringOptions {
  maxLength: number;
  /** Over-long records: error (naming the line) or drop. Never truncate: w′ and log Q′ are of the whole responses. */
  overlong?: 'error' | 'drop';
}

/** The example of a checked record; null when data.overlong drops it (one over-long response drops the group). */
export function tokenizeSteerLM2(tok: Tokenizer, r: SteerLM2Record, rec: JsonlRecord, source: string, opts: SteerLM2Options): SteerLM2Example | null {
  return atRecord(rec, source, () => {
    const prompt = steeredPromptIds(tok, r.messages, r.label, opts);
    const ids = r.responses.map((s) => steeredResponseIds(tok, prompt, s.text, opts));
    for (const [i, resp] of ids.entries()) {
      const what = `responses[${i}] (prompt ${prompt.length} + response ${resp.length})`;
      if (keptLength(prompt.length + resp.length, opts, rec, source, what) === null) return null;
    }
    const logQPrime = r.responses.map((s) => s.logQ);
    return {
      prompt, responses: ids.flat(), lengths: ids.map((x) => x.length), logQPrime,
      weights: importanceWeights(r.responses.map((s) => s.logPa), r.responses.map((s) => s.logPy), logQPrime),
    };
  });
}

/** The n sequences of an example: prompt ‖ response_i, trained on the response (end-of-turn included). */
export function responseRows(e: SteerLM2Example): SftExample[] {
  let at = 0;
  return e.lengths.map((len) => {
    const { ids, lossMask } = joinPromptCompletion(e.prompt, e.responses.slice(at, (at += len)));
    return { ids, lossMask };
  });
}

/** A record in the format above, for writers (the sampling pipeline, data/demo). */
export function steerlm2Line(system: string, promptTurns: readonly { from: 'User' | 'Assistant'; value: string }[], label: string, responses: readonly SteerLM2Sample[]): Record<string, unknown> {
  return {
    system, prompt_turns: promptTurns, label,
    responses: responses.map((s) => ({ from: 'Assistant', value: s.text, [LOGP_KEYS.attribute]: s.logPa, [LOGP_KEYS.unconditional]: s.logPy, [LOGP_KEYS.steered]: s.logQ })),
  };
}
