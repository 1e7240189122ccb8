/**
 * Optimizer steps for SFT and DPO on an in-memory model: micro-batches with gradient
 * accumulation (a global batch is split into micro-batches whose losses are weighted so that the
 * sum equals the loss of the whole global batch), global-norm clipping, AdamW, cosine schedule.
 * Pure compute: no Temporal, no storage. Activities and the plain in-process loop both call this.
 */
import { clipGradNorm, mul, mulScalar, noGrad, slice, sum, tensor, tidy } from '../../kernels/index.js';
import type { AdamW, Tensor } from '../../kernels/index.js';
import type { CausalLM } from '../../models/causal-lm.js';
import { logprobs } from '../../models/logprobs.js';
import type { TrainerConfig } from '../config/common.js';
import type { PreferenceExample } from '../data/preference.js';
import type { SftExample } from '../data/sft.js';
import { NonFiniteLossError } from '../errors.js';
import { preferenceLoss } from '../losses/dpo.js';
import type { PreferenceLossOptions, PreferenceMetrics } from '../losses/dpo.js';
import { sftLoss } from '../losses/sft.js';
import { lrAt } from '../schedule.js';
import { batchIndices, microBatches, padRows, trainedTokens } from './batching.js';

export interface StepMetrics {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  /** DPO only. */
  preference?: PreferenceMetrics;
}

export interface TrainContext {
  model: CausalLM;
  opt: AdamW;
  trainer: TrainerConfig;
  seed: number;
}

/** Per-example reference log-probs of the chosen and rejected responses (summed or averaged). */
export interface RefLogps {
  chosen: number;
  rejected: number;
}

/** Finish a step: clip, schedule, update; returns the norm before clipping. */
async function applyUpdate(ctx: TrainContext, step: number): Promise<{ gradNorm: number; lr: number }> {
  const t = ctx.trainer;
  const norm = clipGradNorm(ctx.opt.params, t.maxGradNorm > 0 ? t.maxGradNorm : Infinity);
  const gradNorm = await norm.item();
  norm.dispose();
  ctx.opt.lr = lrAt(step, { lr: t.lr, minLr: t.minLr, warmupSteps: t.warmupSteps, totalSteps: t.maxSteps });
  ctx.opt.update();
  ctx.opt.zeroGrad();
  return { gradNorm, lr: ctx.opt.lr };
}

function checkFinite(loss: number, step: number): void {
  if (!Number.isFinite(loss)) {
    throw new NonFiniteLossError(`loss is ${loss} at step ${step + 1}; lower trainer.lr or check the data (the last checkpoint is unaffected)`);
  }
}

/** One SFT optimizer step at `step` (0-based); the loss is the mean NLL over the global batch's trained tokens. */
export async function sftStep(ctx: TrainContext, data: readonly SftExample[], step: number): Promise<StepMetrics> {
  const t = ctx.trainer;
  const batch = batchIndices(data.length, t.globalBatchSize, ctx.seed, step).map((i) => data[i]);
  const total = batch.reduce((s, r) => s + trainedTokens(r), 0);
  let loss = 0;
  for (const micro of microBatches(batch, t.microBatchSize)) {
    const l = tidy(() => {
      const lp = logprobs(ctx.model, padRows(micro)); // [m, T−1], 0 off the mask
      const part = sftLoss(lp, total); // this micro-batch's share of the global mean
      part.backward();
      return part;
    });
    loss += await l.item();
    l.dispose();
  }
  checkFinite(loss, step);
  return { step: step + 1, loss, tokens: total, ...(await applyUpdate(ctx, step)) };
}

/** Sum (or mean, when averaging) of a row's token log-probs: lp [B, T−1] → [B]. */
function sequenceLogps(lp: Tensor, rows: readonly { lossMask: number[] }[], average: boolean): Tensor {
  const sums = sum(lp, 1); // [B]
  if (!average) return sums;
  return mul(sums, tensor(rows.map((r) => 1 / Math.max(1, trainedTokens(r))), [rows.length], { backend: lp.backend })); // [B]
}

/** log π of every chosen and rejected response under the model, without gradients (reference log-probs). */
export async function preferenceLogps(model: CausalLM, data: readonly PreferenceExample[], average: boolean, microBatch: number): Promise<RefLogps[]> {
  const out: RefLogps[] = [];
  for (const micro of microBatches(data, microBatch)) {
    const rows = [...micro.map((p) => p.chosen), ...micro.map((p) => p.rejected)];
    const t = tidy(() => noGrad(() => sequenceLogps(logprobs(model, padRows(rows)), rows, average)));
    const values = await t.data();
    t.dispose();
    micro.forEach((_, i) => out.push({ chosen: values[i], rejected: values[micro.length + i] }));
  }
  return out;
}

