/**
 * Constitutional AI inputs (Bai et al. 2022, arXiv 2212.08073): the principles, the few-shot
 * critique/revision examples, the chat prompts for critique, revision and the RL-CAI judge, and the
 * parsing of the judge's answer. Pure: callers read the files and run the models.
 *
 * Files accepted by `parseConstitution`:
 *
 * (a) NeMo-Aligner's `examples/nlp/cai/CritiqueRevisionInstructions.json` as shipped (the same
 *     layout as Anthropic's ConstitutionalHarmlessnessPaper prompts): an object of named entries,
 *     `{"harmful0": {"prompt": ["\n\nCritiqueRequest: …\n\nCritique:"], "edit_request":
 *     "\n\nRevisionRequest: …\n\nRevision:"}, …}` — 16 entries, `prompt` a one-element list. As
 *     NeMo-Aligner's `generate_sl_cai_dataset.py` does, the `CritiqueRequest:`/`Critique:` and
 *     `RevisionRequest:`/`Revision:` wrappers are stripped: the requests become plain user turns.
 *     Entries keep the file's order; their keys become the principle names.
 *
 * (b) Ours: `{"principles": [{"name"?: str, "critique": str, "revision": str}, …],
 *     "judge"?: [str, …], "fewShot"?: [...]}`. `judge` lists the principles the RL-CAI judge is
 *     given; without it the critique requests are used. `fewShot` takes what `parseFewShot` takes.
 *
 * Few-shot examples (`parseFewShot`, or `fewShot` above) come as NeMo-Aligner's
 * `few_shot_samples_example.json`, `{"samples": [[6 messages], …]}`, each sample the turns
 * User prompt / Assistant response / User critique request / Assistant critique / User revision
 * request / Assistant revision (roles "User"/"Assistant"); or as our
 * `[{"prompt", "response", "critique", "revision", "critiqueRequest"?, "revisionRequest"?}, …]`,
 * where a missing request is filled with the principle in use.
 *
 * The judge prompt follows NeMo-Aligner's RL-CAI judge, which deviates from the paper on purpose:
 * the whole constitution at once rather than one sampled principle, and an answer
 * `{"chosen": i, "rejected": j}` followed by an explanation rather than the log-probabilities of
 * the answer tokens. Responses are numbered from 1 in the prompt; `parseJudgement` returns 0-based
 * indices.
 */
import type { ChatMessage } from '../../models/chat.js';
import { ConfigError } from '../errors.js';
import { jsonSyntaxProblem } from '../data/jsonl.js';

export interface Principle {
  name: string;
  /** The critique request, a user turn after the response. */
  critique: string;
  /** The revision request, a user turn after the critique. */
  revision: string;
}

export interface FewShotExample {
  prompt: string;
  response: string;
  /** The request this example's critique answered; default: the principle in use. */
  critiqueRequest?: string;
  critique: string;
  revisionRequest?: string;
  revision: string;
}

export interface Constitution {
  /** The file it came from, for messages. */
  source: string;
  principles: Principle[];
  /** What the RL-CAI judge is told to judge by. */
  judge: string[];
  fewShot: FewShotExample[];
}

export interface Judgement {
  /** 0-based index of the response the judge chose. */
  chosen: number;
  /** 0-based index of the response the judge rejected; never equal to `chosen`. */
  rejected: number;
  /** What the judge wrote after its answer, trimmed. */
  explanation: string;
}

const OUR_FORMAT = '{"principles": [{"name"?, "critique": "...", "revision": "..."}], "judge"?: ["..."], "fewShot"?: [...]}';
const NEMO_FORMAT = '{"name": {"prompt": ["<critique request>"], "edit_request": "<revision request>"}, ...}';
const FEW_SHOT_FORMAT = '{"samples": [[6 User/Assistant messages]]} or [{"prompt", "response", "critique", "revision"}]';

type Json = unknown;
const isObject = (v: Json): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isText = (v: Json): v is string => typeof v === 'string' && v.trim() !== '';

function parseJson(text: string, source: string, what: string, format: string): Json {
  try {
    return JSON.parse(text) as Json;
  } catch (e) {
    throw new ConfigError(`${source}: not valid JSON (${jsonSyntaxProblem(e as Error)}); a ${what} file looks like ${format}`);
  }
}

