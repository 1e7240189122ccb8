/**
 * The DPO family (dpo, ipo, rpo_sq, rpo_bwd_kl, rpo_fwd_kl, each optionally mixed with SFT) as
 * NeMo-Aligner defines it; the losses and their equations are in algorithms/losses/dpo.ts. The
 * reference log-probs of every chosen and rejected response are computed once, from the initial
 * policy, before training (NeMo-Aligner computes them per batch from a swapped copy; the numbers
 * are the same and a resumed run never recomputes them).
 */
import { z } from 'zod';
import { dispose, mul, mulScalar, noGrad, slice, sum, tensor, tidy } from '../../kernels/index.js';
import type { Tensor } from '../../kernels/index.js';
import type { CausalLM } from '../../models/causal-lm.js';
import { logprobs } from '../../models/logprobs.js';
import { baseSchema } from '../config/common.js';
import { ConfigError } from '../errors.js';
import { tokenizePreference } from '../data/preference.js';
import type { PreferenceExample } from '../data/preference.js';
import { PREFERENCE_LOSSES, preferenceLoss, preferenceMetrics } from '../losses/dpo.js';
import type { PreferenceLoss, PreferenceMetrics } from '../losses/dpo.js';
import { microBatches, padRows, trainedTokens } from '../train/batching.js';
import { trainingMicroBatches } from '../train/data-parallel.js';
import type { DataParallel } from '../train/data-parallel.js';
import { asCausalLM } from './model.js';
import { chunksOf, mapRecords } from './prepare.js';
import type { OfflineRecipe, StepContext } from './types.js';

export const dpoSection = z.object({
  beta: z.number().positive().default(0.2).describe('β, the KL penalty strength (NeMo-Aligner ref_policy_kl_penalty). Rafailov et al. 2023, eq. 7.'),
  loss: z.enum(PREFERENCE_LOSSES as [PreferenceLoss, ...PreferenceLoss[]]).default('dpo').describe(
    'dpo −logσ(βΔ) (Rafailov et al. 2023); ipo (Δ − 1/(2β))² (Azar et al. 2023); rpo_sq, rpo_bwd_kl, rpo_fwd_kl (reward-aware, Nemotron-4 340B report §3.2.3).',
  ),
  sftWeight: z.number().nonnegative().default(0).describe('Weight of an SFT (NLL) term on the chosen responses (NeMo-Aligner sft_loss_weight).'),
  averageLogProbs: z.boolean().default(false).describe('Average token log-probs over the response instead of summing (preference_average_log_probs).'),
  gtRewardScale: z.number().default(1).describe('Scale of the ground-truth reward difference Δr for the RPO losses (chosen_reward − rejected_reward).'),
  referenceModel: z.string().min(1).optional().describe('The reference policy\'s folder (local path or s3:// URI); default `model`. Iterative DPO keeps it at the first round\'s policy π₀ while `model` moves on.'),
}).strict();

export const dpoConfigSchema = baseSchema.extend({
  dpo: dpoSection.default(dpoSection.parse({})).describe('Preference-optimisation options.'),
}).strict();

export type DpoConfig = z.infer<typeof dpoConfigSchema>;
export interface RefLogps {
  chosen: number;
  rejected: number;
}

export const PREFERENCE_FIELDS = {
  'chosen.ids': 'u32[]', 'chosen.lossMask': 'u8[]', 'rejected.ids': 'u32[]', 'rejected.lossMask': 'u8[]', chosenReward: 'f64', rejectedReward: 'f64',
} as const;

/** Sum (or mean, when averaging) of a row's token log-probs: lp [B, T−1] → [B]. */
export function sequenceLogps(lp: Tensor, rows: readonly { lossMask: number[] }[], average: boolean): Tensor {
  const sums = sum(lp, 1); // [B]
  if (!average) return sums;
  return mul(sums, tensor(rows.map((r) => 1 / Math.max(1, trainedTokens(r))), [rows.length], { backend: lp.backend })); // [B]
}

/**
 * Enqueues the no-grad forward of every micro-batch at once and returns their outputs, to be read
 * later: the reference policy of a LoRA run is the model with its adapters off, which must hold
 * while the forwards are built (inside one synchronous `asBase` call), not while they are read.
 */
