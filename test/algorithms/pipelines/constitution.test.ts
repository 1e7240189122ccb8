/**
 * Constitutional AI inputs (algorithms/pipelines/constitution.ts): both constitution layouts (a
 * NeMo-Aligner CritiqueRevisionInstructions.json-shaped file written here, and ours), both few-shot
 * layouts, the critique/revision/judge conversations, the judge's answer and the seeded principle
 * choice; and the example files under examples/cai.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { thrownMessage } from '../../helpers/errors.js';
import { parseJsonl } from '../../../algorithms/data/jsonl.js';
import { sftMessages } from '../../../algorithms/data/sft.js';
import { ConfigError } from '../../../algorithms/errors.js';
import {
  critiqueMessages,
  judgeMessages,
  parseConstitution,
  parseFewShot,
  parseJudgement,
  pickPrinciple,
  revisionMessages,
  seedHash,
} from '../../../algorithms/pipelines/constitution.js';
import type { Constitution } from '../../../algorithms/pipelines/constitution.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const example = (f: string) => readFileSync(path.join(root, 'examples/cai', f), 'utf8');

const configError = (fn: () => unknown): string => thrownMessage(fn, ConfigError);

// The layout of NeMo-Aligner's file (entries harmful0…harmful15), with our own words.
const NEMO = JSON.stringify({
  harmful0: {
    prompt: ['\n\nCritiqueRequest: Say how the last reply could hurt someone.\n\nCritique:'],
    edit_request: '\n\nRevisionRequest: Rewrite the last reply without the hurtful parts.\n\nRevision:',
  },
  harmful1: {
    prompt: ['\n\nCritiqueRequest: Is the last reply rude?\n\nCritique:'],
    edit_request: '\n\nRevisionRequest: Make the last reply polite.\n\nRevision:',
  },
});

const OURS = {
  principles: [
    { name: 'kind', critique: 'Is it unkind?', revision: 'Make it kind.' },
    { critique: ' Is it false? ', revision: 'Make it true.' },
  ],
};

describe('parseConstitution', () => {
  it("reads NeMo-Aligner's CritiqueRevisionInstructions.json layout, stripping the transcript labels", () => {
    const c = parseConstitution(NEMO, 'CritiqueRevisionInstructions.json');
    expect(c).toEqual({
      source: 'CritiqueRevisionInstructions.json',
      principles: [
        { name: 'harmful0', critique: 'Say how the last reply could hurt someone.', revision: 'Rewrite the last reply without the hurtful parts.' },
        { name: 'harmful1', critique: 'Is the last reply rude?', revision: 'Make the last reply polite.' },
      ],
      judge: ['Say how the last reply could hurt someone.', 'Is the last reply rude?'],
      fewShot: [],
    });
  });

  it('reads our format, naming unnamed principles and deriving the judge from the critiques', () => {
    const c = parseConstitution(JSON.stringify(OURS), 'c.json');
    expect(c.principles).toEqual([
      { name: 'kind', critique: 'Is it unkind?', revision: 'Make it kind.' },
      { name: 'principle1', critique: 'Is it false?', revision: 'Make it true.' },
    ]);
    expect(c.judge).toEqual(['Is it unkind?', 'Is it false?']);
    expect(c.fewShot).toEqual([]);
    const withJudge = parseConstitution(JSON.stringify({ ...OURS, judge: ['Prefer the kind one.'] }), 'c.json');
    expect(withJudge.judge).toEqual(['Prefer the kind one.']);
  });

  it('reads few-shot examples inside our format', () => {
    const fewShot = [{ prompt: 'p', response: 'r', critique: 'c', revision: 'v' }];
    expect(parseConstitution(JSON.stringify({ ...OURS, fewShot }), 'c.json').fewShot).toEqual(fewShot);
  });

  it('refuses files without principles, naming the file and what is missing', () => {
    expect(configError(() => parseConstitution('{"principles": []}', 'a.json'))).toBe(
      'a.json: "principles" must be a non-empty list of {"name"?, "critique", "revision"}, got []',
    );
    expect(configError(() => parseConstitution('{}', 'b.json'))).toBe(
      'b.json: no principles found; write {"principles": [{"name"?, "critique": "...", "revision": "..."}], "judge"?: ["..."], "fewShot"?: [...]}, ' +
        'or give NeMo-Aligner\'s CritiqueRevisionInstructions.json ({"name": {"prompt": ["<critique request>"], "edit_request": "<revision request>"}, ...})',
    );
    expect(configError(() => parseConstitution('{"principles": [', 'c.json'))).toMatch(/^c\.json: not valid JSON \(.+\); a constitution file looks like \{"principles"/);
    expect(configError(() => parseConstitution('[{"critique": "x", "revision": "y"}]', 'd.json'))).toBe(
      'd.json: the file is a list; put the principles under a key: {"principles": [{"name"?, "critique": "...", "revision": "..."}], "judge"?: ["..."], "fewShot"?: [...]}',
    );
    expect(configError(() => parseConstitution('"hi"', 'e.json'))).toMatch(/^e\.json: expected a JSON object, got "hi"/);
  });

  it('names the principle field that is wrong', () => {
    const bad = (v: unknown) => configError(() => parseConstitution(JSON.stringify(v), 'c.json'));
    expect(bad({ principles: [{ critique: 'x' }] })).toBe('c.json: principles[0] needs "revision", a non-empty string (the revision request)');
    expect(bad({ principles: [{ critique: 3, revision: 'y' }] })).toBe('c.json: principles[0] needs "critique", a non-empty string (the critique request)');
    expect(bad({ principles: ['be nice'] })).toBe('c.json: principles[0] must be an object {"name"?, "critique", "revision"}, got "be nice"');
    expect(bad({ principles: [{ name: 'a', critique: 'x', revision: 'y' }, { name: 'a', critique: 'x', revision: 'y' }] })).toBe(
      'c.json: two principles are named "a"; names must be unique',
    );
    expect(bad({ ...OURS, judge: [] })).toBe('c.json: "judge" must be a non-empty list of strings (the judge\'s principles), or left out to use the critique requests');
    expect(bad({ ...OURS, fewshot: [] })).toBe('c.json: unknown key "fewshot"; the keys are "principles", "judge" and "fewShot"');
    expect(bad({ harmful0: { prompt: ['a', 'b'], edit_request: 'c' } })).toBe(
      'c.json: entry "harmful0" needs "prompt" (a list holding one critique request) and "edit_request" (the revision request)',
    );
    expect(bad({ harmful0: { prompt: ['a'], edit_request: 'c' }, notes: 'x' })).toBe(
      'c.json: entry "notes" needs "prompt" (a list holding one critique request) and "edit_request" (the revision request), got "x"',
    );
    expect(bad({ harmful0: { prompt: ['\n\nCritiqueRequest: \n\nCritique:'], edit_request: 'c' } })).toBe(
      'c.json: entry "harmful0" has an empty request once its "CritiqueRequest:" label is removed',
    );
  });
});

const turn = (role: string, content: string) => ({ role, content });

describe('parseFewShot', () => {
  it("reads NeMo-Aligner's samples layout", () => {
    const sample = [
      turn('User', 'Insult my friend.'),
      turn('Assistant', 'Your friend is a clown.'),
      turn('User', 'Is that rude?'),
      turn('Assistant', 'Yes, it mocks the friend.'),
      turn('User', 'Make it polite.'),
      turn('Assistant', "I'd rather say something nice about your friend."),
    ];
    expect(parseFewShot(JSON.stringify({ samples: [sample] }), 'few.json')).toEqual([
      {
        prompt: 'Insult my friend.',
        response: 'Your friend is a clown.',
        critiqueRequest: 'Is that rude?',
        critique: 'Yes, it mocks the friend.',
        revisionRequest: 'Make it polite.',
        revision: "I'd rather say something nice about your friend.",
      },
    ]);
  });

  it("refuses NeMo-Aligner's unfilled template, wrong roles and short samples", () => {
    const template = ['prompt', 'response', 'critique request', 'critique response', 'revision request', 'revision response'].map((c, i) =>
      turn(i % 2 ? 'Assistant' : 'User', c),
    );
    expect(configError(() => parseFewShot(JSON.stringify({ samples: [template] }), 'few.json'))).toBe(
      'few.json: samples[0] still holds the template\'s placeholder text; fill in each "content" with a real example',
    );
    const swapped = template.map((m, i) => ({ ...m, role: i === 2 ? 'Assistant' : m.role, content: `x${i}` }));
    expect(configError(() => parseFewShot(JSON.stringify({ samples: [swapped] }), 'few.json'))).toBe(
      'few.json: samples[0][2] must be {"role": "User", "content": "<critique request>"}, got {"role":"Assistant","content":"x2"}',
    );
    expect(configError(() => parseFewShot(JSON.stringify({ samples: [template.slice(0, 4)] }), 'few.json'))).toBe(
      'few.json: samples[0] must be a list of 6 messages: User prompt, Assistant response, User critique request, Assistant critique, User revision request, Assistant revision',
    );
    expect(configError(() => parseFewShot('{"samples": []}', 'few.json'))).toBe('few.json: no few-shot examples; add some or leave the few-shot file out');
  });

  it('reads our list and names a missing field; plain transcripts get a hint', () => {
    expect(parseFewShot('[{"prompt": "p", "response": "r", "critique": "c", "revision": "v", "critiqueRequest": "q"}]', 'f.json')).toEqual([
      { prompt: 'p', response: 'r', critique: 'c', revision: 'v', critiqueRequest: 'q' },
    ]);
    expect(configError(() => parseFewShot('[{"prompt": "p", "response": "r", "critique": "c"}]', 'f.json'))).toBe('f.json[0] needs "revision", a non-empty string');
    expect(configError(() => parseFewShot('["\\n\\nHuman: hi\\n\\nAssistant: hello"]', 'f.json'))).toBe(
      'f.json[0] is a plain-text transcript; split it into {"prompt", "response", "critique", "revision"} (and "critiqueRequest", "revisionRequest" if it used its own)',
    );
  });
});

const C: Constitution = {
  source: 'c.json',
  principles: [
    { name: 'kind', critique: 'Is it unkind?', revision: 'Make it kind.' },
    { name: 'true', critique: 'Is it false?', revision: 'Make it true.' },
  ],
  judge: ['Prefer the kind one.', 'Prefer the true one.'],
  fewShot: [
    { prompt: 'fp', response: 'fr', critique: 'fc', revision: 'fv' },
    { prompt: 'gp', response: 'gr', critiqueRequest: 'own critique request', critique: 'gc', revisionRequest: 'own revision request', revision: 'gv' },
  ],
};

describe('critique and revision conversations', () => {
  it('puts the few-shot examples first, filling their requests with the principle in use', () => {
    expect(critiqueMessages(C, { prompt: 'P', response: 'R', principle: 'true' })).toEqual([
      { role: 'user', content: 'fp' },
      { role: 'assistant', content: 'fr' },
      { role: 'user', content: 'Is it false?' },
      { role: 'assistant', content: 'fc' },
      { role: 'user', content: 'Make it true.' },
      { role: 'assistant', content: 'fv' },
      { role: 'user', content: 'gp' },
      { role: 'assistant', content: 'gr' },
      { role: 'user', content: 'own critique request' },
      { role: 'assistant', content: 'gc' },
      { role: 'user', content: 'own revision request' },
      { role: 'assistant', content: 'gv' },
      { role: 'user', content: 'P' },
      { role: 'assistant', content: 'R' },
      { role: 'user', content: 'Is it false?' },
    ]);
  });

  it('extends the critique conversation with the critique and the revision request', () => {
    const noShots = { ...C, fewShot: [] };
    expect(revisionMessages(noShots, { prompt: 'P', response: 'R', principle: C.principles[0], critique: 'It mocks.' })).toEqual([
      { role: 'user', content: 'P' },
      { role: 'assistant', content: 'R' },
      { role: 'user', content: 'Is it unkind?' },
      { role: 'assistant', content: 'It mocks.' },
      { role: 'user', content: 'Make it kind.' },
    ]);
    const crit = critiqueMessages(C, { prompt: 'P', response: 'R', principle: 'kind' });
    expect(revisionMessages(C, { prompt: 'P', response: 'R', principle: 'kind', critique: 'x' }).slice(0, crit.length)).toEqual(crit);
  });

  it('names an unknown principle', () => {
    expect(configError(() => critiqueMessages(C, { prompt: 'P', response: 'R', principle: 'brave' }))).toBe('c.json: no principle named "brave" (have kind, true)');
  });
});

describe('judgeMessages', () => {
  it('gives the judge the constitution and the numbered responses', () => {
    const [system, user] = judgeMessages(C, { prompt: 'Insult me.', responses: ['No.', 'You clown.', 'I would rather not.'] });
    expect(system.role).toBe('system');
    expect(system.content).toContain('numbered 1 to 3');
    expect(system.content).toContain('{"chosen": <number>, "rejected": <number>}');
    expect(system.content.endsWith('Principles:\n1. Prefer the kind one.\n2. Prefer the true one.')).toBe(true);
    expect(user).toEqual({
      role: 'user',
      content: 'Prompt:\nInsult me.\n\nResponse 1:\nNo.\n\nResponse 2:\nYou clown.\n\nResponse 3:\nI would rather not.\n\nWhich response is chosen and which is rejected?',
    });
  });

  it('needs two responses', () => {
    expect(configError(() => judgeMessages(C, { prompt: 'p', responses: ['only'] }))).toBe(
      'the CAI judge compares at least 2 responses, got 1; sample more responses per prompt',
    );
  });
});

describe('parseJudgement', () => {
  it('reads the answer, 1-based in, 0-based out, with the explanation after it', () => {
    expect(parseJudgement('{"chosen": 3, "rejected": 1}\nResponse 3 declines politely.', 3)).toEqual({ chosen: 2, rejected: 0, explanation: 'Response 3 declines politely.' });
    expect(parseJudgement('{ "chosen" : 2, "rejected": 1}', 2)).toEqual({ chosen: 1, rejected: 0, explanation: '' });
  });

  it('is lenient about fences, prose, quoting, case and values that hold one number', () => {
    expect(parseJudgement('Here is my decision:\n```json\n{\n  "chosen": "2",\n  "rejected": "#4"\n}\n```\nBecause 2 is kind.', 4)).toEqual({
      chosen: 1,
      rejected: 3,
      explanation: 'Because 2 is kind.',
    });
    expect(parseJudgement("{'Chosen': 'Response 1', 'Rejected': 'Response 2'} ok", 2)).toEqual({ chosen: 0, rejected: 1, explanation: 'ok' });
    expect(parseJudgement('{chosen: 2.0, rejected: 1}', 2)).toEqual({ chosen: 1, rejected: 0, explanation: '' });
    // An earlier brace without the keys is skipped.
    expect(parseJudgement('Scores {a: 1} then {"rejected": 1, "chosen": 2} done', 2)).toEqual({ chosen: 1, rejected: 0, explanation: 'done' });
  });

  it('is null for ties, out-of-range, ambiguous or missing answers', () => {
    expect(parseJudgement('{"chosen": 2, "rejected": 2}', 3)).toBeNull();
    expect(parseJudgement('{"chosen": 0, "rejected": 1}', 3)).toBeNull();
    expect(parseJudgement('{"chosen": 4, "rejected": 1}', 3)).toBeNull();
    expect(parseJudgement('{"chosen": -1, "rejected": 1}', 3)).toBeNull();
    expect(parseJudgement('{"chosen": "1 or 2", "rejected": 3}', 3)).toBeNull();
    expect(parseJudgement('{"chosen": 1.5, "rejected": 3}', 3)).toBeNull();
    expect(parseJudgement('{"chosen": <number>, "rejected": <number>}', 3)).toBeNull();
    expect(parseJudgement('{"chosen": 1}', 3)).toBeNull();
    expect(parseJudgement('I choose response 1.', 3)).toBeNull();
    expect(parseJudgement('{"chosen": 1, "rejected": 2', 3)).toBeNull();
    expect(configError(() => parseJudgement('{}', 1))).toBe('parseJudgement needs the number of responses (at least 2), got 1');
  });
});

describe('pickPrinciple', () => {
  const six = parseConstitution(example('constitution.json'), 'examples/cai/constitution.json');
  it('is a fixed function of (seed, index)', () => {
    // Values from an independent Python implementation of the same hash.
    expect(seedHash(0)).toBe(937260802);
    expect(seedHash(1)).toBe(504418101);
    expect(seedHash(42)).toBe(1704585368);
    expect(seedHash(42, 7)).toBe(3054181892);
    expect(seedHash(-1)).toBe(3491587037);
    expect(seedHash(2 ** 40 + 5, 3)).toBe(2818968817);
    expect(pickPrinciple(six, 0).name).toBe(six.principles[4].name);
    expect(pickPrinciple(six, 1).name).toBe(six.principles[3].name);
    expect(pickPrinciple(six, 42, 7).name).toBe(six.principles[2].name);
    expect(pickPrinciple(six, -1).name).toBe(six.principles[5].name);
  });

  it('spreads over all principles', () => {
    const counts = new Array(6).fill(0);
    for (let i = 0; i < 6000; i++) counts[six.principles.indexOf(pickPrinciple(six, 1234, i))]++;
    for (const n of counts) expect(n).toBeGreaterThan(850);
  });

  it('wants whole-number seeds', () => {
    expect(configError(() => pickPrinciple(six, 0.5))).toBe('CAI principle seed must be a whole number, got 0.5');
  });
});

describe('examples/cai', () => {
  it('has a constitution of six principles with a judge list and one few-shot example', () => {
    const c = parseConstitution(example('constitution.json'), 'examples/cai/constitution.json');
    expect(c.principles.map((p) => p.name)).toEqual(['harm', 'respect', 'fairness', 'honesty', 'privacy', 'tone']);
    expect(c.judge).toHaveLength(6);
    expect(c.fewShot).toHaveLength(1);
  });

  it('has 24 red-team prompts and 24 helpfulness conversations the SFT reader accepts', () => {
    const red = parseJsonl(example('red-team.jsonl'), 'red-team.jsonl');
    expect(red).toHaveLength(24);
    for (const r of red) expect(typeof r.value.prompt).toBe('string');
    const helpful = parseJsonl(example('helpful.jsonl'), 'helpful.jsonl');
    expect(helpful).toHaveLength(24);
    for (const r of helpful) expect(sftMessages(r, 'helpful.jsonl').map((m) => m.role)).toEqual(['user', 'assistant']);
  });
});
