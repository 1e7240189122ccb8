/**
 * trainOnRollouts: the iteration's optimizer steps on its rollouts, then the checkpoint that
 * commits them with the prompt cursor (the iteration) and the loop state. Mini-batches of
 * trainer.globalBatchSize rollouts in a seeded order per epoch; the loss of each is the recipe's,
 * averaged over the mini-batch's trained tokens, accumulated over micro-batches. The critic (PPO)
 * takes its step on the same mini-batch. Everything it reads is in the ledger, so a crash here
 * retrains from the last checkpoint on whichever worker takes over, without generating or scoring again.
 * Under parallel.actor.dp the actor's worker and its first rollout replicas train as one
 * data-parallel group over shared memory (one host), and rank 0 commits.
 */
import { Context } from '@temporalio/activity';
import { getOnlineRecipe } from '../../algorithms/recipes/index.js';
import type { OnlineConfig } from '../../algorithms/recipes/index.js';
import { asCausalLM, asClassifier } from '../../algorithms/recipes/model.js';
import { sequenceBatch, toGrid } from '../../algorithms/rollouts/grid.js';
import { clippedValueLoss } from '../../algorithms/losses/policy-gradient.js';
import { stepsPerIteration } from '../../algorithms/recipes/online/config.js';
import { microBatches, shuffled } from '../../algorithms/train/batching.js';
import { reduceStepOutput, trainingMicroBatches } from '../../algorithms/train/data-parallel.js';
import type { DataParallel } from '../../algorithms/train/data-parallel.js';
import { GradBuckets, openShmGroup } from '../../kernels/distributed/index.js';
import { applyUpdate, checkFinite } from '../../algorithms/train/runner.js';
import { tidy } from '../../kernels/index.js';
import { logprobs } from '../../models/logprobs.js';
import { writeMetricsChunk } from '../../store/metrics-ledger.js';
import { trackMetrics } from '../tracking/index.js';
import type { StepRow } from '../../store/metrics-ledger.js';
import type { RunStorePort } from '../../store/run-store-port.js';
import { heartbeat, keepAlive } from '../heartbeat.js';
import type { ResidentRuns } from '../train.js';
import type { AdvantageRecord, GeneratedRollout, LogprobRecord, ValueRecord } from './ledger-records.js';
import { commitLoop, criticTrainer, loopFor, residentKey } from './resident.js';
import type { LoopResident } from './resident.js';
import type { OnlineRecipe } from '../../algorithms/recipes/types.js';
import type { TrainingState } from '../training-state.js';
import { readRecords, readRollouts, valueGrid } from './stages.js';
import type { CriticTrainResult, IterationRequest, TrainResult } from './types.js';
import { commitCritic, criticFor, criticRunId } from './critic.js';

/** The epoch's order of the iteration's rollouts: a function of (seed, iteration, epoch) only. */
const order = (n: number, seed: number, iteration: number, epoch: number): number[] => shuffled(n, (seed * 1_000_003) ^ (iteration * 7919 + epoch * 104_729));

interface Inputs {
  rows: GeneratedRollout[];
  lps: LogprobRecord[] | null;
  vals: ValueRecord[] | null;
  advs: AdvantageRecord[];
}

interface StepTotals { loss: number; tokens: number; clipped: number; valueLoss: number; gradNorm: number; lr: number }

/**
 * One optimizer step on a mini-batch. Under data parallel (dp) this rank runs its contiguous share
 * of the mini-batch's micro-batches, the gradients are summed over the ranks in buckets during the
 * last backward, and every rank applies the same update; the loss and clip counts are summed over
 * the ranks in rank order. The denominator is the whole mini-batch's, so the shares add up.
 */