function enqueueLogps(model: CausalLM, data: readonly PreferenceExample[], average: boolean, microBatch: number): Tensor[] {
  return microBatches(data, microBatch).map((micro) => {
    const rows = [...micro.map((p) => p.chosen), ...micro.map((p) => p.rejected)];
    return tidy(() => noGrad(() => sequenceLogps(logprobs(model, padRows(rows)), rows, average))); // [2m]
  });
}

/** Reads enqueued [2m] outputs (chosen first, then rejected, per micro-batch) and frees them. */
async function readLogps(parts: readonly Tensor[]): Promise<RefLogps[]> {
  const out: RefLogps[] = [];
  for (const t of parts) {
    const values = await t.data();
    t.dispose();
    const m = values.length / 2;
    for (let i = 0; i < m; i++) out.push({ chosen: values[i], rejected: values[m + i] });
  }
  return out;
}

/** Reference log-probs of a batch: precomputed, or (LoRA) the model with its adapters off. */
async function referenceOf(ctx: StepContext<DpoConfig>, batch: readonly PreferenceExample[], pre: readonly RefLogps[] | null): Promise<readonly RefLogps[]> {
  if (pre) return pre;
  const lora = ctx.lora;
  if (!lora) throw new Error('dpo: no reference log-probs were precomputed and the run has no LoRA adapters to turn off');
  return readLogps(lora.asBase(() => enqueueLogps(asCausalLM(ctx.model), batch, ctx.config.dpo.averageLogProbs, ctx.trainer.microBatchSize)));
}

/** log π of every chosen and rejected response under the model, without gradients (reference log-probs). */
export async function preferenceLogps(model: CausalLM, data: readonly PreferenceExample[], average: boolean, microBatch: number): Promise<RefLogps[]> {
  const out: RefLogps[] = [];
  for (const micro of microBatches(data, microBatch)) out.push(...(await readLogps(enqueueLogps(model, micro, average, microBatch))));
  return out;
}

/**
 * Loss and metrics of one micro-batch of pairs, weighted by its share of the batch; backward when
 * training. The values are read after the graph is built and run (awaited, so the worker keeps
 * heartbeating through a long micro-batch).
 */
async function dpoMicro(model: CausalLM, micro: readonly PreferenceExample[], refs: readonly RefLogps[], o: DpoConfig['dpo'], share: number, train: boolean) {
  const m = micro.length;
  const refChosen = refs.map((r) => r.chosen), refRejected = refs.map((r) => r.rejected);
  const build = () => {
    const rows = [...micro.map((p) => p.chosen), ...micro.map((p) => p.rejected)];
    const seq = sequenceLogps(logprobs(model, padRows(rows)), rows, o.averageLogProbs); // [2m]
    const { loss } = preferenceLoss({
      policyChosen: slice(seq, 0, 0, m), policyRejected: slice(seq, 0, m, 2 * m), // [m], [m]
      refChosen, refRejected, chosenReward: micro.map((p) => p.chosenReward), rejectedReward: micro.map((p) => p.rejectedReward),
    }, o);
    const scaled = mulScalar(loss, share); // []
    if (train) scaled.backward();
    return { loss: scaled.detach(), seq: seq.detach() };
  };
  const out = tidy(() => (train ? build() : noGrad(build)));
  const [loss, values] = [await out.loss.item(), await out.seq.data()];
  dispose(out);
  return { loss, metrics: preferenceMetrics({ chosen: values.slice(0, m), rejected: values.slice(m, 2 * m) }, refChosen, refRejected, o.beta) };
}

type Weighted = { metrics: PreferenceMetrics; weight: number };
// Normalised by the weight seen, so a data-parallel rank's metrics are the mean over its share.
const mergeMetrics = (parts: Weighted[]): Record<string, number> => {
  const seen = parts.reduce((s, p) => s + p.weight, 0) || 1;
  return Object.fromEntries((['accuracy', 'chosenReward', 'rejectedReward', 'margin'] as const).map((k) => [k, parts.reduce((s, p) => s + p.metrics[k] * p.weight, 0) / seen]));
};

async function preferencePass(model: CausalLM, batch: readonly PreferenceExample[], refs: readonly RefLogps[], o: DpoConfig['dpo'], microBatch: number, train: boolean, dp: DataParallel | null = null) {
  let loss = 0;
  const parts: Weighted[] = [];
  const idx = batch.map((_, i) => i);
  for (const micro of trainingMicroBatches(idx, microBatch, dp)) {
    const share = micro.length / idx.length;
    const r = await dpoMicro(model, micro.map((i) => batch[i]), micro.map((i) => refs[i]), o, share, train);
    loss += r.loss;
    parts.push({ metrics: r.metrics, weight: share });
  }
  return { loss, metrics: mergeMetrics(parts) };
}

