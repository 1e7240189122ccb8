/**
 * One optimizer step of any offline recipe: the batch of step k (a function of seed and k only,
 * see batching.ts), the recipe's forward/backward, a finite-loss check, global-norm clipping,
 * the cosine schedule and AdamW. Pure compute: activities and tests call it alike.
 */
import { clipGradNorm } from '../../kernels/index.js';
import type { BaseConfig } from '../config/common.js';
import { ConfigError, NonFiniteLossError } from '../errors.js';
import type { ExampleSource, Metrics, OfflineRecipe, StepContext } from '../recipes/types.js';
import { lrAt } from '../schedule.js';
import { batchIndices } from './batching.js';
import { reduceStepOutput } from './data-parallel.js';
import { parallelClipGradNorm } from '../../kernels/distributed/index.js';
import type { ProcessGroup } from '../../kernels/distributed/index.js';
import { isTiedCopy } from '../../models/causal-lm.js';
import type { CausalLM, VocabShard } from '../../models/causal-lm.js';
import { tensorParallelSpec } from '../../models/tensor-parallel.js';

export interface StepMetrics {
  /** 1-based: the step this update completes. */
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  metrics: Metrics;
}

/**
 * Finish a step: clip, schedule, update; returns the norm before clipping. Under data parallel
 * the gradients are already summed over the ranks, so every rank clips the same values.
 */
export async function applyUpdate(
  ctx: Pick<StepContext<unknown>, 'opt' | 'trainer' | 'dataParallel' | 'pipeline'> & { model?: StepContext<unknown>['model'] }, step: number,
): Promise<{ gradNorm: number; lr: number }> {
  const t = ctx.trainer;
  const maxNorm = t.maxGradNorm > 0 ? t.maxGradNorm : Infinity;
  const gradNorm = await clipGradients(ctx, maxNorm);
  const opt = ctx.dataParallel?.zero ?? ctx.opt;
  opt.lr = lrAt(step, { lr: t.lr, minLr: t.minLr, warmupSteps: t.warmupSteps, totalSteps: t.maxSteps });
  await opt.update();
  opt.zeroGrad();
  return { gradNorm, lr: opt.lr };
}

/**
 * Global-norm clipping. When the model is split (a tensor-parallel shard, a pipeline stage) the
 * norm is the whole model's: each parameter counted once, summed over the model-parallel groups.
 */
async function clipGradients(ctx: Pick<StepContext<unknown>, 'opt' | 'pipeline'> & { model?: StepContext<unknown>['model'] }, maxNorm: number): Promise<number> {
  const model = ctx.model as CausalLM | undefined;
  const shard = model?.tensorParallel ?? null;
  const pipeline = model?.pipeline ? (ctx.pipeline ?? null) : null;
  if (model && (shard || pipeline)) {
    const names = new Map(model.namedParameters().map(([n, p]) => [p, n]));
    const counted = ctx.opt.params.map((p) => {
      const name = names.get(p) ?? '';
      if (isTiedCopy(model, name)) return false;
      return !shard || shard.tp.rank === 0 || tensorParallelSpec(model.config.family, name) !== null;
    });
    const groups = [shard?.tp.group, pipeline?.group].filter((g): g is ProcessGroup => !!g);
    return parallelClipGradNorm(ctx.opt.params, counted, groups, maxNorm);
  }
  const norm = clipGradNorm(ctx.opt.params, maxNorm);
  const value = await norm.item();
  norm.dispose();
  return value;
}

const tensorParallelOf = (model: unknown): VocabShard | null => (model as { tensorParallel?: VocabShard | null } | undefined)?.tensorParallel ?? null;

export function checkFinite(loss: number, step: number): void {
  if (!Number.isFinite(loss)) {
    throw new NonFiniteLossError(`loss is ${loss} at step ${step + 1}; lower trainer.lr or check the data (the last checkpoint is unaffected)`);
  }
}

/** Optimizer step `step` (0-based) of `recipe` over `data` (and its precomputed inputs). */
export async function optimizerStep<C extends BaseConfig, E, P>(
  recipe: OfflineRecipe<C, E, P>, ctx: StepContext<C>, data: ExampleSource<E>, pre: ExampleSource<P> | null, step: number,
): Promise<StepMetrics> {
  const idx = batchIndices(data.count, ctx.trainer.globalBatchSize, ctx.seed, step);
  const batch = await data.getMany(idx);
  const extra = pre ? await pre.getMany(idx) : null;
  const dp = ctx.dataParallel ?? null;
  if (ctx.pipeline && !recipe.pipelineParallel) throw new ConfigError(`parallel.pp > 1: ${recipe.name} cannot run as pipeline stages yet; it needs parallel.pp: 1`);
  let out: Awaited<ReturnType<typeof recipe.step>>;
  try {
    out = await recipe.step(ctx, batch, extra);
    await tensorParallelOf(ctx.model)?.tp.settle(); // a collective that failed fails the step
    if (dp) {
      await dp.buckets.reduce();
      out = { ...out, ...(await reduceStepOutput(dp, out.loss, out.metrics, recipe.metrics)) };
    }
  } catch (e) {
    await dp?.buckets.abandon(); // no bucket left writing into a gradient
    throw e;
  }
  if (!Number.isFinite(out.loss)) ctx.opt.zeroGrad();
  checkFinite(out.loss, step);
  return { step: step + 1, loss: out.loss, tokens: out.tokens, metrics: out.metrics, ...(await applyUpdate(ctx, step)) };
}

/** An in-memory example source (tests, the plain loop, small precomputed sets). */
export function arraySource<E>(items: readonly E[]): ExampleSource<E> {
  return { count: items.length, getMany: async (idx) => idx.map((i) => items[i]) };
}
