/**
 * Writes data/demo/steerlm2.jsonl, the SteerLM 2.0 demo set (run from the repository root:
 * npx tsx data/demo/make-steerlm2.ts). 96 prompts from nlp-corpus sentences ("Repeat: <six
 * words>"), all steered with the label `toxicity:0,verbosity:4` (one set of desired attributes for
 * every prompt, as the paper samples, §4.5 "Inference Attributes"), and n = 4 written responses:
 * the first three or all six words, in lower or upper case.
 *  - log P(a|x,y): algorithms/pipelines/attributes.ts (σ = 2) on a toy attribute model whose
 *    predictions are the response's scores (toxicity 4 × its share of upper-case letters, verbosity
 *    0 for three words, 4 for six): the response that matches the label (all six words, lower case)
 *    scores 2 nats above one with an attribute off, 4 above one with both off;
 *  - log Q(y|a,x): the tiny-llama fixture's log-prob of the response after the steered prompt, on
 *    the token ids the recipe trains on (steeredPromptIds / steeredResponseIds), so the recipe's
 *    logRatio starts near 0;
 *  - log P(y|x): set to log Q(y|a,x). The responses are written, not sampled from Q′, so Q′ is not
 *    their proposal; with P(y|x) = Q′ the weights reduce to w′ = softmax(log P(a|x,y)) ≈ [0.78, 0.10,
 *    0.10, 0.01] by match, and what the policy has to learn is the attribute model's preference.
 * Values are rounded to 4 decimals, so the file does not depend on the last bits of this machine's BLAS.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { steeredPromptIds, steeredResponseIds, steerlm2Line } from '../../algorithms/data/steerlm2.js';
import { attributeLogProb } from '../../algorithms/pipelines/attributes.js';
import { padRows } from '../../algorithms/train/batching.js';
import { noGrad, sum, tidy } from '../../kernels/index.js';
import { logprobs } from '../../models/logprobs.js';
import { loadPretrained } from '../../models/pretrained.js';
import { Tokenizer } from '../../models/tokenizer.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixture = path.join(here, '../../models/fixtures/tiny-llama');
const corpus = path.join(path.dirname(createRequire(import.meta.url).resolve('nlp-corpus')), '../../builds');

const round = (x: number) => Math.round(x * 1e4) / 1e4;

/** Six plain words of each usable sentence, at most 36 characters together. */
function prompts(n: number): string[][] {
  const sentences = JSON.parse(readFileSync(path.join(corpus, 'doc-11.json'), 'utf8')) as string[];
  return sentences
    .map((s) => s.split(/\s+/).map((w) => w.replace(/[.,!?;:"]+$/, '')).slice(0, 6))
    .filter((w) => w.every((x) => /^[A-Za-z']+$/.test(x)))
    .filter((w) => w.length === 6 && w.join(' ').length <= 36)
    .slice(0, n);
}

const LABEL = { toxicity: 0, verbosity: 4 };
const LABEL_TEXT = `toxicity:${LABEL.toxicity},verbosity:${LABEL.verbosity}`;

/** The toy attribute model's predictions for a response: [toxicity, verbosity]. */
function scores(text: string): number[] {
  const letters = text.replace(/[^A-Za-z]/g, '');
  return [(4 * letters.replace(/[^A-Z]/g, '').length) / Math.max(1, letters.length), (4 * (text.split(' ').length - 3)) / 3];
}

export async function steerlm2Records(count = 96): Promise<string[]> {
  const tok = Tokenizer.fromDir(fixture);
  const model = await loadPretrained(fixture);
  const out: string[] = [];
  for (const words of prompts(count)) {
    const messages = [{ role: 'user' as const, content: `Repeat: ${words.join(' ')}` }];
    const texts = [3, 6].flatMap((k) => [words.slice(0, k).join(' ').toLowerCase(), words.slice(0, k).join(' ').toUpperCase()]);
    const prompt = steeredPromptIds(tok, messages, LABEL_TEXT);
    const rows = texts.map((t) => {
      const resp = steeredResponseIds(tok, prompt, t);
      return { ids: [...prompt, ...resp], lossMask: [...prompt.map(() => 0), ...resp.map(() => 1)] };
    });
    const seq = tidy(() => noGrad(() => sum(logprobs(model, padRows(rows)), 1))); // log Q′ [n]
    const logQ = Array.from(await seq.data()).map(round);
    seq.dispose();
    out.push(JSON.stringify(steerlm2Line('', [{ from: 'User', value: messages[0].content }], LABEL_TEXT, texts.map((text, i) => ({
      text, logPa: round(attributeLogProb(scores(text), ['toxicity', 'verbosity'], LABEL, { sigma: 2 })), logPy: logQ[i], logQ: logQ[i],
    })))));
  }
  model.dispose();
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(path.join(here, 'steerlm2.jsonl'), `${(await steerlm2Records()).join('\n')}\n`);
}
