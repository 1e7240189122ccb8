/**
 * Mock activities for workflow tests: the real Temporal server runs the real workflow code, and
 * these stand in for data, training and storage with instant, scripted results.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { heartbeat, keepAlive } from '../../activities/heartbeat.js';
import type { Activities } from '../../activities/index.js';
import { parseRecipeConfig } from '../../algorithms/recipes/index.js';
import type { ChunkRequest, ChunkResult } from '../../activities/types.js';
import { workflowCode } from '../../infra/workers/workflow-code.js';

export interface Script {
  /** Throw this non-retryable DataError from prepareDataset. */
  dataError?: string;
  /** Fail the chunk starting at this step once with a retryable error (a lost worker). */
  failOnceAt?: number;
  /** Milliseconds each chunk takes. */
  chunkMs?: number;
  /** The chunk starting at this step fails for good (a NaN loss). */
  nanAt?: number;
  /** precompute returns a reference (as DPO's does) and fails its first attempt with a retryable error. */
  precomputeFailsOnce?: boolean;
  /** Pipelines: the next N data shards fail, retryably (a lost worker) or for good (a DataError). */
  shardFailures?: { count: number; kind: 'retryable' | 'data' };
  /** The chunk starting at this step hangs once: it reports one step, then never progresses (under the real keepAlive watchdog). */
  hangOnceAt?: number;
  /** Pipelines: the stage is a (fake) SFT run of this many steps instead of a data stage. */
  runStageSteps?: number;
  /** Gangs: rank 1 finds no free slot until rank 0's slot has been given back once (another gang holds the rest of the fleet). */
  rank1AfterGiveBack?: boolean;
}

const notFaked = (name: string) => async (): Promise<never> => {
  throw ApplicationFailure.create({ message: `${name} is not faked`, nonRetryable: true });
};

