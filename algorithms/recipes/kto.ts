/**
 * KTO: Kahneman-Tversky optimisation on unpaired desirable/undesirable completions (Ethayarajh et
 * al. 2024, eq. 8; NeMo-Aligner megatron_gpt_kto_model.py; TRL KTOTrainer). The reference point
 * z₀ is the policy/reference KL estimated on mismatched (prompt, completion) pairs: as TRL builds
 * its KL dataset, example i is paired with the completion of the example before it, fixed at
 * preparation. z₀ is taken over the whole global batch, so any micro-batch size gives the same
 * step. Reference log-probs of both are precomputed once from the initial policy.
 */
import { z } from 'zod';
import { dispose, mulScalar, noGrad, tidy } from '../../kernels/index.js';
import type { Tensor } from '../../kernels/index.js';
import type { CausalLM } from '../../models/causal-lm.js';
import { logprobs } from '../../models/logprobs.js';
import { baseSchema } from '../config/common.js';
import { tokenizeKto } from '../data/kto.js';
import { ktoLoss } from '../losses/kto.js';
import { microBatches, padRows } from '../train/batching.js';
import { sequenceLogps } from './dpo.js';
import { trainingMicroBatches } from '../train/data-parallel.js';
import type { DataParallel } from '../train/data-parallel.js';
import { asCausalLM } from './model.js';
import { chunksOf } from './prepare.js';
import type { Metrics, OfflineRecipe, StepContext, StepOutput } from './types.js';

export const ktoSection = z.object({
  beta: z.number().positive().default(0.2).describe('β, the strength of the KL regulariser (NeMo-Aligner gpt_kto.yaml 0.2; TRL 0.1). Ethayarajh et al. 2024, eq. 8.'),
  desirableWeight: z.number().positive().default(1).describe('λ_D, the weight of desirable examples (raise it when they are rarer).'),
  undesirableWeight: z.number().positive().default(1).describe('λ_U, the weight of undesirable examples.'),
}).strict();

export const ktoConfigSchema = baseSchema.extend({
  kto: ktoSection.default(ktoSection.parse({})).describe('KTO options.'),
}).strict();

export type KtoConfig = z.infer<typeof ktoConfigSchema>;

export interface KtoExample {
  prompt: number[];
  completion: number[];
  /** The completion of another example: the mismatched pair that estimates the KL term. */
  klCompletion: number[];
  /** 1 desirable, 0 undesirable. */
  desirable: number;
}

export interface KtoRef {
  ref: number;
  refKl: number;
}

const join = (prompt: readonly number[], completion: readonly number[]) => ({
  ids: [...prompt, ...completion], lossMask: [...prompt.map(() => 0), ...completion.map(() => 1)],
});

type Rows = readonly { ids: number[]; lossMask: number[] }[];

/** Enqueues the no-grad forward of every micro-batch now (with LoRA: inside `asBase`), to be read later. */
const enqueueLogps = (model: CausalLM, rows: Rows, microBatch: number): Tensor[] =>
  microBatches(rows, microBatch).map((micro) => tidy(() => noGrad(() => sequenceLogps(logprobs(model, padRows(micro)), micro, false)))); // [m] each

async function readAll(parts: readonly Tensor[]): Promise<number[]> {
  const out: number[] = [];
  for (const t of parts) {
    out.push(...(await t.data()));
    t.dispose();
  }
  return out;
}

/** Summed log-probs of the completion rows, no gradient: [n] on the host. */
async function completionLogps(model: CausalLM, rows: Rows, microBatch: number): Promise<number[]> {
  const out: number[] = [];
  for (const micro of microBatches(rows, microBatch)) out.push(...(await readAll(enqueueLogps(model, micro, microBatch))));
  return out;
}

