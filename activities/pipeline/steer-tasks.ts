/**
 * SteerLM's data tasks:
 *  - annotate: the attribute model's predictions for every assistant turn of the SFT data (each
 *    turn read with the conversation before it, rendered by the chat template as the attribute
 *    model was trained), rounded to the integer levels and written as NeMo-Aligner's SteerLM
 *    records (`conversations` with a `label` on each assistant turn);
 *  - steer-eval: samples of the steered model asked for a low and a high value of one attribute,
 *    scored by the attribute model: the steering's effect, per value.
 */
import { sftMessages } from '../../algorithms/data/sft.js';
import { formatLabel, steeredPromptText } from '../../algorithms/data/steerlm.js';
import { promptOf } from '../../algorithms/data/prompts.js';
import { DataError } from '../../algorithms/errors.js';
import { renderChat } from '../../models/chat.js';
import type { ChatMessage } from '../../models/chat.js';
import { scoreIds } from '../score.js';
import type { ResidentJudge } from '../score.js';
import type { DataTask, TaskContext } from './tasks.js';
import { readRecords, sampleResponses } from './sampling.js';

const num = (a: Record<string, unknown>, k: string): number => a[k] as number;
const str = (a: Record<string, unknown>, k: string): string => a[k] as string;

/** The attribute model, checked to predict the pipeline's attributes in order. */
async function attributeJudge(ctx: TaskContext, uri: string, attributes: readonly string[]): Promise<ResidentJudge> {
  const judge = await ctx.judges.get(ctx.store, uri);
  if (judge.labelNames.length !== attributes.length || judge.labelNames.some((n, i) => n !== attributes[i])) {
    throw new DataError(`attribute model ${uri} predicts [${judge.labelNames.join(', ')}], but the pipeline's attributes are [${attributes.join(', ')}]`);
  }
  return judge;
}

const level = (v: number, levels: number): number => Math.min(levels, Math.max(0, Math.round(v)));

/** A conversation as NeMo-Aligner's SteerLM format writes it. */
function nemoRecord(messages: readonly ChatMessage[], labels: ReadonlyMap<number, string>): Record<string, unknown> {
  const system = messages.find((m) => m.role === 'system')?.content ?? '';
  const conversations = messages.flatMap((m, i) => (m.role === 'system' ? [] : [{
    from: m.role === 'user' ? 'User' : 'Assistant', value: m.content, ...(labels.has(i) ? { label: labels.get(i) } : {}),
  }]));
  return { system, conversations, mask: 'User' };
}

export const annotate: DataTask = {
  async shards(ctx, a) {
    return Math.max(1, Math.ceil((await readRecords(ctx.store, str(a, 'data'))).length / num(a, 'shardRecords')));
  },
  async run(ctx, a, shard) {
    const attributes = a.attributes as string[];
    const judge = await attributeJudge(ctx, str(a, 'attributeModel'), attributes);
    const source = str(a, 'data');
    const per = num(a, 'shardRecords');
    const mine = (await readRecords(ctx.store, source)).slice(shard * per, (shard + 1) * per);
    const convs = mine.map((rec) => sftMessages(rec, source).map(({ role, content }) => ({ role, content }) as ChatMessage));
    // One scored sequence per assistant turn: the conversation up to and including it.
    const turns = convs.flatMap((m, c) => m.map((x, i) => ({ c, i, role: x.role })).filter((t) => t.role === 'assistant'));
    const rows = turns.map((t) => judge.tok.encode(renderChat(judge.tok, convs[t.c].slice(0, t.i + 1)), { addSpecialTokens: false }));
    const scores = await scoreIds(judge, rows);
    const sums: Record<string, number> = { turns: turns.length };
    const labels = convs.map(() => new Map<number, string>());
    turns.forEach((t, k) => {
      const values = Object.fromEntries(attributes.map((n, j) => [n, level(scores[k][j], num(a, 'levels'))]));
      attributes.forEach((n, j) => (sums[`sum_${n}`] = (sums[`sum_${n}`] ?? 0) + scores[k][j]));
      labels[t.c].set(t.i, formatLabel(values, attributes));
    });
    ctx.beat({ annotated: turns.length });
    return { records: convs.map((m, c) => nemoRecord(m, labels[c])), sums };
  },
  summarize(s, records, a) {
    const attributes = a.attributes as string[];
    const metrics: Record<string, number> = { turns: s.turns ?? 0 };
    for (const n of attributes) metrics[`mean_${n}`] = s.turns ? (s[`sum_${n}`] ?? 0) / s.turns : 0;
    return { metrics, summary: `annotated ${records} records (${s.turns} assistant turns); mean predicted ${attributes.map((n) => `${n} ${metrics[`mean_${n}`].toFixed(2)}`).join(', ')}` };
  },
};

/** The chat messages of a prompt record (a plain-text prompt becomes one user turn). */
export function promptRecordMessages(v: Record<string, unknown>): ChatMessage[] {
  const p = promptOf(v).prompt;
  return typeof p === 'string' ? [{ role: 'user', content: p }] : p;
}

export const steerEval: DataTask = {
  async run(ctx, a) {
    const attributes = a.attributes as string[];
    const judge = await attributeJudge(ctx, str(a, 'attributeModel'), attributes);
    const policy = await ctx.policies.get(ctx.store, str(a, 'policy'));
    const source = str(a, 'prompts');
    const prompts = (await readRecords(ctx.store, source)).map((r) => promptRecordMessages(r.value));
    const attribute = str(a, 'attribute');
    const j = attributes.indexOf(attribute);
    const render = (m: readonly { role: string; content: string }[], g: boolean) => renderChat(policy.tok, m as ChatMessage[], { addGenerationPrompt: g });
    const records: Record<string, unknown>[] = [];
    const sums: Record<string, number> = {};
    for (const [v, value] of (a.values as number[]).entries()) {
      const label = formatLabel({ ...(a.others as Record<string, number>), [attribute]: value }, attributes);
      const ids = prompts.map((m) => policy.tok.encode(steeredPromptText(render, m, label), { addSpecialTokens: false }));
      const samples = await sampleResponses(policy, ids, {
        samplesPerPrompt: num(a, 'samplesPerPrompt'), maxNewTokens: num(a, 'maxNewTokens'), temperature: num(a, 'temperature'), seed: num(a, 'seed'), round: v, shard: 0,
      });
      // The attribute model reads each sample as a conversation, without the label.
      const rows = samples.map((s) => judge.tok.encode(renderChat(judge.tok, [...prompts[s.prompt], { role: 'assistant', content: s.text }]), { addSpecialTokens: false }));
      const scores = await scoreIds(judge, rows);
      sums[`sum_${v}`] = scores.reduce((t, x) => t + x[j], 0);
      sums[`n_${v}`] = scores.length;
      samples.forEach((s, k) => records.push({ prompt: prompts[s.prompt], label, response: s.text, predicted: Object.fromEntries(attributes.map((n, i) => [n, scores[k][i]])) }));
      ctx.beat({ value, sampled: samples.length });
    }
    return { records, sums };
  },
  summarize(s, _records, a) {
    const attribute = str(a, 'attribute');
    const [low, high] = a.values as number[];
    const at = (v: number) => (s[`n_${v}`] ? s[`sum_${v}`] / s[`n_${v}`] : 0);
    const metrics = { [`${attribute}AtLow`]: at(0), [`${attribute}AtHigh`]: at(1), askedLow: low, askedHigh: high };
    return { metrics, summary: `asked ${attribute}=${low}: the attribute model predicts ${at(0).toFixed(2)}; asked ${attribute}=${high}: ${at(1).toFixed(2)}` };
  },
};
