/**
 * The pipeline service, for the `align pipeline` commands and the API: start a pipeline (its
 * config validated, every stage planned once on paper, before anything starts), show its stage
 * tree, list pipelines, and resume a failed one. A pipeline is a `pipelineWorkflow` execution
 * whose workflow id is the pipeline id; its record (stages, child runs, outputs, lineage) is in
 * the store at pipelines/<id>/record.json.
 */
import { WorkflowExecutionAlreadyStartedError, WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import type { WorkflowExecutionDescription } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { applyOverrides } from '../algorithms/config/common.js';
import { ConfigError } from '../algorithms/errors.js';
import { getPipeline, parsePipelineConfig, PIPELINE_NAMES } from '../algorithms/pipelines/index.js';
import type { PipelineConfig } from '../algorithms/pipelines/index.js';
import { parseRecipeConfig } from '../algorithms/recipes/index.js';
import { fakeOutputs, pipelineRecordKey } from '../activities/pipeline/plan.js';
import type { PipelineInput, PipelineRecord } from '../activities/pipeline/types.js';
import { CONTROL_QUEUE } from '../workflows/training.js';
import { pipelineQuery } from '../workflows/pipeline.js';
import type { PipelineProgress } from '../workflows/pipeline.js';
import { readJsonIfPresent } from '../store/run-store.js';
import type { AllowedRoots } from './allowed-roots.js';
import { PATH_KEYS } from './allowed-roots.js';
import { resolveConfigPath, type PathGuard } from './config-paths.js';
import { checkRunId, ConflictError, describeFailure, NotFoundError, RunStateError } from './runs.js';
import type { FailureView, RunService, RunView } from './runs.js';

/** Every path-like value of the raw config, made absolute (keeping a `#export` suffix) and checked. */
export function resolvePaths(raw: unknown, baseDir: string, where = '', guard?: PathGuard): unknown {
  if (Array.isArray(raw)) return raw.map((v, i) => resolvePaths(v, baseDir, `${where}[${i}]`, guard));
  if (typeof raw !== 'object' || raw === null) return raw;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    const field = where ? `${where}.${k}` : k;
    if (typeof v === 'string' && PATH_KEYS.has(k)) {
      out[k] = resolveConfigPath(field, v, baseDir, k === 'function', guard);
    } else {
      out[k] = resolvePaths(v, baseDir, field, guard);
    }
  }
  return out;
}

/**
 * The validated config of a pipeline: overrides applied, paths resolved, the pipeline's schema,
 * and every stage planned with placeholder outputs and its recipe config checked by the recipe's
 * schema, so that a bad value in the last stage's section fails now and not hours later.
 */
export function preparePipelineConfig(name: string, raw: unknown, sets: readonly string[] = [], baseDir = process.cwd(), guard?: PathGuard): PipelineConfig {
  const def = getPipeline(name);
  if (raw !== undefined && raw !== null && (typeof raw !== 'object' || Array.isArray(raw))) throw new ConfigError(`the ${name} pipeline config must be a mapping of keys to values`);
  const withSets = applyOverrides((raw ?? {}) as Record<string, unknown>, sets);
  const config = parsePipelineConfig(def.name, resolvePaths(withSets, baseDir, '', guard));
  const stages = def.stages(config);
  const start = { model: config.model as string, round: 1 };
  for (const stage of stages) {
    const spec = def.stage(stage, config, fakeOutputs(stages, start.model), start);
    if (spec.kind !== 'run') continue;
    try {
      parseRecipeConfig(spec.recipe, spec.config);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      throw new ConfigError(`pipeline stage "${stage}" (${spec.recipe}): ${e.message}`);
    }
  }
  def.checkInputs?.(config);
  return config;
}

export interface PipelineView {
  pipelineId: string;
  pipeline: string | null;
  /** Temporal's execution status of the pipeline's current execution. */
  state: string;
  startTime: string;
  closeTime: string | null;
  record: PipelineRecord | null;
  /** The running stage's run: its state and progress (null between stages). */
  current: { stage: string; run: RunView | null } | null;
  /** Wall time of each stage's run so far, by stage (from Temporal's start and close times). */
  seconds: Record<string, number>;
  failure: FailureView | null;
}

export interface PipelineSummary {
  pipelineId: string;
  pipeline: string | null;
  state: string;
  startTime: string;
  closeTime: string | null;
  schedule: string | null;
}

/** `rlhf-20261202-101500-ab12`: pipeline, UTC time, 16 random bits (as run ids). */
export function newPipelineId(name: string, now = new Date()): string {
  const t = now.toISOString().replace(/[-:]/g, '').slice(0, 15).replace('T', '-');
  return `${name}-${t}-${Math.floor(Math.random() * 0x10000).toString(16).padStart(4, '0')}`;
}

/** A JSON document of the store, or null when it is absent. */
export class PipelineService {
  constructor(readonly runs: RunService) {}