export function fakeActivities(queue: string, script: Script = {}) {
  const calls: { name: string; args: unknown }[] = [];
  let failed = false, precomputeFailed = false, hung = false;
  const acts: Activities = {
    async prepareDataset(args) {
      calls.push({ name: 'prepareDataset', args });
      if (script.dataError) throw ApplicationFailure.create({ message: script.dataError, type: 'DataError', nonRetryable: true });
      return {
        train: { prefix: 'runs/x/data/train', uri: 'file:///t/', count: 32, tokens: 3200 },
        valid: { prefix: 'runs/x/data/valid', uri: 'file:///v/', count: 8, tokens: 800 },
        report: { records: 40, examples: 40, dropped: 0, droppedSamples: [], truncated: 0 },
      };
    },
    async precompute(args) {
      calls.push({ name: 'precompute', args: { recipe: args.recipe } });
      if (!script.precomputeFailsOnce) return null;
      if (!precomputeFailed) {
        precomputeFailed = true;
        throw ApplicationFailure.create({ message: 'worker lost while precomputing', type: 'TransientError', nonRetryable: false });
      }
      return { name: 'reference-logps', indexKey: 'runs/x/precompute/reference-logps/index.json', trainCount: 32, validCount: 8 };
    },
    async releaseRun(args) {
      calls.push({ name: 'releaseRun', args });
      return true;
    },
    async cleanRun(args) {
      calls.push({ name: 'cleanRun', args });
      return [];
    },
    async scoreResponses(req) {
      calls.push({ name: 'scoreResponses', args: { n: req.samples.length } });
      return { scores: req.samples.map(() => [0]), labelNames: ['LABEL_0'] };
    },
    async placeRun(args) {
      calls.push({ name: 'placeRun', args });
      if (script.rank1AfterGiveBack && args.runId.endsWith('.rank1') && !calls.some((c) => c.name === 'releaseRun' && (c.args as { runId: string }).runId.endsWith('.rank0'))) {
        throw ApplicationFailure.create({ message: `no free slot for ${args.runId}`, type: 'NoFreeSlotError', nonRetryable: false });
      }
      return queue;
    },
    async trainChunk(req: ChunkRequest): Promise<ChunkResult> {
      calls.push({ name: 'trainChunk', args: { from: req.fromStep, to: req.toStep, checkpoint: req.checkpoint?.step ?? null, ...(req.precomputed ? { precomputed: req.precomputed.indexKey } : {}) } });
      if (script.nanAt === req.fromStep) throw ApplicationFailure.create({ message: `loss is NaN at step ${req.fromStep + 1}`, type: 'NonFiniteLossError', nonRetryable: true });
      if (script.failOnceAt === req.fromStep && !failed) {
        failed = true;
        throw ApplicationFailure.create({ message: 'worker lost its GPU', type: 'TransientError', nonRetryable: false });
      }
      if (script.hangOnceAt === req.fromStep && !hung) {
        hung = true;
        // A stuck collective: the event loop is free (keepAlive keeps beating), no step ever ends.
        return keepAlive(async () => {
          heartbeat({ step: req.fromStep + 1, phase: 'training' });
          // Never ends by itself; the worker's shutdown cancels it (so that the test can stop its workers).
          return new Promise<never>((_, reject) => void Context.current().cancelled.catch(reject));
        }, { hangSeconds: req.config.trainer.hangSeconds });
      }
      await new Promise((r) => setTimeout(r, script.chunkMs ?? 5));
      const steps = [];
      for (let s = req.fromStep + 1; s <= req.toStep; s++) steps.push({ step: s, loss: 1 / s, lr: 1e-3, gradNorm: 1, tokens: 100, metrics: {} });
      return {
        step: req.toStep, steps, checkpoint: { uri: `file:///runs/x/checkpoints/${req.toStep}`, step: req.toStep, sha256: `sha-${req.toStep}` },
        validation: req.validate ? { step: req.toStep, loss: 0.5, metrics: {}, headline: { metric: 'loss', better: 'lower', value: 0.5 } } : null,
        ...(req.validateBefore ? { validationBefore: { step: req.fromStep, loss: 0.9, metrics: {}, headline: { metric: 'loss', better: 'lower', value: 0.9 } } } : {}),
        loadedFrom: req.checkpoint ? 'resident' : 'base', seconds: 0.01,
      };
    },
    async exportModel(args) {
      calls.push({ name: 'exportModel', args });
      return 'file:///runs/x/export';
    },
    // The online stages are exercised against the real activities (test/e2e/online.test.ts).
    async gangChunk(req) {
      const { gang, ...chunk } = req;
      calls.push({ name: 'gangChunk', args: { rank: gang.rank, from: req.fromStep, to: req.toStep } });
      const r = await acts.trainChunk(chunk);
      return { ...r, rank: gang.rank, checkpoint: gang.rank === 0 ? r.checkpoint : null };
    },
    async workerHost() {
      return 'fake-host';
    },
    generateRollouts: notFaked('generateRollouts'),
    scoreRollouts: notFaked('scoreRollouts'),
    computeLogprobs: notFaked('computeLogprobs'),
    computeValues: notFaked('computeValues'),
    computeAdvantages: notFaked('computeAdvantages'),
    mergeStageResults: notFaked('mergeStageResults'),
    trainOnRollouts: notFaked('trainOnRollouts'),
    trainCritic: notFaked('trainCritic'),
    evaluatePolicy: notFaked('evaluatePolicy'),
    // A pipeline of one data stage; its shards fail as scripted.
    async beginPipeline(input) {
      calls.push({ name: 'beginPipeline', args: { attempt: input.attempt } });
      return {
        pipelineId: input.pipelineId, workflowId: input.workflowId ?? input.pipelineId, pipeline: input.pipeline, config: input.config, start: { model: 'm0', round: 1 },
        schedule: null, attempt: input.attempt, state: 'running', output: null,
        stages: [{ name: 'pairs-1', kind: 'data', what: 'preference-pairs', state: 'pending', runId: null, failedRuns: [], inputs: [], output: null, attempt: null }],
      };
    },
    async planPipelineStage({ record, stage, settings }) {
      const st = record.stages.find((s) => s.name === stage)!;
      const runId = `${record.pipelineId}.${stage}${st.failedRuns.length ? `.r${st.failedRuns.length}` : ''}`;
      calls.push({ name: 'planPipelineStage', args: { runId } });
      if (script.runStageSteps) {
        const config = parseRecipeConfig('sft', { model: 'm', data: { train: 't.jsonl' }, trainer: { maxSteps: script.runStageSteps, checkpointEvery: 2, valEvery: 0, warmupSteps: 0 } });
        return {
          kind: 'run', workflowType: 'trainingWorkflow', runId, recipe: 'sft', inputs: [], resumedFrom: null,
          input: { runId, recipe: 'sft', config, heartbeatSeconds: 5, queues: settings?.queues ?? undefined },
        };
      }
      return {
        kind: 'data', workflowType: 'dataStageWorkflow', runId, task: 'preference-pairs', inputs: [], resumedFrom: null,
        input: { runId, task: 'preference-pairs', args: {}, shards: 1, previousRuns: st.failedRuns, queues: settings?.queues ?? null },
      };
    },
    async recordPipeline({ record }) {
      calls.push({ name: 'recordPipeline', args: { stages: record.stages.map((s) => `${s.name}:${s.state}`) } });
    },
    async finishPipeline({ record }) {
      calls.push({ name: 'finishPipeline', args: {} });
      return { ...record, state: 'completed', output: { model: 'm1' } };
    },
    async runDataShard(args) {
      calls.push({ name: 'runDataShard', args: { runId: args.runId, previousRuns: args.previousRuns } });
      const f = script.shardFailures;
      if (f && f.count > 0) {
        f.count--;
        throw f.kind === 'data'
          ? ApplicationFailure.create({ message: 'prompts.jsonl:3: missing key "prompt"', type: 'DataError', nonRetryable: true })
          : ApplicationFailure.create({ message: 'worker lost', type: 'TransientError', nonRetryable: false });
      }
      return { shard: args.shard, records: 3, sums: {}, seconds: 0 };
    },
    async mergeDataShards(args) {
      calls.push({ name: 'mergeDataShards', args: { runId: args.runId } });
      return { runId: args.runId, uri: `file:///runs/${args.runId}/output/data.jsonl`, records: 3, metrics: {}, summary: '3 records' };
    },
  };
  return { acts, calls };
}

/**
 * Workers serving the fake activities on `queues` (control with the real workflows, the shared
 * compute queue, and one worker's own queue), running until `stop()`. The script object is read
 * at each call, so tests may change it between runs.
 */
export async function startFakeWorkers(address: string, queues: { control: string; compute: string }, script: Script) {
  try {
    Runtime.install({ logger: new DefaultLogger('ERROR') }); // the workers' INFO lines drown the test output
  } catch {
    /* installed already in this process */
  }
  const connection = await NativeConnection.connect({ address });
  const own = `${queues.compute}-own`;
  const { acts, calls } = fakeActivities(own, script);
  const workers = await Promise.all([
    Worker.create({ connection, taskQueue: queues.control, ...workflowCode(), activities: acts }),
    Worker.create({ connection, taskQueue: queues.compute, activities: acts }),
    Worker.create({ connection, taskQueue: own, activities: acts }),
  ]);
  const running = workers.map((w) => w.run());
  return {
    calls,
    async stop(): Promise<void> {
      workers.forEach((w) => w.shutdown());
      await Promise.all(running);
      await connection.close();
    },
  };
}