export const dpo: OfflineRecipe<DpoConfig, PreferenceExample, RefLogps> = {
  name: 'dpo',
  kind: 'offline',
  summary: 'direct preference optimisation and its family: DPO, IPO, RPO (sq, bwd_kl, fwd_kl), optionally mixed with SFT',
  paper: 'Rafailov et al. 2023, Direct Preference Optimization, eq. 7 — https://arxiv.org/abs/2305.18290',
  schema: dpoConfigSchema,
  check(c) {
    // With LoRA the reference is the adapters-off model itself; another folder cannot be it.
    if (c.lora && c.dpo.referenceModel) throw new ConfigError('dpo.referenceModel cannot be used with lora: the reference of a LoRA run is its model with the adapters off');
  },
  example: {
    model: 'models/fixtures/tiny-llama',
    data: { train: 'data/demo/dpo.jsonl', validationFraction: 0.25 },
    dpo: { beta: 0.2, loss: 'dpo' },
    trainer: { maxSteps: 24, globalBatchSize: 8, microBatchSize: 4, lr: 2e-3, minLr: 2e-4, warmupSteps: 0, checkpointEvery: 8, valEvery: 8, maxLength: 64 },
  },
  roles: {
    policy: { description: 'the model being aligned', configField: 'model', trains: true },
    reference: { description: 'the initial policy (dpo.referenceModel when set); its log-probs are precomputed once (with lora: the adapters-off model, each step)', configField: 'dpo.referenceModel', trains: false },
  },
  metrics: {
    accuracy: { description: 'fraction of pairs with ρ(chosen) > ρ(rejected)' },
    chosenReward: { description: 'mean implicit reward β·ρ(chosen)' },
    rejectedReward: { description: 'mean implicit reward β·ρ(rejected)' },
    margin: { description: 'chosenReward − rejectedReward' },
  },
  headline: () => ({ metric: 'accuracy', better: 'higher' }),
  dataFormats: [
    'NeMo-Aligner {"prompt", "chosen_response", "rejected_response", "chosen_reward"?, "rejected_reward"?}',
    'TRL {"prompt", "chosen", "rejected"}, strings or chat messages',
    'TRL implicit prompt {"chosen": [messages], "rejected": [messages]}',
  ],
  fields: () => PREFERENCE_FIELDS,
  model: () => ({ kind: 'causal-lm' }),
  prepare: (records, ctx) => mapRecords(records, (rec) => tokenizePreference(ctx.tok, rec, ctx.source, { maxLength: ctx.config.trainer.maxLength, overlong: ctx.config.data.overlong, onTruncate: ctx.onTruncate })),
  minTrainExamples: (c) => c.trainer.globalBatchSize,
  tokensOf: (e) => e.chosen.ids.length + e.rejected.ids.length,
  precompute: {
    name: 'reference-logps',
    description: 'log-probs of every chosen and rejected response under the initial policy',
    role: 'reference',
    needed: (c) => !c.lora,
    modelUri: (c) => c.dpo.referenceModel ?? c.model,
    fields: { chosen: 'f64', rejected: 'f64' },
    compute: (model, examples, c) => preferenceLogps(asCausalLM(model), examples, c.dpo.averageLogProbs, c.trainer.microBatchSize),
  },

  async step(ctx, batch, pre) {
    const r = await preferencePass(asCausalLM(ctx.model), batch, await referenceOf(ctx, batch, pre), ctx.config.dpo, ctx.trainer.microBatchSize, true, ctx.dataParallel);
    return { ...r, tokens: batch.reduce((s, e) => s + e.chosen.ids.length + e.rejected.ids.length, 0) };
  },

  async evaluate(ctx, data, pre) {
    let loss = 0;
    const sums: Record<string, number> = {};
    for await (const { from, items } of chunksOf(data)) {
      const refs = await referenceOf(ctx, items, pre ? await pre.getMany(items.map((_, i) => from + i)) : null);
      const { loss: l, metrics } = await preferencePass(asCausalLM(ctx.model), items, refs, ctx.config.dpo, ctx.trainer.microBatchSize, false);
      const w = items.length / data.count;
      loss += l * w;
      for (const [k, v] of Object.entries(metrics)) sums[k] = (sums[k] ?? 0) + v * w;
    }
    return { loss, metrics: sums };
  },
};