async function miniBatchStep(loop: LoopResident, req: IterationRequest, inp: Inputs, idx: readonly number[], t: StepTotals, dp: DataParallel | null): Promise<void> {
  const config = req.config as unknown as OnlineConfig;
  const recipe = loop.recipe;
  const trained = (i: number) => (inp.advs[i].trains ? inp.rows[i].responseIds.length : 0);
  const denominator = idx.reduce((s, i) => s + trained(i), 0);
  const steps = config.trainer.maxSteps * stepsPerIteration(config, recipe.samplesPerPrompt(config), recipe.epochs(config));
  const actorTrainer = { ...config.trainer, maxSteps: steps };
  const actor = asCausalLM(loop.actor.model);
  const eps = recipe.policyClip?.(config);
  let loss = 0, clipped = 0;
  if (denominator > 0) {
    try {
      for (const micro of trainingMicroBatches(idx, config.trainer.microBatchSize, dp)) {
      const rows = micro.map((i) => inp.rows[i]);
      const sb = sequenceBatch(rows);
      const zeros = (b: number) => new Array<number>(rows[b].responseIds.length).fill(0);
      const old = toGrid(rows, sb.T, (b) => inp.lps?.[micro[b]].old ?? zeros(b));
      const hasRef = inp.lps !== null && inp.lps[micro[0]].ref.length > 0;
      const ref = hasRef ? toGrid(rows, sb.T, (b) => inp.lps![micro[b]].ref) : null;
      const advantages = toGrid(rows, sb.T, (b) => inp.advs[micro[b]].advantages);
      const mask = toGrid(rows, sb.T, (b) => new Array<number>(rows[b].responseIds.length).fill(inp.advs[micro[b]].trains));
      const out = tidy(() => {
        const logp = logprobs(actor, sb); // [m, T−1]
        const l = recipe.actorLoss({ logp, old, ref, advantages, mask, denominator }, config); // []
        l.backward();
        return { l, logp };
      });
      loss += await out.l.item();
      if (eps !== undefined) {
        const lp = await out.logp.data();
        for (let k = 0; k < lp.length; k++) if (mask[k] && Math.abs(Math.exp(lp[k] - old[k]) - 1) > eps) clipped++;
      }
      out.l.dispose();
      out.logp.dispose();
      }
      if (dp) {
        await dp.buckets.reduce();
        ({ loss, metrics: { clipped } } = await reduceStepOutput(dp, loss, { clipped }, { clipped: { description: 'tokens whose ratio was clipped', dataParallel: 'sum' } }));
      }
    } catch (err) {
      await dp?.buckets.abandon(); // no bucket left writing into a gradient
      throw err;
    }
    t.clipped += clipped;
    if (!Number.isFinite(loss)) loop.actor.opt.zeroGrad();
    checkFinite(loss, loop.optimizerSteps);
    const u = await applyUpdate({ opt: loop.actor.opt, trainer: actorTrainer, dataParallel: dp }, loop.optimizerSteps);
    t.gradNorm = u.gradNorm;
    t.lr = u.lr;
  } else loop.actor.opt.zeroGrad(); // nothing in this mini-batch trains (no response ended): the step is skipped
  if (loop.critic && inp.vals) t.valueLoss += await criticStep(loop.critic, req, recipe, inp, idx, loop.optimizerSteps);
  t.loss += loss;
  t.tokens += denominator;
  loop.optimizerSteps++;
}

/**
 * The critic's step on a mini-batch (PPO): the clipped value loss over every response token,
 * then AdamW with the critic's learning rate on the actor's schedule. Returns the loss.
 */
export async function criticStep(critic: TrainingState, req: IterationRequest, recipe: OnlineRecipe<OnlineConfig>, inp: Pick<Inputs, 'rows' | 'vals' | 'advs'>, idx: readonly number[], step: number): Promise<number> {
  const config = req.config as unknown as OnlineConfig;
  const allTokens = idx.reduce((s, i) => s + inp.rows[i].responseIds.length, 0);
  const spec = recipe.critic?.(config);
  if (!spec || !inp.vals || allTokens === 0) return 0;
  const model = asClassifier(critic.model);
  let vloss = 0;
  for (const micro of microBatches(idx, config.trainer.microBatchSize)) {
    const rows = micro.map((i) => inp.rows[i]);
    const sb = sequenceBatch(rows);
    const oldValues = toGrid(rows, sb.T, (b) => inp.vals![micro[b]].values);
    const returns = toGrid(rows, sb.T, (b) => inp.advs[micro[b]].returns);
    const mask = toGrid(rows, sb.T, (b) => new Array<number>(rows[b].responseIds.length).fill(1));
    const l = tidy(() => {
      const v = valueGrid(model, sb.ids, sb.T); // [m, T−1]
      const part = clippedValueLoss(v, oldValues, returns, mask, spec.valueClip, allTokens); // []
      part.backward();
      return part;
    });
    vloss += await l.item();
    l.dispose();
  }
  if (!Number.isFinite(vloss)) critic.opt.zeroGrad();
  checkFinite(vloss, step);
  const steps = config.trainer.maxSteps * stepsPerIteration(config, recipe.samplesPerPrompt(config), recipe.epochs(config));
  await applyUpdate({ opt: critic.opt, trainer: { ...criticTrainer(config.trainer, spec.lr), maxSteps: steps } }, step);
  return vloss;
}

