/**
 * Reward models, as NeMo-Aligner trains them (megatron_gpt_reward_model.py and the regression
 * model), on a sequence classifier (the backbone plus `score`, read at the last real token):
 *  - bradley_terry: −log σ(r_c − r_r) over preference pairs, optionally with a margin
 *    (margin_bt) or a margin-scaled loss (scaled_bt); see algorithms/losses/reward.ts;
 *  - regression (SteerLM's attribute model): MSE over N attributes, labels −100 masked.
 * The export is a Hugging Face *ForSequenceClassification folder, and scoreResponses serves it.
 */
import { z } from 'zod';
import { dispose, mulScalar, noGrad, reshape, slice, tensor, tidy } from '../../kernels/index.js';
import { baseSchema } from '../config/common.js';
import { ConfigError } from '../errors.js';
import { recordError } from '../data/jsonl.js';
import type { JsonlRecord } from '../data/jsonl.js';
import { tokenizeRegression, tokenizeRewardPairs } from '../data/reward.js';
import type { RegressionExample, RewardPair } from '../data/reward.js';
import { BRADLEY_TERRY_KINDS, bradleyTerryLoss, REGRESSION_MASK, regressionLoss } from '../losses/reward.js';
import type { BradleyTerryKind } from '../losses/reward.js';
import { asClassifier } from './model.js';
import type { SequenceScoreModel } from '../../models/heads.js';
import { chunksOf } from './prepare.js';
import type { FieldSpec } from './fields.js';
import { trainingMicroBatches } from '../train/data-parallel.js';
import type { DataParallel } from '../train/data-parallel.js';
import type { ExampleSource, Metrics, OfflineRecipe, StepOutput } from './types.js';

export const rmSection = z.object({
  type: z.enum(['bradley_terry', 'regression']).default('bradley_terry').describe(
    'bradley_terry: pairwise −logσ(r_c − r_r) (Ouyang et al. 2022, eq. 1); regression: MSE over attributes (SteerLM, Dong et al. 2023, §3.1).',
  ),
  loss: z.enum(BRADLEY_TERRY_KINDS as [BradleyTerryKind, ...BradleyTerryKind[]]).default('bt').describe(
    "Bradley-Terry variant: bt, margin_bt −logσ(r_c − r_r − m) (Llama 2, Touvron et al. 2023, eq. 2) or scaled_bt m·(−logσ(r_c − r_r)) (HelpSteer2-Preference); margins come from each record's \"margin\".",
  ),
  numAttributes: z.number().int().positive().default(9).describe("regression: attributes per record (the length of each \"label\"); SteerLM's HelpSteer + OASST set has 9."),
  attributes: z.array(z.string().min(1)).optional().describe('regression: attribute names, written to the export as id2label (default LABEL_0…).'),
}).strict();

export const rmConfigSchema = baseSchema.extend({
  rm: rmSection.default(rmSection.parse({})).describe('Reward-model options.'),
}).strict();

export type RmConfig = z.infer<typeof rmConfigSchema>;
export type RmExample = RewardPair | RegressionExample;