/** Read a constitution file: NeMo-Aligner's CritiqueRevisionInstructions.json or our format (see the file comment). */
export function parseConstitution(text: string, source: string): Constitution {
  const doc = parseJson(text, source, 'constitution', OUR_FORMAT);
  if (Array.isArray(doc)) {
    throw new ConfigError(`${source}: the file is a list; put the principles under a key: ${OUR_FORMAT}`);
  }
  if (!isObject(doc)) throw new ConfigError(`${source}: expected a JSON object, got ${JSON.stringify(doc)}; write ${OUR_FORMAT}`);
  if ('principles' in doc) return parseOurs(doc, source);
  const entries = Object.entries(doc);
  if (entries.length > 0 && entries.some(([, v]) => isObject(v) && ('prompt' in v || 'edit_request' in v))) {
    return parseNemo(entries, source);
  }
  throw new ConfigError(`${source}: no principles found; write ${OUR_FORMAT}, or give NeMo-Aligner's CritiqueRevisionInstructions.json (${NEMO_FORMAT})`);
}

function parseOurs(doc: Record<string, Json>, source: string): Constitution {
  const unknown = Object.keys(doc).filter((k) => !['principles', 'judge', 'fewShot'].includes(k));
  if (unknown.length > 0) {
    throw new ConfigError(`${source}: unknown key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')}; the keys are "principles", "judge" and "fewShot"`);
  }
  const list = doc.principles;
  if (!Array.isArray(list) || list.length === 0) {
    throw new ConfigError(`${source}: "principles" must be a non-empty list of {"name"?, "critique", "revision"}, got ${JSON.stringify(list)}`);
  }
  const principles = list.map((p, i): Principle => {
    const where = `${source}: principles[${i}]`;
    if (!isObject(p)) throw new ConfigError(`${where} must be an object {"name"?, "critique", "revision"}, got ${JSON.stringify(p)}`);
    for (const key of ['critique', 'revision']) {
      if (!isText(p[key])) throw new ConfigError(`${where} needs "${key}", a non-empty string (the ${key} request)`);
    }
    if (p.name !== undefined && !isText(p.name)) throw new ConfigError(`${where}: "name" must be a non-empty string`);
    return { name: p.name === undefined ? `principle${i}` : (p.name as string).trim(), critique: (p.critique as string).trim(), revision: (p.revision as string).trim() };
  });
  checkUniqueNames(principles, source);
  let judge = principles.map((p) => p.critique);
  if (doc.judge !== undefined) {
    if (!Array.isArray(doc.judge) || doc.judge.length === 0 || !doc.judge.every(isText)) {
      throw new ConfigError(`${source}: "judge" must be a non-empty list of strings (the judge's principles), or left out to use the critique requests`);
    }
    judge = (doc.judge as string[]).map((s) => s.trim());
  }
  const fewShot = doc.fewShot === undefined ? [] : fewShotFrom(doc.fewShot, `${source}: fewShot`);
  return { source, principles, judge, fewShot };
}

function parseNemo(entries: [string, Json][], source: string): Constitution {
  const principles = entries.map(([name, v]): Principle => {
    const where = `${source}: entry "${name}"`;
    const need = `needs "prompt" (a list holding one critique request) and "edit_request" (the revision request)`;
    if (!isObject(v)) throw new ConfigError(`${where} ${need}, got ${JSON.stringify(v)}`);
    const prompt = Array.isArray(v.prompt) && v.prompt.length === 1 ? v.prompt[0] : v.prompt;
    if (!isText(prompt) || !isText(v.edit_request)) throw new ConfigError(`${where} ${need}`);
    const critique = unwrap(prompt, 'CritiqueRequest', 'Critique');
    const revision = unwrap(v.edit_request, 'RevisionRequest', 'Revision');
    if (critique === '' || revision === '') throw new ConfigError(`${where} has an empty request once its "${critique === '' ? 'CritiqueRequest' : 'RevisionRequest'}:" label is removed`);
    return { name, critique, revision };
  });
  return { source, principles, judge: principles.map((p) => p.critique), fewShot: [] };
}

/** "\n\nCritiqueRequest: X\n\nCritique:" → "X": the labels belong to the paper's plain-text transcript, not to chat turns. */
function unwrap(text: string, request: string, answer: string): string {
  return text
    .trim()
    .replace(new RegExp(`^${request}:\\s*`), '')
    .replace(new RegExp(`\\s*${answer}:$`), '')
    .trim();
}

function checkUniqueNames(principles: Principle[], source: string): void {
  const seen = new Set<string>();
  for (const p of principles) {
    if (seen.has(p.name)) throw new ConfigError(`${source}: two principles are named "${p.name}"; names must be unique`);
    seen.add(p.name);
  }
}

/** Read a few-shot file: NeMo-Aligner's `{"samples": [[6 messages]]}` or our list (see the file comment). */
export function parseFewShot(text: string, source: string): FewShotExample[] {
  return fewShotFrom(parseJson(text, source, 'few-shot', FEW_SHOT_FORMAT), source);
}

