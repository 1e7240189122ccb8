/**
 * THE DATA TASKS a pipeline's data stages run, one entry each (as RECIPES lists recipes): what a
 * shard computes and how the stage's metrics come from the shards' sums.
 *  - preference-pairs (iterative DPO): N samples per prompt from the current policy, scored by
 *    the reward; the best and the worst non-empty ones form a pair (ties are skipped). `measureOnly` writes the
 *    scored samples instead, to measure a policy's reward.
 *  - spin-pairs (SPIN): the policy's own answer to each SFT prompt, rejected against the record's
 *    ground-truth response;
 *  - annotate, steer-eval (SteerLM): steer-tasks.ts; steerlm2-sample (SteerLM 2.0): steerlm2-sample.ts;
 *  - critique-revise, judge-pairs (Constitutional AI): cai-tasks.ts.
 */
import type { JsonlRecord } from '../../algorithms/data/jsonl.js';
import { atRecord } from '../../algorithms/data/jsonl.js';
import { promptOf } from '../../algorithms/data/prompts.js';
import type { DataTaskName } from '../../algorithms/pipelines/types.js';
import type { OnlineConfig } from '../../algorithms/recipes/index.js';
import { normalizeConversation } from '../../models/chat.js';
import type { ChatMessage } from '../../models/chat.js';
import type { RunStorePort } from '../../store/run-store-port.js';
import { rewardsOf } from '../online/reward.js';
import type { ResidentJudges } from '../score.js';
import type { PolicySource } from './policies.js';
import { promptIdsOf, readRecords, sampleResponses, shardIndices } from './sampling.js';
import { annotate, steerEval } from './steer-tasks.js';
import { steerlm2Sample } from './steerlm2-sample.js';
import { critiqueRevise, judgePairs } from './cai-tasks.js';

export interface TaskContext {
  store: RunStorePort;
  /** The shard's models: loaded once per worker, held until the shard ends. */
  policies: PolicySource;
  judges: ResidentJudges;
  beat: (details: Record<string, unknown>) => void;
}

export interface DataTask {
  /** How many shards, from the task's input, when the plan leaves it to the task (StageSpec shards 0). */
  shards?(ctx: Pick<TaskContext, 'store'>, args: Record<string, unknown>): Promise<number>;
  run(ctx: TaskContext, args: Record<string, unknown>, shard: number, shards: number): Promise<{ records: Record<string, unknown>[]; sums: Record<string, number> }>;
  summarize(sums: Record<string, number>, records: number, args: Record<string, unknown>): { metrics: Record<string, number>; summary: string };
}

const num = (a: Record<string, unknown>, k: string): number => a[k] as number;
const str = (a: Record<string, unknown>, k: string): string => a[k] as string;
const mean = (s: Record<string, number>, sum: string, count: string): number => (s[count] ? (s[sum] ?? 0) / s[count] : 0);

const preferencePairs: DataTask = {
  async run(ctx, a, shard) {
    const policy = await ctx.policies.get(ctx.store, str(a, 'policy'));
    const source = str(a, 'prompts');
    const all = await readRecords(ctx.store, source);
    const idx = shardIndices(all.length, { seed: num(a, 'seed'), round: num(a, 'round'), perRound: num(a, 'promptsPerRound'), perShard: num(a, 'shardPrompts'), shard });
    const kept: { rec: JsonlRecord; ids: number[] }[] = [];
    for (const i of idx) {
      const ids = promptIdsOf(policy, all[i], source, num(a, 'maxPromptLength'));
      if (ids) kept.push({ rec: all[i], ids });
    }
    const n = num(a, 'samplesPerPrompt');
    const samples = await sampleResponses(policy, kept.map((k) => k.ids), {
      samplesPerPrompt: n, maxNewTokens: num(a, 'maxNewTokens'), temperature: num(a, 'temperature'), topP: num(a, 'topP'),
      stopStrings: a.stopStrings as string[], seed: num(a, 'seed'), round: num(a, 'round'), shard,
    });
    ctx.beat({ sampled: samples.length });
    const config = { reward: a.reward, data: { train: source }, rollout: { style: a.style, microBatch: 16 } } as unknown as OnlineConfig;
    const rewards = await rewardsOf(ctx.store, ctx.judges, config, samples.map((s) => ({ record: { ...kept[s.prompt].rec.value, line: kept[s.prompt].rec.line }, response: s.text, ended: s.ended })), (done) => ctx.beat({ scored: done }));
    const sums: Record<string, number> = { rewardSum: rewards.reduce((x, y) => x + y, 0), samples: rewards.length, skippedPrompts: idx.length - kept.length, pairs: 0, ties: 0, bestSum: 0, worstSum: 0 };
    const records: Record<string, unknown>[] = [];
    kept.forEach((k, p) => {
      const group = samples.map((s, i) => ({ s, r: rewards[i] })).filter((x) => x.s.prompt === p);
      const { prompt, verbatim } = promptOf(k.rec.value);
      if (a.measureOnly) {
        for (const g of group) records.push({ prompt, response: g.s.text, reward: g.r, line: k.rec.line });
        return;
      }
      // A response that ended at once (empty text) is scored but never paired: DPO refuses an empty
      // plain-text response, and one empty sample must not fail the round's training stage.
      const pairable = group.filter((g) => g.s.text.trim() !== '');
      sums.emptySamples = (sums.emptySamples ?? 0) + group.length - pairable.length;
      if (pairable.length === 0) {
        sums.ties++;
        return;
      }
      const best = pairable.reduce((x, y) => (y.r > x.r ? y : x));
      const worst = pairable.reduce((x, y) => (y.r < x.r ? y : x));
      sums.bestSum += best.r;
      sums.worstSum += worst.r;
      if (best.r === worst.r) {
        sums.ties++;
        return;
      }
      sums.pairs++;
      // NeMo-Aligner's format for templated text prompts (tokenized verbatim), TRL's otherwise.
      records.push(verbatim
        ? { prompt, chosen_response: best.s.text, rejected_response: worst.s.text, chosen_reward: best.r, rejected_reward: worst.r }
        : { prompt, chosen: best.s.text, rejected: worst.s.text, chosen_reward: best.r, rejected_reward: worst.r });
    });
    return { records, sums };
  },
  summarize(s, records, a) {
    const groups = (s.pairs ?? 0) + (s.ties ?? 0);
    const metrics: Record<string, number> = { meanReward: mean(s, 'rewardSum', 'samples'), samples: s.samples ?? 0, skippedPrompts: s.skippedPrompts ?? 0 };
    if (a.measureOnly) return { metrics, summary: `policy reward ${metrics.meanReward.toFixed(3)} over ${s.samples} samples` };
    Object.assign(metrics, { meanBest: groups ? s.bestSum / groups : 0, meanWorst: groups ? s.worstSum / groups : 0, pairs: s.pairs ?? 0, ties: s.ties ?? 0, emptySamples: s.emptySamples ?? 0 });
    const empty = s.emptySamples ? `, ${s.emptySamples} empty samples left out` : '';
    return { metrics, summary: `policy reward ${metrics.meanReward.toFixed(3)} (best ${metrics.meanBest.toFixed(3)}, worst ${metrics.meanWorst.toFixed(3)}); ${records} pairs, ${s.ties} ties skipped${empty}` };
  },
};