/** Reference log-probs of a batch: precomputed, or (LoRA) the model with its adapters off. */
async function referenceOf(ctx: StepContext<KtoConfig>, batch: readonly KtoExample[], pre: readonly KtoRef[] | null): Promise<readonly KtoRef[]> {
  if (pre) return pre;
  const lora = ctx.lora;
  if (!lora) throw new Error('kto: no reference log-probs were precomputed and the run has no LoRA adapters to turn off');
  const model = asCausalLM(ctx.model), mb = ctx.trainer.microBatchSize;
  const [own, mismatched] = lora.asBase(() => [
    enqueueLogps(model, batch.map((e) => join(e.prompt, e.completion)), mb),
    enqueueLogps(model, batch.map((e) => join(e.prompt, e.klCompletion)), mb),
  ]);
  const [ref, refKl] = [await readAll(own), await readAll(mismatched)];
  return ref.map((r, i) => ({ ref: r, refKl: refKl[i] }));
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** Metrics from host values: z₀ and the mean implicit rewards β·r of each class. */
function ktoMetrics(r: readonly number[], desirable: readonly number[], z0: number, beta: number): Metrics {
  const d = r.filter((_, i) => desirable[i]), u = r.filter((_, i) => !desirable[i]);
  const dr = beta * mean(d), ur = beta * mean(u);
  return { kl: z0, desirableReward: dr, undesirableReward: ur, margin: dr - ur };
}

async function ktoPass(model: CausalLM, batch: readonly KtoExample[], refs: readonly KtoRef[], c: KtoConfig, train: boolean, dp: DataParallel | null = null): Promise<StepOutput> {
  const mb = c.trainer.microBatchSize;
  const policyKl = await completionLogps(model, batch.map((e) => join(e.prompt, e.klCompletion)), mb);
  const refKl = refs.map((x) => x.refKl);
  const rewards: number[] = [], desirable: (typeof batch)[number]['desirable'][] = [];
  let loss = 0, z0 = 0;
  const idx = batch.map((_, i) => i);
  for (const micro of trainingMicroBatches(idx, mb, dp)) {
    const rows = micro.map((i) => join(batch[i].prompt, batch[i].completion));
    const share = micro.length / batch.length;
    const build = () => {
      const seq = sequenceLogps(logprobs(model, padRows(rows)), rows, false); // [m]
      const { loss: l, metrics } = ktoLoss(
        { policy: seq, ref: micro.map((i) => refs[i].ref), labels: micro.map((i) => batch[i].desirable === 1), policyKl, refKl },
        { beta: c.kto.beta, desirableWeight: c.kto.desirableWeight, undesirableWeight: c.kto.undesirableWeight },
        new Array<number>(micro.length).fill(0), // rewards are computed below, from the values read back
      );
      z0 = metrics.kl; // from the host-side KL pairs, not from the placeholder values
      const part = mulScalar(l, share); // []
      if (train) part.backward();
      return { part: part.detach(), seq: seq.detach() };
    };
    const out = tidy(() => (train ? build() : noGrad(build)));
    loss += await out.part.item();
    const values = await out.seq.data();
    dispose(out);
    micro.forEach((i, k) => {
      rewards.push(values[k] - refs[i].ref);
      desirable.push(batch[i].desirable); // this rank's examples only, under data parallel
    });
  }
  const tokens = batch.reduce((s, e) => s + e.prompt.length + e.completion.length, 0);
  return { loss, tokens, metrics: ktoMetrics(rewards, desirable, z0, c.kto.beta) };
}

export const kto: OfflineRecipe<KtoConfig, KtoExample, KtoRef> = {
  name: 'kto',
  kind: 'offline',
  summary: 'KTO: unpaired desirable/undesirable completions, reference point from mismatched pairs',
  paper: 'Ethayarajh et al. 2024, KTO: Model Alignment as Prospect Theoretic Optimization, eq. 8 — https://arxiv.org/abs/2402.01306',
  schema: ktoConfigSchema,
  example: {
    model: 'models/fixtures/tiny-llama',
    data: { train: 'data/demo/kto.jsonl', validationFraction: 0.25 },
    kto: { beta: 0.2 },
    trainer: { maxSteps: 24, globalBatchSize: 8, microBatchSize: 8, lr: 2e-3, minLr: 2e-4, warmupSteps: 0, checkpointEvery: 8, valEvery: 8, maxLength: 64 },
  },
  roles: {
    policy: { description: 'the model being aligned', configField: 'model', trains: true },
    reference: { description: 'the initial policy; its log-probs are precomputed once', configField: 'model', trains: false },
  },
  metrics: {
    kl: { description: 'z₀: the policy/reference KL estimated on mismatched pairs (clamped at 0)' },
    desirableReward: { description: 'mean implicit reward β·(log π − log π_ref) of the desirable completions' },
    undesirableReward: { description: 'the same, of the undesirable completions' },
    margin: { description: 'desirableReward − undesirableReward' },
  },
  headline: () => ({ metric: 'margin', better: 'higher' }),
  dataFormats: [
    'TRL unpaired preference {"prompt", "completion", "label": true|false}, strings or chat messages',
    'NeMo-Aligner {"prompt", "response", "preference": "chosen"|"rejected"}',
  ],
  fields: () => ({ prompt: 'u32[]', completion: 'u32[]', klCompletion: 'u32[]', desirable: 'i32' }),
  model: () => ({ kind: 'causal-lm' }),
  async *prepare(records, ctx) {
    const maxLength = ctx.config.trainer.maxLength;
    const limits = { maxLength, overlong: ctx.config.data.overlong, onTruncate: ctx.onTruncate };
    let first: KtoExample | null = null, prev: KtoExample | null = null;
    const kl = (e: KtoExample, other: KtoExample) => ({ ...e, klCompletion: other.completion.slice(0, Math.max(1, maxLength - e.prompt.length)) });
    for await (const rec of records) {
      const t = tokenizeKto(ctx.tok, rec, ctx.source, limits);
      if (!t) {
        yield { dropped: `line ${rec.line}: longer than trainer.maxLength` };
        continue;
      }
      const e: KtoExample = { prompt: t.prompt, completion: t.completion, klCompletion: [], desirable: t.desirable ? 1 : 0 };
      if (prev) yield { example: kl(e, prev) };
      else first = e;
      prev = e;
    }
    if (first && prev) yield { example: kl(first, prev) };
  },
  tokensOf: (e) => e.prompt.length + e.completion.length,
  precompute: {
    name: 'reference-logps',
    description: 'log-probs of every completion and of its mismatched KL pair under the initial policy',
    role: 'reference',
    needed: (c) => !c.lora,
    modelUri: (c) => c.model,
    fields: { ref: 'f64', refKl: 'f64' },
    async compute(model, examples, c) {
      const m = asCausalLM(model), mb = c.trainer.microBatchSize;
      const ref = await completionLogps(m, examples.map((e) => join(e.prompt, e.completion)), mb);
      const refKl = await completionLogps(m, examples.map((e) => join(e.prompt, e.klCompletion)), mb);
      return ref.map((r, i) => ({ ref: r, refKl: refKl[i] }));
    },
  },

  step: async (ctx, batch, pre) => ktoPass(asCausalLM(ctx.model), batch, await referenceOf(ctx, batch, pre), ctx.config, true, ctx.dataParallel),

  async evaluate(ctx, data, pre) {
    const all: KtoExample[] = [], refs: KtoRef[] = [];
    for await (const { from, items } of chunksOf(data)) {
      all.push(...items);
      refs.push(...(await referenceOf(ctx, items, pre ? await pre.getMany(items.map((_, i) => from + i)) : null)));
    }
    const r = await ktoPass(asCausalLM(ctx.model), all, refs, ctx.config, false);
    return { loss: r.loss, metrics: r.metrics };
  },
};
