/**
 * SFT with knowledge distillation from a teacher's top-K logits (Hinton et al. 2015; NeMo-Aligner
 * megatron_gpt_knowledge_distillation.py). A durable precompute step runs the teacher over the
 * dataset once and stores, for every trained token, its K largest logits and their ids (sorted
 * descending). The loss renormalises teacher and student over those K ids and takes the forward
 * KL (default) or the reverse KL (algorithms/losses/kd.ts), per token kdWeight·KD + sftWeight·CE,
 * averaged over the trained tokens.
 */
import { z } from 'zod';
import { add, dispose, embedding, mulScalar, neg, noGrad, reshape, slice, sum, tensor, tidy, tokenLogprobs } from '../../kernels/index.js';
import type { Tensor } from '../../kernels/index.js';
import type { CausalLM } from '../../models/causal-lm.js';
import { baseSchema } from '../config/common.js';
import { ConfigError } from '../errors.js';
import { tokenizeSft } from '../data/sft.js';
import type { SftExample } from '../data/sft.js';
import { DISTILLATION_KINDS, teacherTopK, topKDistillationLoss } from '../losses/kd.js';
import type { DistillationKind } from '../losses/kd.js';
import { microBatches, padRows, trainedTokens } from '../train/batching.js';
import { trainingMicroBatches } from '../train/data-parallel.js';
import type { DataParallel } from '../train/data-parallel.js';
import { asCausalLM } from './model.js';
import { chunksOf, mapRecords } from './prepare.js';
import { SFT_FIELDS } from './sft.js';
import type { OfflineRecipe, StepOutput } from './types.js';

export const kdSection = z.object({
  teacher: z.string().min(1).describe('The teacher: a Hugging Face model folder (local path or s3:// URI) with the same tokenizer as the student.'),
  topK: z.number().int().positive().default(100).describe("Teacher logits kept per token (NeMo-Aligner compute_topk_logits.py top_k)."),
  loss: z.enum(DISTILLATION_KINDS as [DistillationKind, ...DistillationKind[]]).default('fwd_kl').describe(
    'fwd_kl Σ p(log p − log q) (Hinton et al. 2015) or bwd_kl Σ q(log q − log p) (reverse KL, Gu et al. 2024 MiniLLM), over the K ids.',
  ),
  kdWeight: z.number().nonnegative().default(1).describe('Weight of the distillation term (kd_loss_weight).'),
  sftWeight: z.number().nonnegative().default(0).describe('Weight of the cross-entropy on the data tokens (sft_loss_weight).'),
  teacherScale: z.number().positive().default(1).describe('Multiplier of the teacher logits before the softmax (target_logits_scale).'),
  studentScale: z.number().positive().default(1).describe('Multiplier of the student logits before the softmax (logits_scale).'),
  chatTemplate: z.string().optional().describe("Chat template override (Jinja); default the tokenizer's own, else ChatML."),
}).strict();

export const kdConfigSchema = baseSchema.extend({
  kd: kdSection.describe('Knowledge-distillation options.'),
}).strict();

export type KdConfig = z.infer<typeof kdConfigSchema>;

/** The teacher's top-K over one example's trained tokens: ids and logits [n·K] each, n = trained tokens. */
export interface TeacherTopK {
  ids: number[];
  logits: number[];
}

/** Flat row (b·T + t − 1) of every trained token t of every row (the logits that predict it), in order. */
function trainedRows(rows: readonly SftExample[], T: number): number[] {
  const out: number[] = [];
  rows.forEach((r, b) => {
    for (let t = 1; t < r.lossMask.length; t++) if (r.lossMask[t]) out.push(b * T + t - 1);
  });
  return out;
}

/** Targets of those rows: the trained tokens themselves. */
const trainedTargets = (rows: readonly SftExample[]): number[] => rows.flatMap((r) => r.ids.filter((_, t) => t > 0 && r.lossMask[t] === 1));

/** Logits read to the host at once while precomputing (a few rows, or a few positions of one row). */
const HOST_LOGITS = 16 << 20;