/** The prompt and the ground-truth response of an SFT record (NeMo input/output, TRL prompt/completion, chat). */
export function promptAndTruth(rec: JsonlRecord, source: string): { prompt: string | ChatMessage[]; truth: string } {
  return atRecord(rec, source, () => {
    const v = rec.value;
    if (typeof v.input === 'string' && typeof v.output === 'string') return { prompt: [{ role: 'user', content: v.input }], truth: v.output };
    if ('prompt' in v && typeof v.completion === 'string') return { prompt: promptOf(v).prompt, truth: v.completion };
    const messages = normalizeConversation(v);
    const last = messages.map((m) => m.role).lastIndexOf('assistant');
    if (last < 1) throw new Error('the conversation has no assistant turn after a prompt to use as the ground truth');
    return { prompt: messages.slice(0, last), truth: messages[last].content };
  });
}

const spinPairs: DataTask = {
  async run(ctx, a, shard) {
    const policy = await ctx.policies.get(ctx.store, str(a, 'policy'));
    const source = str(a, 'data');
    const all = (await readRecords(ctx.store, source)).slice(0, num(a, 'maxRecords'));
    const per = num(a, 'shardPrompts');
    const mine = all.slice(shard * per, (shard + 1) * per).map((rec) => ({ rec, ...promptAndTruth(rec, source) }));
    const kept = mine.map((m) => ({ ...m, ids: promptIdsOf(policy, { value: { prompt: m.prompt }, line: m.rec.line }, source, 1 << 20) })).filter((m) => m.ids !== null);
    const samples = await sampleResponses(policy, kept.map((k) => k.ids!), {
      samplesPerPrompt: 1, maxNewTokens: num(a, 'maxNewTokens'), temperature: num(a, 'temperature'), seed: num(a, 'seed'), round: num(a, 'round'), shard,
    });
    const sums: Record<string, number> = { pairs: 0, identical: 0, generatedChars: 0, truthChars: 0 };
    const records: Record<string, unknown>[] = [];
    samples.forEach((s) => {
      const k = kept[s.prompt];
      sums.generatedChars += s.text.length;
      sums.truthChars += k.truth.length;
      if (s.text === k.truth) {
        sums.identical++;
        return;
      }
      if (s.text.trim() === '') {
        sums.empty = (sums.empty ?? 0) + 1; // DPO refuses an empty plain-text response
        return;
      }
      sums.pairs++;
      records.push({ prompt: k.prompt, chosen: k.truth, rejected: s.text });
    });
    return { records, sums };
  },
  summarize(s, records) {
    const seen = (s.pairs ?? 0) + (s.identical ?? 0) + (s.empty ?? 0);
    const metrics = { pairs: s.pairs ?? 0, identicalToTruth: seen ? s.identical / seen : 0, meanGeneratedChars: seen ? s.generatedChars / seen : 0, emptyGenerations: s.empty ?? 0 };
    const empty = s.empty ? `; ${s.empty} empty generations left out` : '';
    return { metrics, summary: `${records} pairs; ${(metrics.identicalToTruth * 100).toFixed(1)}% of generations equal the ground truth${empty}` };
  },
};

export const DATA_TASKS: Record<DataTaskName, DataTask> = {
  'preference-pairs': preferencePairs, 'spin-pairs': spinPairs, annotate, 'steer-eval': steerEval, 'steerlm2-sample': steerlm2Sample,
  'critique-revise': critiqueRevise, 'judge-pairs': judgePairs,
};