  private record(pipelineId: string): Promise<PipelineRecord | null> {
    return readJsonIfPresent<PipelineRecord>(this.runs.store, pipelineRecordKey(pipelineId));
  }

  private get queues() {
    return this.runs.opts.queues;
  }

  /** Validates, then starts the pipeline's parent workflow. */
  async start(
    name: string, raw: unknown, sets: readonly string[] = [],
    opts: { pipelineId?: string; baseDir?: string; heartbeatSeconds?: number; allowedRoots?: AllowedRoots } = {},
  ): Promise<{ pipelineId: string; pipeline: string; stages: string[] }> {
    const def = getPipeline(name);
    // resolvePaths visits every path-like key, so its guard is the whole allowed-roots check.
    const config = preparePipelineConfig(def.name, raw, sets, opts.baseDir, opts.allowedRoots?.guard);
    await this.runs.store.probe();
    const pipelineId = opts.pipelineId !== undefined ? checkRunId(opts.pipelineId) : newPipelineId(def.name);
    if (await this.runs.store.stat(pipelineRecordKey(pipelineId))) throw new ConflictError(`a pipeline with id "${pipelineId}" already exists in ${this.runs.store.uri}; pick another id`);
    const input: PipelineInput = {
      pipelineId, pipeline: def.name, config, ...(this.queues ? { queues: this.queues } : {}),
      ...(opts.heartbeatSeconds !== undefined ? { heartbeatSeconds: opts.heartbeatSeconds } : {}),
    };
    await this.runs.withClient(async (c) => {
      try {
        await c.workflow.start('pipelineWorkflow', {
          taskQueue: this.queues?.control ?? CONTROL_QUEUE, workflowId: pipelineId, args: [input],
          workflowIdReusePolicy: 'REJECT_DUPLICATE', memo: { pipeline: def.name },
        });
      } catch (e) {
        if (e instanceof WorkflowExecutionAlreadyStartedError) throw new ConflictError(`a pipeline with id "${pipelineId}" already exists; pick another id`);
        throw e;
      }
    });
    return { pipelineId, pipeline: def.name, stages: def.stages(config) };
  }

  /** The pipeline's workflow id: its own id, or (a scheduled round, whose id carries a time) the one its record names. */
  private async workflowIdOf(pipelineId: string): Promise<string> {
    checkRunId(pipelineId);
    return (await this.record(pipelineId).catch(() => null))?.workflowId ?? pipelineId;
  }

  private async describe(pipelineId: string): Promise<WorkflowExecutionDescription> {
    const d = await this.describeIfKnown(pipelineId);
    if (!d) throw new NotFoundError(`no pipeline "${pipelineId}" in Temporal namespace "${this.runs.namespace}" at ${this.runs.address} (see align pipeline list)`);
    return d;
  }

  /** The pipeline's current execution, or null when Temporal does not know it (never started, or past retention). */
  private async describeIfKnown(pipelineId: string): Promise<WorkflowExecutionDescription | null> {
    const workflowId = await this.workflowIdOf(pipelineId);
    return this.runs.withClient(async (c) => {
      try {
        const d = await c.workflow.getHandle(workflowId).describe();
        if (d.type !== 'pipelineWorkflow') throw new NotFoundError(`"${pipelineId}" is a ${d.type} run, not a pipeline; see align status ${pipelineId}`);
        return d;
      } catch (e) {
        if (e instanceof WorkflowNotFoundError) return null;
        throw e;
      }
    });
  }

  /**
   * The stage tree: the live record from the workflow (or the store's once it has closed), and the
   * running stage's run. `timings: false` leaves out the stages' wall times (one describe per stage),
   * for callers that poll.
   */
  async status(pipelineId: string, opts: { timings?: boolean } = {}): Promise<PipelineView> {
    const d = await this.describe(pipelineId);
    const view: PipelineView = {
      pipelineId, pipeline: (d.memo?.pipeline as string | undefined) ?? null, state: d.status.name, startTime: d.startTime.toISOString(),
      closeTime: d.closeTime?.toISOString() ?? null, record: null, current: null, failure: null, seconds: {},
    };
    let live: PipelineProgress | null = null;
    if (d.status.name === 'RUNNING') {
      live = await this.runs.withClient((c) => c.connection.withDeadline(Date.now() + 3000, () => c.workflow.getHandle(d.workflowId).query(pipelineQuery))).catch(() => null);
    }
    view.record = live ?? (await this.record(pipelineId).catch(() => null));
    view.pipeline ??= view.record?.pipeline ?? null;
    if (opts.timings !== false) await Promise.all((view.record?.stages ?? []).filter((s) => s.runId).map(async (s) => {
      const w = await this.runs.withClient((c) => c.workflow.getHandle(s.runId!).describe()).catch(() => null);
      if (w) view.seconds[s.name] = ((w.closeTime ?? new Date()).getTime() - w.startTime.getTime()) / 1000;
    }));
    const running = view.record?.stages.find((s) => s.state === 'running');
    if (d.status.name === 'RUNNING' && running?.runId) {
      view.current = { stage: running.name, run: await this.runs.getStatus(running.runId).catch(() => null) };
    }
    if (d.status.name !== 'RUNNING' && d.status.name !== 'COMPLETED') {
      view.failure = await this.runs.withClient((c) => c.workflow.getHandle(d.workflowId).result()).then(
        () => null, (e: unknown) => (e instanceof WorkflowFailedError ? describeFailure(e) : { message: String(e), type: null, activity: null, chain: [] }),
      );
    }
    return view;
  }