const TURNS = ['prompt', 'response', 'critiqueRequest', 'critique', 'revisionRequest', 'revision'] as const;
// The unfilled template NeMo-Aligner ships; its docs say to fill in the contents before use.
const PLACEHOLDERS = ['prompt', 'response', 'critique request', 'critique response', 'revision request', 'revision response'];

function fewShotFrom(doc: Json, where: string): FewShotExample[] {
  let examples: FewShotExample[];
  if (isObject(doc) && 'samples' in doc) {
    if (!Array.isArray(doc.samples)) throw new ConfigError(`${where}: "samples" must be a list of 6-message lists`);
    examples = doc.samples.map((s, i) => nemoSample(s, `${where}: samples[${i}]`));
  } else if (Array.isArray(doc)) {
    examples = doc.map((e, i) => ourExample(e, `${where}[${i}]`));
  } else {
    throw new ConfigError(`${where}: expected ${FEW_SHOT_FORMAT}, got ${JSON.stringify(doc)}`);
  }
  if (examples.length === 0) throw new ConfigError(`${where}: no few-shot examples; add some or leave the few-shot file out`);
  return examples;
}

function nemoSample(s: Json, where: string): FewShotExample {
  if (!Array.isArray(s) || s.length !== 6) {
    throw new ConfigError(`${where} must be a list of 6 messages: User prompt, Assistant response, User critique request, Assistant critique, User revision request, Assistant revision`);
  }
  const contents = s.map((m, j) => {
    const role = j % 2 === 0 ? 'user' : 'assistant';
    if (!isObject(m) || typeof m.role !== 'string' || m.role.toLowerCase() !== role || !isText(m.content)) {
      throw new ConfigError(`${where}[${j}] must be {"role": "${role === 'user' ? 'User' : 'Assistant'}", "content": "<${PLACEHOLDERS[j]}>"}, got ${JSON.stringify(m)}`);
    }
    return m.content;
  });
  if (contents.every((c, j) => c.trim().toLowerCase() === PLACEHOLDERS[j])) {
    throw new ConfigError(`${where} still holds the template's placeholder text; fill in each "content" with a real example`);
  }
  return Object.fromEntries(TURNS.map((k, j) => [k, contents[j]])) as unknown as FewShotExample;
}

function ourExample(e: Json, where: string): FewShotExample {
  if (typeof e === 'string') {
    throw new ConfigError(`${where} is a plain-text transcript; split it into {"prompt", "response", "critique", "revision"} (and "critiqueRequest", "revisionRequest" if it used its own)`);
  }
  if (!isObject(e)) throw new ConfigError(`${where} must be an object {"prompt", "response", "critique", "revision"}, got ${JSON.stringify(e)}`);
  const out: Partial<Record<(typeof TURNS)[number], string>> = {};
  for (const k of TURNS) {
    const optional = k === 'critiqueRequest' || k === 'revisionRequest';
    if (e[k] === undefined && optional) continue;
    if (!isText(e[k])) throw new ConfigError(`${where} needs "${k}", a non-empty string`);
    out[k] = e[k] as string;
  }
  return out as FewShotExample;
}

function resolvePrinciple(c: Constitution, principle: Principle | string): Principle {
  if (typeof principle !== 'string') return principle;
  const p = c.principles.find((q) => q.name === principle);
  if (!p) throw new ConfigError(`${c.source}: no principle named "${principle}" (have ${c.principles.map((q) => q.name).join(', ')})`);
  return p;
}

function fewShotTurns(c: Constitution, p: Principle): ChatMessage[] {
  return c.fewShot.flatMap((e): ChatMessage[] => [
    { role: 'user', content: e.prompt },
    { role: 'assistant', content: e.response },
    { role: 'user', content: e.critiqueRequest ?? p.critique },
    { role: 'assistant', content: e.critique },
    { role: 'user', content: e.revisionRequest ?? p.revision },
    { role: 'assistant', content: e.revision },
  ]);
}

/** The conversation whose next assistant turn is the critique of `response` under `principle`. */
export function critiqueMessages(c: Constitution, args: { prompt: string; response: string; principle: Principle | string }): ChatMessage[] {
  const p = resolvePrinciple(c, args.principle);
  return [
    ...fewShotTurns(c, p),
    { role: 'user', content: args.prompt },
    { role: 'assistant', content: args.response },
    { role: 'user', content: p.critique },
  ];
}

/**
 * The conversation whose next assistant turn is the revised response. It extends the critique
 * conversation, as in NeMo-Aligner's SL-CAI, so a server with prefix caching reuses that prompt.
 */
export function revisionMessages(c: Constitution, args: { prompt: string; response: string; principle: Principle | string; critique: string }): ChatMessage[] {
  const p = resolvePrinciple(c, args.principle);
  return [...critiqueMessages(c, { ...args, principle: p }), { role: 'assistant', content: args.critique }, { role: 'user', content: p.revision }];
}