/** Rejects when the workflow cancels the current activity (never outside one). */
function cancellation(): Promise<never> {
  try {
    return Context.current().cancelled;
  } catch {
    return new Promise<never>(() => undefined);
  }
}

/**
 * This rank's group and gradient buckets over the actor's trained parameters (the update stays
 * AdamW on every rank). The rendezvous waits for ranks still loading, up to its timeout; when a
 * rank is lost before it arrives, the workflow cancels the others, which stop waiting here (a
 * group that opens after all is closed at once).
 */
async function openActorGroup(seat: NonNullable<IterationRequest['dataParallel']>, loop: LoopResident): Promise<DataParallel> {
  const opening = openShmGroup(seat.rendezvous, seat.rank);
  const group = await Promise.race([opening, cancellation()]).catch((err: unknown) => {
    opening.then((g) => g.close(), () => undefined).catch(() => undefined);
    throw err;
  });
  try {
    return { group, buckets: new GradBuckets(group, loop.actor.opt.params), zero: null };
  } catch (err) {
    await group.close().catch(() => undefined);
    throw err;
  }
}

/** The iteration's mini-batches: per epoch, a seeded order cut into global batches. The actor and an own-worker critic walk the same ones. */
export function miniBatchesOf(n: number, config: OnlineConfig, recipe: OnlineRecipe<OnlineConfig>, iteration: number): number[][] {
  const out: number[][] = [];
  for (let epoch = 0; epoch < recipe.epochs(config); epoch++) {
    const o = order(n, config.seed, iteration, epoch);
    for (let start = 0; start < o.length; start += config.trainer.globalBatchSize) out.push(o.slice(start, start + config.trainer.globalBatchSize));
  }
  return out;
}

