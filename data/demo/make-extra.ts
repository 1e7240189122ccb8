/**
 * Writes the demo data sets of the reward-model and KTO recipes from nlp-corpus sentences
 * (deterministic; run from the repository root: npx tsx data/demo/make-extra.ts):
 *  - rm.jsonl: preference pairs where the chosen answer is a sentence and the rejected one the same
 *    characters in reverse order, both in the same random letter case (case tells nothing);
 *  - rm-regression.jsonl: NeMo-Aligner regression records with two attributes computed from the
 *    text (upper-case share and word count, on 0…4), the second masked (−100) in every fifth record;
 *  - kto.jsonl: TRL unpaired records, lower-case completions desirable, upper-case undesirable;
 *  - prompts.jsonl: TRL prompt-only records for the online recipes, the first words of a sentence
 *    (ending with a space) for the policy to continue.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const corpus = path.join(path.dirname(createRequire(import.meta.url).resolve('nlp-corpus')), '../../builds');
const sentences = (doc: number): string[] => JSON.parse(readFileSync(path.join(corpus, `doc-${doc}.json`), 'utf8')) as string[];

/** xorshift32: the same data on every machine (the other demo data scripts use it too). */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

const cased = (s: string, r: number) => (r < 1 / 3 ? s.toLowerCase() : r < 2 / 3 ? s.toUpperCase() : s);
const fewWords = (s: string) => s.split(/\s+/).filter(Boolean).slice(0, 6);

export function rewardPairs(n: number, seed = 1): string[] {
  const r = rng(seed);
  return sentences(9).filter((s) => fewWords(s).length >= 4).slice(0, n).map((s) => {
    const words = fewWords(s), style = r();
    const text = words.join(' ');
    return JSON.stringify({ prompt: 'Say it: ', chosen: cased(text, style), rejected: cased([...text].reverse().join(''), style) });
  });
}

export function regressionRecords(n: number, seed = 2): string[] {
  const r = rng(seed);
  return sentences(10).slice(0, n).map((s, i) => {
    const words = s.split(/\s+/).filter(Boolean).slice(0, 1 + Math.floor(r() * 8));
    const text = cased(words.join(' '), r());
    const letters = text.replace(/[^A-Za-z]/g, '');
    const upper = letters ? (4 * letters.replace(/[^A-Z]/g, '').length) / letters.length : 0;
    const length = words.length / 2;
    return JSON.stringify({ text, label: [+upper.toFixed(2), i % 5 === 4 ? -100 : +length.toFixed(2)] });
  });
}

export function ktoRecords(n: number, seed = 3): string[] {
  const r = rng(seed);
  return sentences(8).slice(200, 200 + n).map((s) => {
    const good = r() < 0.5, text = s.slice(0, 24);
    return JSON.stringify({ prompt: 'Answer: ', completion: good ? text.toLowerCase() : text.toUpperCase(), label: good });
  });
}

export function promptRecords(n: number): string[] {
  return sentences(7).filter((s) => fewWords(s).length >= 4).slice(0, n).map((s) => JSON.stringify({ prompt: `${fewWords(s).slice(0, 3).join(' ')} ` }));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(path.join(here, 'rm.jsonl'), `${rewardPairs(160).join('\n')}\n`);
  writeFileSync(path.join(here, 'rm-regression.jsonl'), `${regressionRecords(160).join('\n')}\n`);
  writeFileSync(path.join(here, 'kto.jsonl'), `${ktoRecords(160).join('\n')}\n`);
  writeFileSync(path.join(here, 'prompts.jsonl'), `${promptRecords(128).join('\n')}\n`);
}
