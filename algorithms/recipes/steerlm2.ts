/**
 * SteerLM 2.0: the policy Q_θ(y|a,x), initialised from the SteerLM model Q′ that sampled the data,
 * is trained towards P(y|a,x) ∝ P(a|x,y)·P(y|x) with self-normalised importance weights w′ and the
 * model's own baseline b′ (the loss and its equations: algorithms/losses/steerlm2.ts). One example
 * is one prompt with its n responses; trainer.microBatchSize counts prompts per forward (n
 * sequences each) and trainer.globalBatchSize prompts per step. w′ is computed once, at
 * preparation; b′ needs the whole group, so a group is never split across micro-batches.
 * A run trains one round; sampling the next round with the trained policy is a pipeline's job.
 */
import { z } from 'zod';
import { dispose, mulScalar, noGrad, reshape, sum, tidy } from '../../kernels/index.js';
import type { CausalLM } from '../../models/causal-lm.js';
import { logprobs } from '../../models/logprobs.js';
import { baseSchema } from '../config/common.js';
import { checkGroupSize, parseSteerLM2, responseRows, STEERLM2_FIELDS, tokenizeSteerLM2 } from '../data/steerlm2.js';
import type { SteerLM2Example } from '../data/steerlm2.js';
import { ConfigError } from '../errors.js';
import { groupStats, meanStats, steerlm2Loss } from '../losses/steerlm2.js';
import type { SteerLM2Stats } from '../losses/steerlm2.js';
import { padRows } from '../train/batching.js';
import { trainingMicroBatches } from '../train/data-parallel.js';
import type { DataParallel } from '../train/data-parallel.js';
import { asCausalLM } from './model.js';
import { chunksOf } from './prepare.js';
import type { OfflineRecipe } from './types.js';

export const steerlm2Section = z.object({
  chatTemplate: z.string().optional().describe(
    "Chat template override (Jinja); default the tokenizer's own, else ChatML. It must be the template the responses were sampled and scored with (algorithms/data/steerlm2.ts: steeredPromptIds, steeredResponseIds).",
  ),
  numResponses: z.number().int().min(2).optional().describe(
    'n, the responses every record holds (NeMo-Aligner num_responses); when unset, the first record\'s count. A record with another count is an error naming its line.',
  ),
}).strict();

export const steerlm2ConfigSchema = baseSchema.extend({
  steerlm2: steerlm2Section.default({}).describe('SteerLM 2.0 options.'),
}).strict();

export type SteerLM2Config = z.infer<typeof steerlm2ConfigSchema>;

/** Loss (this micro-batch's share of the batch mean) and each group's statistics; backward when training. */
async function steerlm2Micro(model: CausalLM, micro: readonly SteerLM2Example[], share: number, train: boolean) {
  const m = micro.length, n = micro[0].lengths.length;
  if (micro.some((e) => e.lengths.length !== n)) throw new Error(`steerlm2: a micro-batch mixes groups of ${n} and ${micro.find((e) => e.lengths.length !== n)!.lengths.length} responses`);
  const rows = micro.flatMap(responseRows); // group-major: row g·n + i is response i of group g
  const build = () => {
    const lp = logprobs(model, padRows(rows)); // [m·n, T−1], 0 off the responses
    const logQ = reshape(sum(lp, 1), [m, n]); // log Q_θ(y_i|a,x) [m, n]
    const part = mulScalar(steerlm2Loss(logQ, micro).loss, share); // []
    if (train) part.backward();
    return { part: part.detach(), logQ: logQ.detach() };
  };
  const out = tidy(() => (train ? build() : noGrad(build)));
  const [loss, values] = [await out.part.item(), await out.logQ.data()];
  dispose(out);
  return { loss, stats: micro.map((e, g) => groupStats(values.slice(g * n, (g + 1) * n), e)) };
}

/** The loss of `batch` (mean over its groups) and every group's statistics. */
async function steerlm2Pass(model: CausalLM, batch: readonly SteerLM2Example[], microBatch: number, train: boolean, dp: DataParallel | null = null) {
  let loss = 0;
  const stats: SteerLM2Stats[] = [];
  for (const micro of trainingMicroBatches(batch, microBatch, dp)) {
    const r = await steerlm2Micro(model, micro, micro.length / batch.length, train);
    loss += r.loss;
    stats.push(...r.stats);
  }
  return { loss, stats };
}