export function trainOnRollouts(store: RunStorePort, runs: ResidentRuns, req: IterationRequest): Promise<TrainResult> {
  return keepAlive(async () => {
    const t0 = performance.now();
    const key = residentKey(req);
    runs.touch(key);
    heartbeat({ stage: 'train', phase: 'loading' }, { watch: false });
    const recipe = getOnlineRecipe(req.recipe);
    const config = req.config as unknown as OnlineConfig;
    const { loop, loadedFrom } = await loopFor(store, runs, req);
    const rank = req.dataParallel?.rank ?? 0;
    const inp: Inputs = {
      rows: await readRollouts(store, req),
      lps: req.refs.logprobs ? await readRecords<LogprobRecord>(store, req, 'logprobs') : null,
      vals: req.refs.values ? await readRecords<ValueRecord>(store, req, 'values') : null,
      advs: await readRecords<AdvantageRecord>(store, req, 'advantages'),
    };
    const t: StepTotals = { loss: 0, tokens: 0, clipped: 0, valueLoss: 0, gradNorm: 0, lr: 0 };
    let steps = 0;
    // parallel.actor.dp: the ranks meet once each has its models and the iteration's inputs.
    const dp = req.dataParallel ? await openActorGroup(req.dataParallel, loop) : null;
    try {
      for (const idx of miniBatchesOf(inp.rows.length, config, recipe, req.iteration)) {
        await miniBatchStep(loop, req, inp, idx, t, dp);
        steps++;
        heartbeat({ stage: 'train', step: steps, loss: t.loss / steps });
      }
      loop.iteration = req.iteration + 1;
      loop.actor.step = loop.optimizerSteps;
      if (loop.critic) loop.critic.step = loop.optimizerSteps;
    } catch (err) {
      runs.dropLoop(key); // half-trained weights must not be reused
      throw err;
    } finally {
      dp?.buckets.dispose();
      await dp?.group.close().catch(() => undefined);
    }
    const result = { seconds: (performance.now() - t0) / 1000, loss: t.loss / Math.max(1, steps), steps, tokens: t.tokens, gradNorm: t.gradNorm, lr: t.lr, loadedFrom };
    if (rank > 0) {
      // Rank 0 commits. These weights equal its, but descend from a checkpoint whose digest this
      // rank never sees: the replica loads the committed one when it next samples.
      runs.dropLoop(key);
      return { ...result, checkpoint: null, metrics: {} };
    }
    const metrics: Record<string, number> = {};
    if (recipe.policyClip) metrics.clipFraction = t.clipped / Math.max(1, t.tokens);
    if (loop.critic) metrics.valueLoss = t.valueLoss / Math.max(1, steps);
    // The iteration's row goes to the metrics ledger before its checkpoint commits.
    const row: StepRow = {
      type: 'step', step: req.iteration + 1, loss: t.loss / Math.max(1, steps), lr: t.lr, gradNorm: t.gradNorm, tokens: t.tokens,
      metrics: { ...(req.iterationMetrics ?? {}), ...metrics, trainSeconds: (performance.now() - t0) / 1000 },
    };
    const parent = req.checkpoint ? { uri: req.checkpoint.uri, step: req.checkpoint.step } : null;
    await writeMetricsChunk(store.store, req.runId, { fromStep: req.iteration, toStep: req.iteration + 1, parent }, [row]);
    await trackMetrics(store.store, { runId: req.runId, step: req.iteration + 1, kind: 'steps', rows: [row], config: req.config });
    heartbeat({ stage: 'train', phase: 'checkpointing' }, { watch: false });
    const tc = performance.now();
    const checkpoint = await commitLoop(store, req, loop, req.state ?? recipe.initialState(config));
    await store.pruneCheckpoints(req.runId, config.trainer.keepCheckpoints);
    metrics.checkpointSeconds = (performance.now() - tc) / 1000;
    return { ...result, seconds: (performance.now() - t0) / 1000, checkpoint, metrics };
  }, { hangSeconds: req.config.trainer.hangSeconds });
}

/**
 * trainCritic (ppo.criticWorker = own): the critic's steps of an iteration on its own worker, on
 * the mini-batches the actor walks, then the critic's checkpoint (`<run>-critic`, same iteration).
 */
export function trainCritic(store: RunStorePort, runs: ResidentRuns, req: IterationRequest): Promise<CriticTrainResult> {
  return keepAlive(async () => {
    const t0 = performance.now();
    runs.touch(criticRunId(req.runId));
    heartbeat({ stage: 'train critic', phase: 'loading' }, { watch: false });
    const recipe = getOnlineRecipe(req.recipe);
    const config = req.config as unknown as OnlineConfig;
    const { cr, loadedFrom } = await criticFor(store, runs, req);
    const inp = {
      rows: await readRollouts(store, req),
      vals: await readRecords<ValueRecord>(store, req, 'values'),
      advs: await readRecords<AdvantageRecord>(store, req, 'advantages'),
    };
    let valueLoss = 0, steps = 0;
    try {
      for (const idx of miniBatchesOf(inp.rows.length, config, recipe, req.iteration)) {
        valueLoss += await criticStep(cr.critic, req, recipe, inp, idx, cr.optimizerSteps);
        cr.optimizerSteps++;
        heartbeat({ stage: 'train critic', step: ++steps });
      }
      cr.iteration = req.iteration + 1;
      cr.critic.step = cr.optimizerSteps;
    } catch (err) {
      runs.dropLoop(criticRunId(req.runId));
      throw err;
    }
    heartbeat({ stage: 'train critic', phase: 'checkpointing' }, { watch: false });
    const checkpoint = await commitCritic(store, req, cr);
    return { checkpoint, seconds: (performance.now() - t0) / 1000, valueLoss: valueLoss / Math.max(1, steps), loadedFrom };
  }, { hangSeconds: req.config.trainer.hangSeconds });
}