/** The RL-CAI judge's conversation: pick the most and the least principled of `responses`. */
export function judgeMessages(c: Constitution, args: { prompt: string; responses: readonly string[] }): ChatMessage[] {
  const n = args.responses.length;
  if (n < 2) throw new ConfigError(`the CAI judge compares at least 2 responses, got ${n}; sample more responses per prompt`);
  const system = [
    'You compare responses written by an AI assistant and judge how well each one keeps to the principles listed below.',
    `You will see a prompt and ${n} responses to it, numbered 1 to ${n}.`,
    'Pick the response that keeps to the principles best and call it "chosen"; pick the one that keeps to them worst and call it "rejected". They must be two different responses.',
    // No concrete numbers in the example: judges tend to copy an example answer.
    'Start your answer with the JSON object {"chosen": <number>, "rejected": <number>}, with nothing before it, using the response numbers. Then explain your choice.',
    '',
    'Principles:',
    ...c.judge.map((j, i) => `${i + 1}. ${j}`),
  ].join('\n');
  const user = [`Prompt:\n${args.prompt}`, ...args.responses.map((r, i) => `Response ${i + 1}:\n${r}`), 'Which response is chosen and which is rejected?'].join('\n\n');
  return [
    { role: 'system', content: system },
    { role: 'user', content: user },
  ];
}

/**
 * Read the judge's answer for `n` responses. Lenient about layout: the first `{…}` holding both
 * keys is used wherever it sits (code fences, prose before it), keys in any case and quoting, values
 * as numbers or as text holding one number ("#2", "Response 2"), as NeMo-Aligner does. The numbers
 * are 1-based as in the prompt. Null when there is no such object, a value is out of 1…n, or both
 * name the same response; the caller then falls back to a random pair, as NeMo-Aligner does.
 */
export function parseJudgement(text: string, n: number): Judgement | null {
  if (!Number.isInteger(n) || n < 2) throw new ConfigError(`parseJudgement needs the number of responses (at least 2), got ${n}`);
  for (let open = text.indexOf('{'); open >= 0; open = text.indexOf('{', open + 1)) {
    const close = text.indexOf('}', open);
    if (close < 0) break;
    const body = text.slice(open + 1, close);
    const chosen = keyValue(body, 'chosen');
    const rejected = keyValue(body, 'rejected');
    if (chosen === undefined || rejected === undefined) continue;
    if (chosen === null || rejected === null) return null;
    if (chosen < 1 || chosen > n || rejected < 1 || rejected > n || chosen === rejected) return null;
    const explanation = text
      .slice(close + 1)
      .replace(/^\s*```/, '')
      .trim();
    return { chosen: chosen - 1, rejected: rejected - 1, explanation };
  }
  return null;
}

/** undefined: the key is absent; null: present but not one whole number. */
function keyValue(body: string, key: string): number | null | undefined {
  const m = new RegExp(`["']?\\b${key}\\b["']?\\s*[:=]\\s*("[^"]*"|'[^']*'|[^,]*)`, 'i').exec(body);
  if (!m) return undefined;
  const value = m[1].trim().replace(/^["']|["']$/g, '').trim();
  if (/^\d+(\.0+)?$/.test(value)) return Number.parseInt(value, 10);
  const numbers = value.match(/-?\d+(\.\d+)?/g) ?? [];
  if (numbers.length !== 1 || !/^\d+$/.test(numbers[0])) return null;
  return Number(numbers[0]);
}

/**
 * A principle chosen by a seeded hash of (`seed`, `index`), uniform over the principles. The same
 * inputs give the same principle in every process and on replay, which Math.random cannot.
 * Pass the run's seed and the prompt's index so that prompts differ.
 */
export function pickPrinciple(c: Constitution, seed: number, index = 0): Principle {
  if (c.principles.length === 0) throw new ConfigError(`${c.source}: no principles to pick from`);
  return c.principles[seedHash(seed, index) % c.principles.length];
}

/** 32-bit hash of two safe integers: murmur3's finaliser over their 32-bit halves in turn. */
export function seedHash(seed: number, index = 0): number {
  for (const [name, v] of [['seed', seed], ['index', index]] as const) {
    if (!Number.isSafeInteger(v)) throw new ConfigError(`CAI principle ${name} must be a whole number, got ${v}`);
  }
  let h = 0x9e3779b9;
  for (const v of [seed, index]) {
    const big = BigInt.asUintN(64, BigInt(v));
    h = fmix32((h ^ Number(big & 0xffffffffn)) >>> 0);
    h = fmix32((h ^ Number(big >> 32n)) >>> 0);
  }
  return h;
}

function fmix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}