const tokensOf = (e: SteerLM2Example) => e.lengths.length * e.prompt.length + e.responses.length;

export const steerlm2: OfflineRecipe<SteerLM2Config, SteerLM2Example> = {
  name: 'steerlm2',
  kind: 'offline',
  summary: 'SteerLM 2.0: attribute-conditioned policy trained towards P(y|a,x) with importance weights over n sampled responses per prompt',
  paper: 'Wang et al. 2024, HelpSteer2: Open-source dataset for training top-performing reward models, §4.5, eqs. 6–12 — https://arxiv.org/abs/2406.08673',
  schema: steerlm2ConfigSchema,
  check(c) {
    if (c.data.overlong === 'truncate') {
      throw new ConfigError('data.overlong: "truncate" would cut responses whose weights and log Q′ were computed whole; use "error" or "drop" for steerlm2');
    }
  },
  example: {
    model: 'models/fixtures/tiny-llama',
    data: { train: 'data/demo/steerlm2.jsonl', validationFraction: 0.25 },
    // A small lr: a step moves a whole response's log-prob (~30 tokens), and b′ must settle at w′, not overshoot it.
    trainer: { maxSteps: 24, globalBatchSize: 8, microBatchSize: 2, lr: 3e-5, minLr: 3e-6, warmupSteps: 0, checkpointEvery: 8, valEvery: 8, maxLength: 160 },
  },
  roles: {
    policy: { description: 'Q_θ, the SteerLM model being aligned: initialised from Q′, the model that sampled and scored the responses', configField: 'model', trains: true },
  },
  metrics: {
    distance: { description: 'KL(w′ ‖ b′) per prompt, mean over prompts (eq. 12; NeMo-Aligner\'s "distance"): 0 when the policy\'s relative likelihoods of the responses match the importance weights' },
    weightEntropy: { description: 'entropy of w′ per prompt (nats; log n when uniform): how peaked the targets are, a property of the data' },
    meanLogQ: { description: 'mean log Q_θ per response token (nats)' },
    logRatio: { description: 'mean log Q_θ(y) − log Q′(y) per response: ≈ 0 before the first step when the data\'s log Q′ came from this model on these token ids' },
  },
  headline: () => ({ metric: 'distance', better: 'lower' }),
  dataFormats: [
    'NeMo-Aligner SteerLM 2.0 {"system", "prompt_turns": [{"from", "value"}] (odd, ending with User), "label", "responses": [{"from": "Assistant", "value", "log(P(a|x,y))", "log(P(y|x))", "log(Q(y|a,x))"}] (n each)}',
  ],
  fields: () => STEERLM2_FIELDS,
  model: () => ({ kind: 'causal-lm' }),
  async *prepare(records, ctx) {
    const c = ctx.config;
    const opts = { maxLength: c.trainer.maxLength, overlong: c.data.overlong === 'drop' ? 'drop' as const : 'error' as const, template: c.steerlm2.chatTemplate };
    let expected = c.steerlm2.numResponses === undefined ? null : { n: c.steerlm2.numResponses, from: 'steerlm2.numResponses' };
    for await (const rec of records) {
      const r = parseSteerLM2(rec, ctx.source);
      expected = checkGroupSize(r, rec, ctx.source, expected);
      const example = tokenizeSteerLM2(ctx.tok, r, rec, ctx.source, opts);
      yield example ? { example } : { dropped: `line ${rec.line}: a response is longer than trainer.maxLength with its prompt` };
    }
  },
  tokensOf,

  async step(ctx, batch) {
    const r = await steerlm2Pass(asCausalLM(ctx.model), batch, ctx.trainer.microBatchSize, true, ctx.dataParallel);
    return { loss: r.loss, tokens: batch.reduce((s, e) => s + tokensOf(e), 0), metrics: { ...meanStats(r.stats) } };
  },

  async evaluate(ctx, data) {
    let loss = 0;
    const stats: SteerLM2Stats[] = [];
    for await (const { items } of chunksOf(data)) {
      const r = await steerlm2Pass(asCausalLM(ctx.model), items, ctx.trainer.microBatchSize, false);
      loss += r.loss * (items.length / data.count);
      stats.push(...r.stats);
    }
    return { loss, metrics: { ...meanStats(stats) } };
  },
};
