/**
 * SteerLM 2.0's sampling round (HelpSteer2, Wang et al. 2024, §4.5): for each prompt x and its
 * target attributes a, n responses from the current policy Q′ (steered with a), each scored three
 * times — log P(a|x,y) by the attribute model (algorithms/pipelines/attributes.ts), log P(y|x) by
 * the SFT model on the prompt without the label, log Q′(y|a,x) by the sampler itself on the ids
 * the recipe trains on (steeredResponseIds of the decoded text) — and written as NeMo-Aligner's
 * SteerLM2 records, which the steerlm2 recipe reads.
 */
import { attributeLogProb } from '../../algorithms/pipelines/attributes.js';
import { checkLabelAttributes } from '../../algorithms/data/steerlm.js';
import { promptMessages as steerlm2Messages, steeredPromptIds, steeredResponseIds, steerlm2Line } from '../../algorithms/data/steerlm2.js';
import type { SteerLM2Sample } from '../../algorithms/data/steerlm2.js';
import { atRecord } from '../../algorithms/data/jsonl.js';
import { joinPromptCompletion } from '../../algorithms/data/pair.js';
import { padRows } from '../../algorithms/train/batching.js';
import { noGrad, sum, tidy } from '../../kernels/index.js';
import { renderChat } from '../../models/chat.js';
import type { ChatMessage } from '../../models/chat.js';
import { logprobs } from '../../models/logprobs.js';
import type { CausalLM } from '../../models/causal-lm.js';
import { scoreIds } from '../score.js';
import type { ResidentPolicy } from './policies.js';
import { readRecords, sampleResponses, shardIndices } from './sampling.js';
import { promptRecordMessages } from './steer-tasks.js';
import type { DataTask } from './tasks.js';

const num = (a: Record<string, unknown>, k: string): number => a[k] as number;
const str = (a: Record<string, unknown>, k: string): string => a[k] as string;

/** Σ log-probs of each response after its prompt: [prompt ‖ response] rows, scored on the response. */
async function sequenceLogps(model: CausalLM, rows: readonly { prompt: number[]; response: number[] }[], temperature = 1, micro = 8): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < rows.length; i += micro) {
    const batch = rows.slice(i, i + micro).map((r) => joinPromptCompletion(r.prompt, r.response));
    const sums = tidy(() => noGrad(() => sum(logprobs(model, padRows(batch), temperature), 1))); // [b]
    out.push(...(await sums.data()));
    sums.dispose();
  }
  return out;
}

/** A prompt record: NeMo-Aligner's SteerLM2 prompt part ({system, prompt_turns, label}) or a TRL prompt with a "label". */
function steerPrompt(v: Record<string, unknown>): { messages: ChatMessage[]; label: string } {
  const messages = 'prompt_turns' in v ? steerlm2Messages(v) : promptRecordMessages(v);
  if (typeof v.label !== 'string' || v.label === '') throw new Error('missing key "label": the target attributes, e.g. "quality:4,toxicity:0"');
  return { messages, label: v.label };
}

const nemoTurns = (messages: readonly ChatMessage[]) => messages.filter((m) => m.role !== 'system').map((m) => ({ from: m.role === 'user' ? 'User' as const : 'Assistant' as const, value: m.content }));

export const steerlm2Sample: DataTask = {
  async run(ctx, a, shard) {
    // The attribute model names its attributes (a remote one is only read here, once loaded).
    const judge = await ctx.judges.get(ctx.store, str(a, 'attributeModel'));
    const attributes = judge.labelNames;
    const source = str(a, 'prompts');
    const all = await readRecords(ctx.store, source);
    const idx = shardIndices(all.length, { seed: num(a, 'seed'), round: num(a, 'round'), perRound: num(a, 'promptsPerRound'), perShard: num(a, 'shardPrompts'), shard });
    const prompts = idx.map((i) => atRecord(all[i], source, () => {
      const p = steerPrompt(all[i].value);
      return { ...p, target: checkLabelAttributes(p.label, attributes) };
    }));
    const policy: ResidentPolicy = await ctx.policies.get(ctx.store, str(a, 'policy'));
    const n = num(a, 'samplesPerPrompt');
    const steered = prompts.map((p) => steeredPromptIds(policy.tok, p.messages, p.label));
    // Seeds of the sampling round (seedRound): the same in every round of a pipeline, so consecutive
    // rounds' scores compare the policies on the same draws, not the draws.
    const samples = await sampleResponses(policy, steered, { samplesPerPrompt: n, maxNewTokens: num(a, 'maxNewTokens'), temperature: num(a, 'temperature'), seed: num(a, 'seed'), round: num(a, 'seedRound'), shard });
    ctx.beat({ sampled: samples.length });
    // log Q′(y|a,x): the sampler, at the temperature it sampled with, on the ids the recipe trains on.
    const logQ = await sequenceLogps(policy.model, samples.map((s) => ({ prompt: steered[s.prompt], response: steeredResponseIds(policy.tok, steered[s.prompt], s.text) })), num(a, 'temperature'));
    // log P(y|x): the SFT model, the prompt without the label.
    const sft = await ctx.policies.get(ctx.store, str(a, 'sftModel'));
    const plain = prompts.map((p) => sft.tok.encode(renderChat(sft.tok, p.messages, { addGenerationPrompt: true }), { addSpecialTokens: false }));
    const logPy = await sequenceLogps(sft.model, samples.map((s) => ({ prompt: plain[s.prompt], response: steeredResponseIds(sft.tok, plain[s.prompt], s.text) })));
    // log P(a|x,y): the attribute model reads the conversation, as it was trained.
    const scores = await scoreIds(judge, samples.map((s) => judge.tok.encode(renderChat(judge.tok, [...prompts[s.prompt].messages, { role: 'assistant', content: s.text }]), { addSpecialTokens: false })));
    const opts = { levels: num(a, 'levels'), sigma: num(a, 'sigma') };
    const logPa = samples.map((s, k) => attributeLogProb(scores[k], judge.labelNames, prompts[s.prompt].target, opts));
    ctx.beat({ scored: samples.length });
    const records = prompts.map((p, i) => {
      const mine: SteerLM2Sample[] = samples.flatMap((s, k) => (s.prompt === i ? [{ text: s.text, logPa: logPa[k], logPy: logPy[k], logQ: logQ[k] }] : []));
      const system = p.messages.find((m) => m.role === 'system')?.content ?? '';
      return steerlm2Line(system, nemoTurns(p.messages), p.label, mine);
    });
    const sums = { samples: samples.length, logPaSum: logPa.reduce((x, y) => x + y, 0), logQSum: logQ.reduce((x, y) => x + y, 0), logPySum: logPy.reduce((x, y) => x + y, 0) };
    return { records, sums };
  },
  summarize(s, records) {
    const m = (k: string) => (s.samples ? s[k] / s.samples : 0);
    const metrics = { meanLogPa: m('logPaSum'), meanLogQ: m('logQSum'), meanLogPy: m('logPySum'), samples: s.samples ?? 0 };
    return { metrics, summary: `${records} prompts × ${records ? s.samples / records : 0} samples; mean log P(a|x,y) ${metrics.meanLogPa.toFixed(3)}, log Q′ ${metrics.meanLogQ.toFixed(2)}, log P(y|x) ${metrics.meanLogPy.toFixed(2)}` };
  },
};
