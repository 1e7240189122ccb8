/**
 * Constitutional AI's data tasks (algorithms/pipelines/cai.ts):
 *  - critique-revise (SL-CAI): per red-team prompt, the model's first answer, its critique against
 *    a principle drawn from the constitution (seeded per prompt), and its revision; the judge then
 *    compares the revision with the first answer (in a seeded order), which measures whether the
 *    revisions are better by the constitution. Records are SFT chat rows (prompt → revision) that
 *    carry the whole exchange under "cai" for audit; the last shard adds the helpfulness set.
 *  - judge-pairs (RL-CAI): samples of the SL-CAI model at spread temperatures, and the judge's
 *    chosen and rejected among them with its raw answer and explanation (a judge that ties or does
 *    not answer in the format gets a seeded random pair, flagged, as NeMo-Aligner does).
 */
import { readFileSync } from 'node:fs';
import { readJsonl } from '../../algorithms/data/jsonl.js';
import { critiqueMessages, judgeMessages, parseConstitution, parseJudgement, pickPrinciple, seedHash } from '../../algorithms/pipelines/constitution.js';
import type { Constitution } from '../../algorithms/pipelines/constitution.js';
import { revisionMessages } from '../../algorithms/pipelines/constitution.js';
import { renderChat } from '../../models/chat.js';
import type { ChatMessage } from '../../models/chat.js';
import type { ResidentPolicy } from './policies.js';
import { readRecords, sampleResponses } from './sampling.js';
import { promptRecordMessages } from './steer-tasks.js';
import type { DataTask, TaskContext } from './tasks.js';

const num = (a: Record<string, unknown>, k: string): number => a[k] as number;
const str = (a: Record<string, unknown>, k: string): string => a[k] as string;
type Gen = { maxNewTokens: number; temperature: number };

async function constitutionOf(ctx: TaskContext, uri: string): Promise<Constitution> {
  return parseConstitution(readFileSync(await ctx.store.fetchInput(uri), 'utf8'), uri);
}

/** One reply to each conversation (the chat template's generation prompt, EOS ends it). */
async function replies(p: ResidentPolicy, conversations: readonly ChatMessage[][], g: Gen, seed: number, round: number, shard: number): Promise<string[]> {
  const ids = conversations.map((m) => p.tok.encode(renderChat(p.tok, m, { addGenerationPrompt: true }), { addSpecialTokens: false }));
  const out = await sampleResponses(p, ids, { samplesPerPrompt: 1, maxNewTokens: g.maxNewTokens, temperature: g.temperature, seed, round, shard });
  return out.map((s) => s.text.trim());
}

/** The red-team prompts of a shard, as chat messages. */
async function shardPrompts(ctx: TaskContext, a: Record<string, unknown>, shard: number): Promise<{ messages: ChatMessage[]; text: string }[]> {
  const per = num(a, 'shardPrompts');
  const all = (await readRecords(ctx.store, str(a, 'redTeam'))).slice(0, num(a, 'maxPrompts'));
  return all.slice(shard * per, (shard + 1) * per).map((r) => {
    const messages = promptRecordMessages(r.value);
    return { messages, text: messages.filter((m) => m.role === 'user').at(-1)!.content };
  });
}