/** The classifier's scores for rows of token ids: [B, N] values, read back on the host. */
function scoreRows(model: SequenceScoreModel, rows: readonly number[][]) {
  const T = Math.max(...rows.map((r) => r.length));
  const ids = rows.map((r) => [...r, ...new Array<number>(T - r.length).fill(0)]);
  const mask = rows.map((r) => ids[0].map((_, t) => (t < r.length ? 1 : 0)));
  return model.forward(tensor(ids.flat(), [rows.length, T], { dtype: 'i32' }), mask); // [B, N]
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** Host-side metrics of a set of pair scores (so micro-batches merge exactly). */
function pairMetrics(chosen: number[], rejected: number[]): Metrics {
  const all = [...chosen, ...rejected], mu = mean(all);
  const std = all.length > 1 ? Math.sqrt(all.reduce((s, x) => s + (x - mu) ** 2, 0) / (all.length - 1)) : 0;
  return {
    accuracy: mean(chosen.map((c, i) => (c > rejected[i] ? 1 : 0))),
    chosenReward: mean(chosen), rejectedReward: mean(rejected), rewardStd: std, margin: mean(chosen) - mean(rejected),
  };
}

type BtOutput = StepOutput & { scores: { chosen: number[]; rejected: number[] } };
type RegressionOutput = StepOutput & { counted: number; absSum: number };

async function btPass(model: SequenceScoreModel, batch: readonly RewardPair[], c: RmConfig, microBatch: number, train: boolean, dp: DataParallel | null = null): Promise<BtOutput> {
  let loss = 0;
  const chosen: number[] = [], rejected: number[] = [];
  for (const micro of trainingMicroBatches(batch, microBatch, dp)) {
    const share = micro.length / batch.length, m = micro.length;
    const build = () => {
      const s = reshape(scoreRows(model, [...micro.map((p) => p.chosen), ...micro.map((p) => p.rejected)]), [2 * m]); // [2m]
      const margin = c.rm.loss === 'bt' ? null : micro.map((p) => p.margin);
      const unread = new Array<number>(m).fill(0); // metrics are computed below, from the values read back
      const { loss: l } = bradleyTerryLoss(slice(s, 0, 0, m), slice(s, 0, m, 2 * m), { kind: c.rm.loss, margin }, { chosen: unread, rejected: unread }); // [m], [m] → []
      const part = mulScalar(l, share); // []
      if (train) part.backward();
      return { part: part.detach(), s: s.detach() };
    };
    const out = tidy(() => (train ? build() : noGrad(build)));
    const [l, v] = [await out.part.item(), await out.s.data()];
    dispose(out);
    loss += l;
    chosen.push(...v.slice(0, m));
    rejected.push(...v.slice(m));
  }
  return { loss, tokens: batch.reduce((s, p) => s + p.chosen.length + p.rejected.length, 0), metrics: pairMetrics(chosen, rejected), scores: { chosen, rejected } };
}

async function regressionPass(model: SequenceScoreModel, batch: readonly RegressionExample[], microBatch: number, train: boolean, dp: DataParallel | null = null): Promise<RegressionOutput> {
  const counted = (rows: readonly RegressionExample[]) => rows.reduce((s, r) => s + r.labels.filter((y) => y !== REGRESSION_MASK).length, 0);
  const total = Math.max(1, counted(batch));
  let loss = 0, absSum = 0;
  for (const micro of trainingMicroBatches(batch, microBatch, dp)) {
    const n = counted(micro);
    if (n === 0) continue;
    const labels = micro.map((r) => r.labels);
    const build = () => {
      const pred = scoreRows(model, micro.map((r) => r.ids)); // [m, N]
      const { loss: l } = regressionLoss(pred, labels, new Array<number>(pred.numel).fill(0)); // MAE is computed below, from the values read back
      const part = mulScalar(l, n / total); // []
      if (train) part.backward();
      return { part: part.detach(), pred: pred.detach() };
    };
    const out = tidy(() => (train ? build() : noGrad(build)));
    const [l, v] = [await out.part.item(), await out.pred.data()];
    dispose(out);
    loss += l;
    labels.flat().forEach((y, i) => {
      if (y !== REGRESSION_MASK) absSum += Math.abs(v[i] - y);
    });
  }
  return { loss, tokens: batch.reduce((s, r) => s + r.ids.length, 0), metrics: { mse: loss, mae: absSum / total }, counted: counted(batch), absSum };
}

const isPair = (e: RmExample): e is RewardPair => 'chosen' in e;

/** margin_bt and scaled_bt need a margin on every pair: a missing one would silently train as bt (or on nothing). */
async function* requireMargins(records: AsyncIterable<JsonlRecord>, source: string, loss: string): AsyncIterable<JsonlRecord> {
  for await (const rec of records) {
    const v = rec.value;
    if ('text' in v && !('chosen' in v || 'chosen_response' in v)) {
      throw recordError(rec, source, `rm.loss ${loss} needs a "margin" on every pair, and NeMo-Aligner's alternating {"text"} lines carry none; give preference records with "margin", or use rm.loss bt`);
    }
    if (typeof v.margin !== 'number' || !Number.isFinite(v.margin)) {
      throw recordError(rec, source, `rm.loss ${loss} needs a finite number "margin" on every pair, got ${v.margin === undefined ? 'none' : JSON.stringify(v.margin)}`);
    }
    yield rec;
  }
}

export const rm: OfflineRecipe<RmConfig, RmExample> = {
  name: 'rm',
  kind: 'offline',
  summary: 'reward model: Bradley-Terry on preference pairs (margin variants), or SteerLM multi-attribute regression',
  paper: 'Ouyang et al. 2022, eq. 1 — https://arxiv.org/abs/2203.02155; SteerLM, Dong et al. 2023 — https://arxiv.org/abs/2310.05344',
  schema: rmConfigSchema,
  check(c) {
    if (c.lora) throw new ConfigError('lora: reward models train every weight (backbone and score head); remove the lora section');
    if (c.rm.attributes && c.rm.attributes.length !== c.rm.numAttributes) {
      throw new ConfigError(`rm.attributes names ${c.rm.attributes.length} attributes but rm.numAttributes is ${c.rm.numAttributes}`);
    }
  },
  example: {
    model: 'models/fixtures/tiny-llama',
    data: { train: 'data/demo/rm.jsonl', validationFraction: 0.25 },
    rm: { type: 'bradley_terry', loss: 'bt' },
    trainer: { maxSteps: 30, globalBatchSize: 8, microBatchSize: 8, lr: 2e-3, minLr: 2e-4, warmupSteps: 0, checkpointEvery: 10, valEvery: 10, maxLength: 64 },
  },
  roles: { policy: { description: 'the reward model being trained (backbone + score head)', configField: 'model', trains: true } },
  metrics: {
    accuracy: { description: 'bradley_terry: fraction of pairs scored r_c > r_r' },
    chosenReward: { description: 'bradley_terry: mean score of the chosen responses' },
    rejectedReward: { description: 'bradley_terry: mean score of the rejected responses' },
    rewardStd: { description: 'bradley_terry: standard deviation of all scores' },
    margin: { description: 'bradley_terry: chosenReward − rejectedReward' },
    mse: { description: 'regression: mean squared error over the unmasked attributes', dataParallel: 'sum' },
    mae: { description: 'regression: mean absolute error over the unmasked attributes', dataParallel: 'sum' },
  },
  headline: (c) => (c.rm.type === 'regression' ? { metric: 'mse', better: 'lower' } : { metric: 'accuracy', better: 'higher' }),
  dataFormats: [
    'bradley_terry: every preference format of dpo ({"prompt","chosen","rejected"}, NeMo-Aligner chosen_response/rejected_response, TRL implicit prompt), optional "margin"',
    'bradley_terry: NeMo-Aligner alternating lines {"text": prompt+chosen} / {"text": prompt+rejected}',
    'regression: NeMo-Aligner {"text": "...", "label": [f0, …, fN−1]} with −100 = masked attribute',
  ],
  fields: (c): FieldSpec => (c.rm.type === 'regression' ? { ids: 'u32[]', labels: 'f32[]' } : { chosen: 'u32[]', rejected: 'u32[]', margin: 'f64' }),
  model: (c) => ({ kind: 'classifier', numLabels: c.rm.type === 'regression' ? c.rm.numAttributes : 1, ...(c.rm.attributes ? { labelNames: c.rm.attributes } : {}) }),
  async *prepare(records, ctx) {
    const limits = { maxLength: ctx.config.trainer.maxLength, overlong: ctx.config.data.overlong, onTruncate: ctx.onTruncate };
    if (ctx.config.rm.type === 'regression') {
      for await (const rec of records) {
        const e = tokenizeRegression(ctx.tok, rec, ctx.source, { ...limits, numAttributes: ctx.config.rm.numAttributes });
        yield e ? { example: e } : { dropped: `line ${rec.line}: longer than trainer.maxLength` };
      }
      return;
    }
    const pairs = ctx.config.rm.loss === 'bt' ? records : requireMargins(records, ctx.source, ctx.config.rm.loss);
    for await (const p of tokenizeRewardPairs(ctx.tok, pairs, ctx.source, limits)) {
      yield p;
    }
  },
  minTrainExamples: (c) => c.trainer.globalBatchSize,
  tokensOf: (e) => (isPair(e) ? e.chosen.length + e.rejected.length : e.ids.length),

  async step(ctx, batch) {
    const model = asClassifier(ctx.model);
    return ctx.config.rm.type === 'regression'
      ? await regressionPass(model, batch as RegressionExample[], ctx.trainer.microBatchSize, true, ctx.dataParallel)
      : await btPass(model, batch as RewardPair[], ctx.config, ctx.trainer.microBatchSize, true, ctx.dataParallel);
  },

  async evaluate(ctx, data: ExampleSource<RmExample>) {
    const model = asClassifier(ctx.model), mb = ctx.trainer.microBatchSize;
    if (ctx.config.rm.type === 'regression') {
      let sq = 0, abs = 0, n = 0;
      for await (const { items } of chunksOf(data)) {
        const r = await regressionPass(model, items as RegressionExample[], mb, false);
        sq += r.loss * r.counted;
        abs += r.absSum;
        n += r.counted;
      }
      const mse = sq / Math.max(1, n);
      return { loss: mse, metrics: { mse, mae: abs / Math.max(1, n) } };
    }
    let loss = 0;
    const chosen: number[] = [], rejected: number[] = [];
    for await (const { items } of chunksOf(data)) {
      const r = await btPass(model, items as RewardPair[], ctx.config, mb, false);
      loss += r.loss * (items.length / data.count);
      chosen.push(...r.scores.chosen);
      rejected.push(...r.scores.rejected);
    }
    return { loss, metrics: pairMetrics(chosen, rejected) };
  },
};
