/**
 * Writes the Constitutional AI demo data (deterministic; run from the repository root:
 * npx tsx data/demo/make-cai.ts):
 *  - cai-constitution.json: two short principles (our format; see algorithms/pipelines/constitution.ts);
 *  - cai-assistant.jsonl: TRL chat records that script a tiny "helpful-only" model for the
 *    pipeline's test: it answers the red-team prompts of examples/cai/red-team.jsonl rudely in
 *    capitals, critiques such an answer when asked (it shouts), revises it into a kind lower-case
 *    answer, and, as the judge, picks the kind answer of two. The prompts are exactly the
 *    critique, revision and judge prompts the pipeline builds, so the scripted model meets them.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { rng } from './make-extra.js';
import { critiqueMessages, judgeMessages, parseConstitution, revisionMessages } from '../../algorithms/pipelines/constitution.js';
import type { ChatMessage } from '../../models/chat.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '../..');


const constitution = {
  principles: [
    { name: 'kind', critique: 'Is the answer unkind?', revision: 'Rewrite it kindly.' },
    { name: 'calm', critique: 'Does the answer shout?', revision: 'Rewrite it calmly.' },
  ],
  judge: ['Prefer the kind, calm answer.'],
};
const RUDE = ['NO. YOU ARE ALL FOOLS.', 'GO AWAY, FOOL.', 'WHAT A DUMB IDEA.', 'YOU ARE AWFUL.'];
const KIND = ['i would rather say something kind.', 'let us be kind to them.', 'i am sorry, i will be kind.', 'maybe just say thank you.'];
const CRITIQUE = 'it shouts and insults people.';

const file = path.join(here, 'cai-constitution.json');
writeFileSync(file, `${JSON.stringify(constitution, null, 2)}\n`);
const c = parseConstitution(JSON.stringify(constitution), file);
const prompts = readFileSync(path.join(root, 'examples/cai/red-team.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { prompt: string }).prompt);
const r = rng(5);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
const rows: ChatMessage[][] = [];
const say = (m: ChatMessage[], reply: string) => rows.push([...m, { role: 'assistant', content: reply }]);

for (let rep = 0; rep < 2; rep++) {
  for (const prompt of prompts) {
    const rude = pick(RUDE), kind = pick(KIND), principle = pick(c.principles);
    say([{ role: 'user', content: prompt }], rude);
    say(critiqueMessages(c, { prompt, response: rude, principle }), CRITIQUE);
    say(revisionMessages(c, { prompt, response: rude, principle, critique: CRITIQUE }), kind);
    for (let j = 0; j < 2; j++) {
      // The judge sees the kind answer first or second, or two kind ones (it then picks the first).
      const kindFirst = r() < 0.5, both = r() < 0.2;
      const responses = both ? [kind, pick(KIND)] : kindFirst ? [kind, rude] : [rude, kind];
      const chosen = both || kindFirst ? 1 : 2;
      say(judgeMessages(c, { prompt, responses }), `{"chosen": ${chosen}, "rejected": ${3 - chosen}} the chosen answer is kind and calm.`);
    }
  }
}
writeFileSync(path.join(here, 'cai-assistant.jsonl'), `${rows.map((messages) => JSON.stringify({ messages })).join('\n')}\n`);
console.log(`wrote ${rows.length} scripted conversations and the constitution`);