  async list(opts: { limit?: number } = {}): Promise<PipelineSummary[]> {
    const limit = opts.limit ?? 20;
    return this.runs.withClient(async (c) => {
      const out: PipelineSummary[] = [];
      for await (const w of c.workflow.list({ query: `WorkflowType = 'pipelineWorkflow'`, pageSize: Math.min(limit, 1000) })) {
        out.push({
          pipelineId: w.workflowId, pipeline: (w.memo?.pipeline as string | undefined) ?? null, state: w.status.name,
          startTime: w.startTime.toISOString(), closeTime: w.closeTime?.toISOString() ?? null,
          schedule: (w.searchAttributes?.TemporalScheduledById as string[] | undefined)?.[0] ?? null,
        });
        if (out.length >= limit) break;
      }
      return out;
    });
  }

  /**
   * Starts a failed (or terminated) pipeline again under the same id: its completed stages are
   * skipped, and the stage that failed continues from its run's newest valid checkpoint.
   */
  /**
   * Starts the pipeline again under its workflow id, with its start input (from Temporal's history,
   * or rebuilt from the store's record once Temporal has dropped the closed execution past its
   * retention): completed stages are skipped, the failed one resumes from its newest checkpoint.
   */
  async resume(pipelineId: string): Promise<{ pipelineId: string; attempt: number; skipped: string[]; resumes: string | null }> {
    const d = await this.describeIfKnown(pipelineId);
    if (d?.status.name === 'RUNNING') throw new RunStateError(pipelineId, d.status.name, `pipeline ${pipelineId} is still running; see align pipeline status ${pipelineId}`);
    if (d?.status.name === 'COMPLETED') throw new RunStateError(pipelineId, d.status.name, `pipeline ${pipelineId} completed; there is nothing to resume`);
    const record = await this.record(pipelineId);
    if (!record) {
      if (!d) throw new NotFoundError(`no pipeline "${pipelineId}" in Temporal namespace "${this.runs.namespace}" at ${this.runs.address} nor in ${this.runs.store.uri} (see align pipeline list)`);
      throw new NotFoundError(`pipeline ${pipelineId} has no record in ${this.runs.store.uri}; is that the store its workers use (--store)?`);
    }
    if (!d && record.state === 'completed') throw new RunStateError(pipelineId, 'COMPLETED', `pipeline ${pipelineId} completed; there is nothing to resume`);
    const workflowId = d?.workflowId ?? record.workflowId;
    const input = d ? await this.startInput(pipelineId, workflowId) : {
      pipeline: record.pipeline, config: record.config, ...(record.schedule ? { schedule: record.schedule } : {}), ...(this.queues ? { queues: this.queues } : {}),
    } satisfies PipelineInput;
    const attempt = record.attempt + 1;
    const next: PipelineInput = { ...input, pipelineId: record.pipelineId, attempt };
    await this.runs.withClient(async (c) => {
      try {
        await c.workflow.start('pipelineWorkflow', {
          taskQueue: input.queues?.control ?? CONTROL_QUEUE, workflowId, args: [next],
          workflowIdReusePolicy: 'ALLOW_DUPLICATE_FAILED_ONLY', memo: { pipeline: record.pipeline, attempt },
        });
      } catch (e) {
        // Another resume started it first (or it completed meanwhile).
        if (e instanceof WorkflowExecutionAlreadyStartedError) throw new ConflictError(`pipeline ${pipelineId} was started again meanwhile (another resume?); see align pipeline status ${pipelineId}`);
        throw e;
      }
    });
    const skipped = record.stages.filter((s) => s.state === 'completed').map((s) => s.name);
    const resumes = record.stages.find((s) => s.state !== 'completed')?.name ?? null;
    return { pipelineId, attempt, skipped, resumes };
  }

  /** The input the pipeline's workflow was started with (the first event of its history). */
  private startInput(pipelineId: string, workflowId: string): Promise<PipelineInput> {
    return this.runs.withClient(async (c) => {
      const history = await c.workflow.getHandle(workflowId).fetchHistory();
      const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
      if (!payload) throw new RunStateError(pipelineId, 'UNKNOWN', `pipeline ${pipelineId}: its start event has no input`);
      return defaultPayloadConverter.fromPayload<PipelineInput>(payload);
    });
  }
}

export { PIPELINE_NAMES };
