/**
 * Writes the SteerLM demo data from nlp-corpus sentences (deterministic; run from the repository
 * root: npx tsx data/demo/make-steerlm.ts), two attributes on 0…4: `shouting` (the share of
 * upper-case letters) and `length` (words, 2 per level):
 *  - steerlm-rm.jsonl: NeMo-Aligner regression records `{"text", "label"}` whose text is the
 *    conversation as the tiny fixture's chat template renders it (the attribute model reads
 *    conversations as the annotation stage renders them);
 *  - steerlm-sft.jsonl: TRL chat records (no labels: the pipeline's annotation stage adds them),
 *    each answer in lower or upper case;
 *  - steerlm-prompts.jsonl: prompts to steer at generation time;
 *  - steerlm2-prompts.jsonl: prompts with target attributes (a "label") for SteerLM 2.0 rounds.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { rng } from './make-extra.js';
import { renderChat } from '../../models/chat.js';
import { Tokenizer } from '../../models/tokenizer.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const corpus = path.join(path.dirname(createRequire(import.meta.url).resolve('nlp-corpus')), '../../builds');
const sentences = (doc: number): string[] => JSON.parse(readFileSync(path.join(corpus, `doc-${doc}.json`), 'utf8')) as string[];
const tok = Tokenizer.fromDir(path.join(here, '../../models/fixtures/tiny-llama'));


/** The two attributes of a response, as the attribute model learns them. */
export function attributesOf(text: string): [number, number] {
  const letters = text.replace(/[^A-Za-z]/g, '');
  const shouting = letters ? (4 * letters.replace(/[^A-Z]/g, '').length) / letters.length : 0;
  const words = text.split(/\s+/).filter(Boolean).length;
  return [Number(shouting.toFixed(2)), Math.min(4, Math.floor(words / 2))];
}

const words = (s: string, n: number) => s.split(/\s+/).filter(Boolean).slice(0, n).join(' ');

function conversations(n: number, seed: number, doc: number) {
  const r = rng(seed);
  return sentences(doc).filter((s) => s.split(/\s+/).length >= 8).slice(0, n).map((s) => {
    const topic = words(s, 2);
    const answer = words(s, 2 + Math.floor(r() * 7));
    return { prompt: `Say something about ${topic}`, answer: r() < 0.5 ? answer.toLowerCase() : answer.toUpperCase() };
  });
}

const rmLines = conversations(240, 7, 11).map(({ prompt, answer }) => JSON.stringify({
  text: renderChat(tok, [{ role: 'user', content: prompt }, { role: 'assistant', content: answer }]),
  label: attributesOf(answer),
}));
const sftLines = conversations(192, 8, 12).map(({ prompt, answer }) => JSON.stringify({ messages: [{ role: 'user', content: prompt }, { role: 'assistant', content: answer }] }));
const promptLines = conversations(16, 9, 13).map(({ prompt }) => JSON.stringify({ prompt: [{ role: 'user', content: prompt }] }));

const targets = ['shouting:4,length:4', 'shouting:0,length:4'];
const steer2Lines = conversations(32, 10, 14).map(({ prompt }, i) => JSON.stringify({ prompt: [{ role: 'user', content: prompt }], label: targets[i % 2] }));

writeFileSync(path.join(here, 'steerlm2-prompts.jsonl'), `${steer2Lines.join('\n')}\n`);
writeFileSync(path.join(here, 'steerlm-rm.jsonl'), `${rmLines.join('\n')}\n`);
writeFileSync(path.join(here, 'steerlm-sft.jsonl'), `${sftLines.join('\n')}\n`);
writeFileSync(path.join(here, 'steerlm-prompts.jsonl'), `${promptLines.join('\n')}\n`);
console.log(`wrote ${rmLines.length} attribute records, ${sftLines.length} SFT conversations, ${promptLines.length} prompts, ${steer2Lines.length} SteerLM 2.0 prompts`);