export interface DpoOptions extends PreferenceLossOptions {
  averageLogProbs: boolean;
}

/** Loss, gradient and metrics of one micro-batch of pairs, weighted by its share of the global batch. */
function dpoMicro(ctx: TrainContext, micro: PreferenceExample[], refs: RefLogps[], o: DpoOptions, share: number, train: boolean) {
  return tidy(() => {
    const rows = [...micro.map((p) => p.chosen), ...micro.map((p) => p.rejected)];
    const seq = sequenceLogps(logprobs(ctx.model, padRows(rows)), rows, o.averageLogProbs); // [2m]
    const values = seq.toArraySync();
    const m = micro.length;
    const { loss, metrics } = preferenceLoss(
      {
        policyChosen: slice(seq, 0, 0, m), policyRejected: slice(seq, 0, m, 2 * m),
        refChosen: refs.map((r) => r.chosen), refRejected: refs.map((r) => r.rejected),
        chosenReward: micro.map((p) => p.chosenReward), rejectedReward: micro.map((p) => p.rejectedReward),
      },
      o,
      { chosen: values.slice(0, m), rejected: values.slice(m, 2 * m) },
    );
    const scaled = mulScalar(loss, share); // []
    if (train) scaled.backward();
    return { loss: scaled.itemSync(), metrics };
  });
}

function mergeMetrics(parts: { metrics: PreferenceMetrics; weight: number }[]): PreferenceMetrics {
  const keys: (keyof PreferenceMetrics)[] = ['accuracy', 'chosenReward', 'rejectedReward', 'margin'];
  return Object.fromEntries(keys.map((k) => [k, parts.reduce((s, p) => s + p.metrics[k] * p.weight, 0)])) as unknown as PreferenceMetrics;
}

/** One DPO optimizer step; refs[i] are the reference log-probs of data[i]. */
export async function dpoStep(ctx: TrainContext, data: readonly PreferenceExample[], refs: readonly RefLogps[], o: DpoOptions, step: number): Promise<StepMetrics> {
  const t = ctx.trainer;
  const idx = batchIndices(data.length, t.globalBatchSize, ctx.seed, step);
  let loss = 0;
  const parts: { metrics: PreferenceMetrics; weight: number }[] = [];
  for (const micro of microBatches(idx, t.microBatchSize)) {
    const share = micro.length / idx.length;
    const r = dpoMicro(ctx, micro.map((i) => data[i]), micro.map((i) => refs[i]), o, share, true);
    loss += r.loss;
    parts.push({ metrics: r.metrics, weight: share });
  }
  checkFinite(loss, step);
  const tokens = idx.reduce((s, i) => s + data[i].chosen.ids.length + data[i].rejected.ids.length, 0);
  return { step: step + 1, loss, tokens, preference: mergeMetrics(parts), ...(await applyUpdate(ctx, step)) };
}

/** Mean preference loss and metrics on held-out pairs (no gradients). */
export function dpoEvaluate(ctx: TrainContext, data: readonly PreferenceExample[], refs: readonly RefLogps[], o: DpoOptions): { loss: number; metrics: PreferenceMetrics } {
  let loss = 0;
  const parts: { metrics: PreferenceMetrics; weight: number }[] = [];
  const all = data.map((_, i) => i);
  noGrad(() => {
    for (const micro of microBatches(all, ctx.trainer.microBatchSize)) {
      const share = micro.length / all.length;
      const r = dpoMicro(ctx, micro.map((i) => data[i]), micro.map((i) => refs[i]), o, share, false);
      loss += r.loss;
      parts.push({ metrics: r.metrics, weight: share });
    }
  });
  return { loss, metrics: mergeMetrics(parts) };
}

/** Mean NLL per trained token on held-out examples. */
export async function sftEvaluate(model: CausalLM, data: readonly SftExample[], microBatch: number): Promise<number> {
  const total = data.reduce((s, r) => s + trainedTokens(r), 0);
  let loss = 0;
  for (const micro of microBatches(data, microBatch)) {
    const l = tidy(() => noGrad(() => sftLoss(logprobs(model, padRows(micro)), total)));
    loss += await l.item();
    l.dispose();
  }
  return loss;
}
