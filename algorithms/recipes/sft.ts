/**
 * SFT: supervised fine-tuning, the masked NLL of the response tokens (Ouyang et al. 2022, §3.5;
 * NeMo-Aligner gpt_sft.yaml). The loss of a step is the mean NLL over the global batch's trained
 * tokens, accumulated over micro-batches so that any micro-batch size gives the same step.
 */
import { z } from 'zod';
import { noGrad, tidy } from '../../kernels/index.js';
import type { CausalLM } from '../../models/causal-lm.js';
import { logprobs } from '../../models/logprobs.js';
import { baseSchema } from '../config/common.js';
import { tokenizeSft } from '../data/sft.js';
import type { SftExample } from '../data/sft.js';
import { sftLoss } from '../losses/sft.js';
import { microBatches, padRows, trainedTokens } from '../train/batching.js';
import { shardOf, trainingMicroBatches } from '../train/data-parallel.js';
import { pipelineForwardSum, pipelineLmStep } from '../train/pipeline.js';
import type { PipelineParallel } from '../train/pipeline.js';
import { asCausalLM } from './model.js';
import { chunksOf, mapRecords } from './prepare.js';
import type { ExampleSource, OfflineRecipe } from './types.js';

export const sftSection = z.object({
  chatTemplate: z.string().optional().describe("Chat template override (Jinja); default the tokenizer's own, else ChatML."),
}).strict();

export const sftConfigSchema = baseSchema.extend({
  sft: sftSection.default({}).describe('SFT options.'),
}).strict();

export type SftConfig = z.infer<typeof sftConfigSchema>;

export const SFT_FIELDS = { ids: 'u32[]', lossMask: 'u8[]' } as const;

/** Summed NLL of the trained tokens of `data` and their count, no gradients. */
async function nllSum(model: CausalLM, data: readonly SftExample[], microBatch: number): Promise<{ nll: number; tokens: number }> {
  let nll = 0;
  for (const micro of microBatches(data, microBatch)) {
    const l = tidy(() => noGrad(() => sftLoss(logprobs(model, padRows(micro)), 1))); // []
    nll += await l.item();
    l.dispose();
  }
  return { nll, tokens: data.reduce((s, r) => s + trainedTokens(r), 0) };
}

/** Mean NLL per trained token of `data`, no gradients. */
export async function sftEvaluate(model: CausalLM, data: readonly SftExample[] | ExampleSource<SftExample>, microBatch: number): Promise<number> {
  let nll = 0, tokens = 0;
  const chunks = Array.isArray(data) ? [{ items: data as SftExample[] }] : chunksOf(data as ExampleSource<SftExample>);
  for await (const { items } of chunks) {
    const r = await nllSum(model, items, microBatch);
    nll += r.nll;
    tokens += r.tokens;
  }
  return nll / Math.max(1, tokens);
}

/** sftEvaluate through the pipeline's stages: every stage takes part, the last one scores. */
async function pipelineEvaluate(model: CausalLM, pp: PipelineParallel, data: ExampleSource<SftExample>, microBatch: number): Promise<number> {
  let nll = 0, tokens = 0;
  for await (const { items } of chunksOf(data)) {
    const micros = microBatches(items, microBatch).map((m) => padRows(m));
    nll += await pipelineForwardSum(model, pp, micros, (lp) => sftLoss(lp, 1)); // summed NLL of the trained tokens
    tokens += items.reduce((s, r) => s + trainedTokens(r), 0);
  }
  return nll / Math.max(1, tokens);
}

export const sft: OfflineRecipe<SftConfig, SftExample> = {
  name: 'sft',
  kind: 'offline',
  summary: 'supervised fine-tuning: masked NLL on the assistant tokens',
  paper: 'Ouyang et al. 2022, Training language models to follow instructions (InstructGPT), §3.5 — https://arxiv.org/abs/2203.02155',
  schema: sftConfigSchema,
  example: {
    model: 'models/fixtures/tiny-llama',
    data: { train: 'data/demo/sft.jsonl', validationFraction: 0.2 },
    trainer: { maxSteps: 20, globalBatchSize: 8, microBatchSize: 8, lr: 1e-3, minLr: 1e-4, warmupSteps: 0, checkpointEvery: 10, valEvery: 10, maxLength: 128 },
  },
  roles: { policy: { description: 'the model being fine-tuned', configField: 'model', trains: true } },
  metrics: {},
  headline: () => ({ metric: 'loss', better: 'lower' }),
  dataFormats: [
    'NeMo-Aligner prompt/response {"input", "output"}',
    'NeMo-Aligner chat {"system", "conversations": [{"from", "value"}], "mask"} (also the Llama 3 header-token spelling)',
    'TRL conversational {"messages": [{"role", "content"}]}',
    'TRL prompt-completion {"prompt", "completion"}, strings or messages',
  ],
  fields: () => SFT_FIELDS,
  model: () => ({ kind: 'causal-lm' }),
  pipelineParallel: true,
  prepare: (records, ctx) => mapRecords(records, (rec) => tokenizeSft(ctx.tok, rec, ctx.source, {
    maxLength: ctx.config.trainer.maxLength, template: ctx.config.sft.chatTemplate, overlong: ctx.config.data.overlong, onTruncate: ctx.onTruncate,
  })),
  tokensOf: (e) => trainedTokens(e),

  async step(ctx, batch) {
    const model = asCausalLM(ctx.model);
    const total = batch.reduce((s, r) => s + trainedTokens(r), 0);
    if (ctx.pipeline) {
      // The whole share goes through the 1F1B schedule; data-parallel buckets are sent after it.
      const mine = ctx.dataParallel ? shardOf(batch, ctx.dataParallel.group.rank, ctx.dataParallel.group.world) : batch;
      const micros = microBatches(mine, ctx.trainer.microBatchSize).map((m) => padRows(m));
      return { loss: await pipelineLmStep(model, ctx.pipeline, micros, (lp) => sftLoss(lp, total)), tokens: total, metrics: {} };
    }
    let loss = 0;
    for (const micro of trainingMicroBatches(batch, ctx.trainer.microBatchSize, ctx.dataParallel)) {
      const l = tidy(() => {
        const lp = logprobs(model, padRows(micro)); // [m, T−1], 0 off the mask
        const part = sftLoss(lp, total); // this micro-batch's share of the global mean
        part.backward();
        return part;
      });
      loss += await l.item();
      l.dispose();
    }
    return { loss, tokens: total, metrics: {} };
  },

  async evaluate(ctx, data) {
    if (ctx.pipeline) return { loss: await pipelineEvaluate(asCausalLM(ctx.model), ctx.pipeline, data, ctx.trainer.microBatchSize), metrics: {} };
    return { loss: await sftEvaluate(asCausalLM(ctx.model), data, ctx.trainer.microBatchSize), metrics: {} };
  },
};