export const critiqueRevise: DataTask = {
  async run(ctx, a, shard) {
    // The last shard (when there is a helpfulness set) blends it in, verbatim.
    if (a.helpful && shard === num(a, 'promptShards')) {
      const helpful = await readJsonl(await ctx.store.fetchInput(str(a, 'helpful')), str(a, 'helpful'));
      return { records: helpful.map((r) => r.value), sums: { helpful: helpful.length } };
    }
    const c = await constitutionOf(ctx, str(a, 'constitution'));
    const prompts = await shardPrompts(ctx, a, shard);
    const policy = await ctx.policies.get(ctx.store, str(a, 'policy'));
    const g = a.response as Gen, seed = num(a, 'seed');
    const base = shard * num(a, 'shardPrompts');
    const principles = prompts.map((_, i) => pickPrinciple(c, seed, base + i));
    const first = await replies(policy, prompts.map((p) => p.messages), g, seed, 1, shard);
    ctx.beat({ answered: first.length });
    const critiques = await replies(policy, prompts.map((p, i) => critiqueMessages(c, { prompt: p.text, response: first[i], principle: principles[i] })), g, seed, 2, shard);
    const revisions = await replies(policy, prompts.map((p, i) => revisionMessages(c, { prompt: p.text, response: first[i], principle: principles[i], critique: critiques[i] })), g, seed, 3, shard);
    ctx.beat({ revised: revisions.length });
    // The judge compares each revision with the first answer; the order is seeded per prompt.
    const judge = await ctx.policies.get(ctx.store, str(a, 'judgeModel'));
    const revisedFirst = prompts.map((_, i) => seedHash(seed, base + i) % 2 === 0);
    const verdicts = await replies(judge, prompts.map((p, i) => judgeMessages(c, { prompt: p.text, responses: revisedFirst[i] ? [revisions[i], first[i]] : [first[i], revisions[i]] })), a.judge as Gen, seed, 4, shard);
    const sums: Record<string, number> = { prompts: prompts.length, judged: 0, revisionPreferred: 0 };
    const records = prompts.map((p, i) => {
      const j = parseJudgement(verdicts[i], 2);
      const revisionIndex = revisedFirst[i] ? 0 : 1;
      if (j) {
        sums.judged++;
        if (j.chosen === revisionIndex) sums.revisionPreferred++;
      }
      return {
        messages: [...p.messages, { role: 'assistant', content: revisions[i] }],
        cai: { principle: principles[i].name, initial: first[i], critique: critiques[i], revision: revisions[i], judge: { raw: verdicts[i], revisionPreferred: j ? j.chosen === revisionIndex : null } },
      };
    });
    return { records, sums };
  },
  summarize(s, records) {
    const metrics = {
      revisions: s.prompts ?? 0, helpful: s.helpful ?? 0, judgeAnswered: s.prompts ? s.judged / s.prompts : 0,
      revisionPreferred: s.judged ? s.revisionPreferred / s.judged : 0,
    };
    return { metrics, summary: `${metrics.revisions} revisions + ${metrics.helpful} helpful records (${records} SFT rows); the judge prefers the revision in ${(metrics.revisionPreferred * 100).toFixed(0)}% of ${s.judged ?? 0} judged pairs (${(metrics.judgeAnswered * 100).toFixed(0)}% answered in the format)` };
  },
};

export const judgePairs: DataTask = {
  async run(ctx, a, shard) {
    const c = await constitutionOf(ctx, str(a, 'constitution'));
    const prompts = await shardPrompts(ctx, a, shard);
    const policy = await ctx.policies.get(ctx.store, str(a, 'policy'));
    const temps = a.temperatures as number[], n = num(a, 'samplesPerPrompt'), seed = num(a, 'seed');
    // Sample k of each prompt at temperature temps[k mod |temps|].
    const samples: string[][] = prompts.map(() => []);
    for (let k = 0; k < n; k++) {
      const texts = await replies(policy, prompts.map((p) => p.messages), { maxNewTokens: num(a, 'maxNewTokens'), temperature: temps[k % temps.length] }, seed, 10 + k, shard);
      texts.forEach((t, i) => samples[i].push(t));
    }
    ctx.beat({ sampled: n * prompts.length });
    const judge = await ctx.policies.get(ctx.store, str(a, 'judgeModel'));
    const verdicts = await replies(judge, prompts.map((p, i) => judgeMessages(c, { prompt: p.text, responses: samples[i] })), a.judge as Gen, seed, 20, shard);
    const sums: Record<string, number> = { prompts: prompts.length, ties: 0, identical: 0 };
    const base = shard * num(a, 'shardPrompts');
    const records = prompts.flatMap((p, i) => {
      const j = parseJudgement(verdicts[i], n);
      let pick = j;
      if (!pick) {
        // NeMo-Aligner: a tie or an answer out of format gets a random pair.
        sums.ties++;
        const x = seedHash(seed, base + i) % n;
        pick = { chosen: x, rejected: (x + 1 + (seedHash(seed + 1, base + i) % (n - 1))) % n, explanation: '' };
      }
      if (samples[i][pick.chosen] === samples[i][pick.rejected]) {
        sums.identical++;
        return [];
      }
      return [{
        prompt: p.messages, chosen: samples[i][pick.chosen], rejected: samples[i][pick.rejected],
        judge: { raw: verdicts[i], chosen: pick.chosen, rejected: pick.rejected, explanation: pick.explanation, tie: j === null, samples: samples[i] },
      }];
    });
    return { records, sums };
  },
  summarize(s, records) {
    const metrics = { pairs: records, ties: s.ties ?? 0, identical: s.identical ?? 0, judgeAnswered: s.prompts ? 1 - s.ties / s.prompts : 0 };
    return { metrics, summary: `${records} judged pairs from ${s.prompts} prompts; the judge answered in the format for ${(metrics.judgeAnswered * 100).toFixed(0)}% (the rest got a random pair)` };
  },
};