/** Teacher top-K of every example: rows batched while small, long rows read a few positions at a time. */
async function teacherOutputs(teacher: CausalLM, data: readonly SftExample[], K: number, beat?: () => void): Promise<TeacherTopK[]> {
  const V = teacher.config.vocabSize, T = Math.max(...data.map((r) => r.ids.length));
  const perBatch = Math.max(1, Math.floor(HOST_LOGITS / (T * V)));
  const perRead = Math.max(1, Math.floor(HOST_LOGITS / V)); // positions of one row per host read
  const out: TeacherTopK[] = [];
  for (const micro of microBatches(data, perBatch)) {
    const padded = padRows(micro);
    const Tm = padded.ids[0].length;
    const logits = tidy(() => noGrad(() => teacher.forward(tensor(padded.ids.flat(), [micro.length, Tm], { dtype: 'i32' })))); // [m, Tm, V]
    const tops: TeacherTopK[] = micro.map(() => ({ ids: [], logits: [] }));
    for (let t0 = 0; t0 < Tm - 1; t0 += perRead) {
      const t1 = Math.min(Tm - 1, t0 + perRead);
      const part = slice(logits, 1, t0, t1); // [m, t1 − t0, V]: the logits that predict tokens t0+1 … t1
      const values = await part.data();
      part.dispose();
      micro.forEach((r, b) => {
        for (let t = t0 + 1; t <= t1 && t < r.lossMask.length; t++) {
          if (!r.lossMask[t]) continue;
          const at = (b * (t1 - t0) + (t - 1 - t0)) * V;
          const top = teacherTopK(values.subarray(at, at + V), V, K);
          tops[b].ids.push(...top.ids);
          tops[b].logits.push(...top.logits);
        }
      });
      beat?.();
    }
    logits.dispose();
    out.push(...tops);
  }
  return out;
}

/** Sums over one set of examples: KD and CE summed over trained tokens, weighted into the loss by tokens/total. */
async function kdPass(model: CausalLM, batch: readonly SftExample[], teacher: readonly TeacherTopK[], c: KdConfig, train: boolean, total: number, dp: DataParallel | null = null) {
  let loss = 0, kl = 0, nll = 0;
  const idx = batch.map((_, i) => i);
  for (const micro of trainingMicroBatches(idx, c.trainer.microBatchSize, dp)) {
    const rows = micro.map((i) => batch[i]);
    const n = rows.reduce((s, r) => s + trainedTokens(r), 0);
    if (n === 0) continue;
    const build = () => {
      const padded = padRows(rows);
      const [m, T] = [rows.length, padded.ids[0].length];
      const logits = model.forward(tensor(padded.ids.flat(), [m, T], { dtype: 'i32' })); // [m, T, V]
      const V = logits.shape[2];
      const at = tensor(trainedRows(rows, T), [n], { dtype: 'i32' }); // [n]
      const student = embedding(reshape(logits, [m * T, V]), at); // [n, V]
      const { loss: kd } = topKDistillationLoss(student, micro.flatMap((i) => teacher[i].ids), micro.flatMap((i) => teacher[i].logits), c.kd.topK, {
        kind: c.kd.loss, teacherScale: c.kd.teacherScale, studentScale: c.kd.studentScale,
      }); // [] mean over the n tokens
      const lp = tokenLogprobs(reshape(student, [1, n, V]), tensor(trainedTargets(rows), [1, n], { dtype: 'i32' })); // [1, n]
      const ce = mulScalar(neg(sum(lp)), 1 / n); // [] mean NLL
      let objective: Tensor = mulScalar(kd, c.kd.kdWeight); // []
      if (c.kd.sftWeight > 0) objective = add(objective, mulScalar(ce, c.kd.sftWeight));
      const scaled = mulScalar(objective, n / total); // [] this micro-batch's share
      if (train) scaled.backward();
      return { scaled: scaled.detach(), kd: kd.detach(), ce: ce.detach() };
    };
    const out = tidy(() => (train ? build() : noGrad(build)));
    loss += await out.scaled.item();
    kl += (await out.kd.item()) * n;
    nll += (await out.ce.item()) * n;
    dispose(out);
  }
  return { loss, kl, nll };
}

export const kd: OfflineRecipe<KdConfig, SftExample, TeacherTopK> = {
  name: 'kd',
  kind: 'offline',
  summary: "SFT with knowledge distillation: match a teacher's precomputed top-K logits (forward or reverse KL), plus optional CE",
  paper: 'Hinton et al. 2015, Distilling the Knowledge in a Neural Network — https://arxiv.org/abs/1503.02531',
  schema: kdConfigSchema,
  check(c) {
    if (c.kd.kdWeight === 0 && c.kd.sftWeight === 0) throw new ConfigError('kd.kdWeight and kd.sftWeight are both 0: nothing to train on');
  },
  example: {
    model: 'models/fixtures/tiny-llama',
    data: { train: 'data/demo/sft.jsonl', validationFraction: 0.2 },
    kd: { teacher: 'models/fixtures/tiny-gpt2', topK: 16, loss: 'fwd_kl' },
    trainer: { maxSteps: 20, globalBatchSize: 8, microBatchSize: 8, lr: 1e-3, minLr: 1e-4, warmupSteps: 0, checkpointEvery: 10, valEvery: 10, maxLength: 128 },
  },
  roles: {
    policy: { description: 'the student being trained', configField: 'model', trains: true },
    teacher: { description: 'runs once over the data; its top-K logits are stored', configField: 'kd.teacher', trains: false },
  },
  metrics: {
    teacherKl: { description: 'forward KL(teacher ‖ student) over the top-K ids, mean per trained token (validation; in training only when kd.loss is fwd_kl)', dataParallel: 'sum' },
    kl: { description: 'the configured KD term (fwd or bwd KL), mean per trained token', dataParallel: 'sum' },
    nll: { description: 'cross-entropy of the data tokens, mean per trained token', dataParallel: 'sum' },
  },
  headline: () => ({ metric: 'teacherKl', better: 'lower' }),
  dataFormats: [
    'every SFT format (see sft); NeMo-Aligner synthetic-kd.jsonl rows are accepted and their stored teacher fields ignored (the teacher is run here)',
  ],
  fields: () => SFT_FIELDS,
  model: () => ({ kind: 'causal-lm' }),
  // The teacher's top-K ids index the student's whole vocabulary.
  tensorParallel: false,
  prepare: (records, ctx) => mapRecords(records, (rec) => tokenizeSft(ctx.tok, rec, ctx.source, {
    maxLength: ctx.config.trainer.maxLength, template: ctx.config.kd.chatTemplate, overlong: ctx.config.data.overlong, onTruncate: ctx.onTruncate,
  })),
  tokensOf: (e) => trainedTokens(e),
  precompute: {
    name: 'teacher-topk',
    description: "the teacher's top-K logits and ids at every trained token",
    role: 'teacher',
    modelUri: (c) => c.kd.teacher,
    fields: { ids: 'u32[]', logits: 'f32[]' },
    check(teacher, student, c) {
      const t = asCausalLM(teacher), V = t.config.vocabSize;
      if (V !== student.vocabSize) {
        throw new ConfigError(`kd.teacher: the teacher's vocabulary has ${V} tokens and the student's (model) ${student.vocabSize}; top-K distillation needs the same tokenizer`);
      }
      if (student.sameTokenizer === false) {
        throw new ConfigError(`kd.teacher: the teacher's tokenizer gives other ids than the student's (model) on the same text; top-K distillation needs the same tokenizer`);
      }
      if (c.kd.topK > V) throw new ConfigError(`kd.topK (${c.kd.topK}) exceeds the vocabulary size (${V})`);
      if (t.contextWindow < c.trainer.maxLength) {
        throw new ConfigError(`kd.teacher: the teacher's max_position_embeddings (${t.contextWindow}) is less than trainer.maxLength (${c.trainer.maxLength})`);
      }
    },
    compute: (teacher, examples, c, beat) => teacherOutputs(asCausalLM(teacher), examples, c.kd.topK, beat),
  },

  async step(ctx, batch, pre): Promise<StepOutput> {
    const total = batch.reduce((s, r) => s + trainedTokens(r), 0);
    const r = await kdPass(asCausalLM(ctx.model), batch, pre!, ctx.config, true, Math.max(1, total), ctx.dataParallel);
    const kl = r.kl / Math.max(1, total);
    return { loss: r.loss, tokens: total, metrics: { kl, ...(ctx.config.kd.loss === 'fwd_kl' ? { teacherKl: kl } : {}), nll: r.nll / Math.max(1, total) } };
  },

  async evaluate(ctx, data, pre) {
    const fwd = { ...ctx.config, kd: { ...ctx.config.kd, loss: 'fwd_kl' as const, kdWeight: 1, sftWeight: 0 } };
    let kl = 0, configuredKl = 0, nll = 0, loss = 0, tokens = 0;
    for await (const { from, items } of chunksOf(data)) {
      const teacher = await pre!.getMany(items.map((_, i) => from + i));
      const n = items.reduce((s, r) => s + trainedTokens(r), 0);
      const r = await kdPass(asCausalLM(ctx.model), items, teacher, fwd, false, 1);
      const configured = ctx.config.kd.loss === 'fwd_kl' ? r : await kdPass(asCausalLM(ctx.model), items, teacher, ctx.config, false, 1);
      kl += r.kl;
      configuredKl += configured.kl;
      nll += r.nll;
      loss += configured.loss;
      tokens += n;
    }
    const t = Math.max(1, tokens);
    return { loss: loss / t, metrics: { teacherKl: kl / t, kl: configuredKl / t, nll: nll / t } };
  },
};
