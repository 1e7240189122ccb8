/**
 * Scheduled pipeline rounds (`align schedule …` and /schedules): a Temporal Schedule whose action
 * starts a pipelineWorkflow round. The round finds the model it starts from through the
 * schedule's lineage in the store (schedules/<name>/rounds/, one object per completed round),
 * never through a path fixed at creation. Overlapping rounds are skipped by default; a failed round
 * pauses nothing (the next one starts from the last round that completed) and shows in describe.
 */
import { ScheduleAlreadyRunning, ScheduleNotFoundError } from '@temporalio/client';
import type { ScheduleOverlapPolicy, ScheduleSpec } from '@temporalio/client';
import { getPipeline } from '../algorithms/pipelines/index.js';
import { readLineage } from '../activities/pipeline/plan.js';
import type { ScheduledRound } from '../activities/pipeline/plan.js';
import type { PipelineInput } from '../activities/pipeline/types.js';
import { CONTROL_QUEUE } from '../workflows/training.js';
import { pipelineIdOf } from '../workflows/pipeline.js';
import type { AllowedRoots } from './allowed-roots.js';
import { preparePipelineConfig } from './pipelines.js';
import { checkRunId, ConflictError, NotFoundError, UsageError } from './runs.js';
import type { RunService } from './runs.js';
import { checkCron, parseEvery } from './schedule-spec.js';

export const OVERLAP_POLICIES = ['skip', 'buffer-one', 'buffer-all', 'cancel-other', 'terminate-other', 'allow-all'] as const;
export type OverlapName = (typeof OVERLAP_POLICIES)[number];

const overlapOf = (o: OverlapName): ScheduleOverlapPolicy => o.toUpperCase().replace(/-/g, '_') as ScheduleOverlapPolicy;

export interface CreateScheduleOptions {
  pipeline: string;
  /** An interval: 30s, 90m, 6h, 1d, 1h30m. */
  every?: string;
  /** A 5-field cron expression (UTC), or @hourly, @daily, … */
  cron?: string;
  config: unknown;
  sets?: readonly string[];
  baseDir?: string;
  overlap?: OverlapName;
  /** Create it paused (start it with unpause). */
  paused?: boolean;
  note?: string;
  /** Every path of the config must lie under these (the API's ALIGN_ALLOWED_ROOTS). */
  allowedRoots?: AllowedRoots;
}

export interface ScheduleRoundView {
  workflowId: string;
  /** The round's pipeline id (its workflow id made store-safe): what `align pipeline status` takes. */
  pipelineId: string;
  scheduledAt: string;
  /** RUNNING, COMPLETED, FAILED, …; null when Temporal no longer knows the execution. */
  state: string | null;
  failure?: string | null;
}

export interface ScheduleView {
  name: string;
  pipeline: string | null;
  spec: string;
  paused: boolean;
  note: string | null;
  overlap: string;
  actionsTaken: number;
  skippedOverlap: number;
  nextRuns: string[];
  /** The recent rounds Temporal started, newest last, with their state (failed rounds say why). */
  recent: ScheduleRoundView[];
  /** The lineage: rounds that completed, each with the model the next round starts from. */
  completed: ScheduledRound[];
}

export interface ScheduleSummaryView {
  name: string;
  pipeline: string | null;
  spec: string;
  paused: boolean;
  nextRun: string | null;
  lastRun: string | null;
}

/** The spec from --every or --cron: exactly one; errors name the bad value before anything is created. */
export function scheduleSpecOf(o: Pick<CreateScheduleOptions, 'every' | 'cron'>): { spec: ScheduleSpec; text: string } {
  if ((o.every === undefined) === (o.cron === undefined)) throw new UsageError('give exactly one of --every (an interval such as 6h) and --cron (a cron expression such as "0 */6 * * *")');
  if (o.every !== undefined) {
    const e = parseEvery(o.every);
    return { spec: { intervals: [{ every: e.ms }] }, text: `every ${e.text}` };
  }
  const cron = checkCron(o.cron!);
  return { spec: { cronExpressions: [cron] }, text: `cron "${cron}" (UTC)` };
}

/** Longest schedule name: its rounds' ids (<name>-<ISO time>, 21 more characters) fit pipelineIdOf's 100. */
export const MAX_SCHEDULE_NAME = 64;

const describeSpec = (memo: Record<string, unknown> | undefined): string => (typeof memo?.spec === 'string' ? memo.spec : '?');

export class ScheduleService {
  constructor(readonly runs: RunService) {}

  private handle(name: string) {
    checkRunId(name);
    return this.runs.withClient(async (c) => c.schedule.getHandle(name));
  }

  /** Runs `fn` on the schedule, turning "not found" into a typed error naming it. */
  private async on<T>(name: string, fn: (h: Awaited<ReturnType<ScheduleService['handle']>>) => Promise<T>): Promise<T> {
    const h = await this.handle(name);
    try {
      return await this.runs.withClient(() => fn(h));
    } catch (e) {
      if (e instanceof ScheduleNotFoundError) throw new NotFoundError(`no schedule "${name}" in Temporal namespace "${this.runs.namespace}" at ${this.runs.address} (see align schedule list)`);
      throw e;
    }
  }

  async create(name: string, o: CreateScheduleOptions): Promise<{ name: string; pipeline: string; spec: string; nextRuns: string[] }> {
    checkRunId(name);
    // A round's pipeline id is the name and the round's start time (<name>-2026-12-02T06-00-00Z),
    // cut to 100 characters: a longer name would give every round the same id.
    if (name.length > MAX_SCHEDULE_NAME) throw new UsageError(`schedule name "${name}" is ${name.length} characters; at most ${MAX_SCHEDULE_NAME}, so that each round's pipeline id keeps its start time`);
    const def = getPipeline(o.pipeline);
    const { spec, text } = scheduleSpecOf(o);
    const config = preparePipelineConfig(def.name, o.config, o.sets ?? [], o.baseDir, o.allowedRoots?.guard); // checks every path-like key
    await this.runs.store.probe();
    const queues = this.runs.opts.queues;
    const input: PipelineInput = { pipeline: def.name, config, schedule: name, ...(queues ? { queues } : {}) };
    const handle = await this.runs.withClient(async (c) => {
      try {
        return await c.schedule.create({
          scheduleId: name, spec,
          action: { type: 'startWorkflow', workflowType: 'pipelineWorkflow', workflowId: name, taskQueue: queues?.control ?? CONTROL_QUEUE, args: [input], memo: { pipeline: def.name } },
          policies: { overlap: overlapOf(o.overlap ?? 'skip'), pauseOnFailure: false },
          state: { paused: !!o.paused, note: o.note ?? `created by align schedule create (${def.name}, ${text})` },
          memo: { pipeline: def.name, spec: text },
        });
      } catch (e) {
        if (e instanceof ScheduleAlreadyRunning) throw new ConflictError(`a schedule named "${name}" already exists; delete it first (align schedule delete ${name}) or pick another name`);
        throw e;
      }
    });
    const d = await this.runs.withClient(() => handle.describe());
    return { name, pipeline: def.name, spec: text, nextRuns: d.info.nextActionTimes.map((t) => t.toISOString()) };
  }

  async list(): Promise<ScheduleSummaryView[]> {
    return this.runs.withClient(async (c) => {
      const out: ScheduleSummaryView[] = [];
      for await (const s of c.schedule.list()) {
        if (s.action?.type !== 'startWorkflow' || s.action.workflowType !== 'pipelineWorkflow') continue;
        out.push({
          name: s.scheduleId, pipeline: (s.memo?.pipeline as string | undefined) ?? null, spec: describeSpec(s.memo), paused: s.state.paused,
          nextRun: s.info.nextActionTimes[0]?.toISOString() ?? null, lastRun: s.info.recentActions.at(-1)?.takenAt.toISOString() ?? null,
        });
      }
      return out.sort((a, b) => a.name.localeCompare(b.name));
    });
  }

  async describe(name: string): Promise<ScheduleView> {
    const d = await this.on(name, (h) => h.describe());
    const recent = await Promise.all(d.info.recentActions.map(async (a): Promise<ScheduleRoundView> => {
      const workflowId = a.action.workflow.workflowId;
      const round: ScheduleRoundView = { workflowId, pipelineId: pipelineIdOf(workflowId), scheduledAt: a.scheduledAt.toISOString(), state: null };
      await this.runs.withClient(async (c) => {
        const h = c.workflow.getHandle(workflowId, a.action.workflow.firstExecutionRunId);
        const w = await h.describe();
        round.state = w.status.name;
        if (w.status.name === 'FAILED' || w.status.name === 'TERMINATED' || w.status.name === 'TIMED_OUT') {
          round.failure = await h.result().then(() => null, (e: Error) => (e.cause as Error | undefined)?.message ?? e.message);
        }
      }).catch(() => undefined);
      return round;
    }));
    return {
      name, pipeline: (d.memo?.pipeline as string | undefined) ?? null, spec: describeSpec(d.memo), paused: d.state.paused, note: d.state.note ?? null,
      overlap: String(d.policies.overlap).toLowerCase().replace(/_/g, '-'), actionsTaken: d.info.numActionsTaken, skippedOverlap: d.info.numActionsSkippedOverlap,
      nextRuns: d.info.nextActionTimes.map((t) => t.toISOString()), recent,
      completed: await readLineage(this.runs.store, name),
    };
  }

  async pause(name: string, note?: string): Promise<{ name: string; paused: true }> {
    await this.on(name, (h) => h.pause(note ?? 'paused with align schedule pause'));
    return { name, paused: true };
  }

  async unpause(name: string, note?: string): Promise<{ name: string; paused: false }> {
    await this.on(name, (h) => h.unpause(note ?? 'unpaused with align schedule unpause'));
    return { name, paused: false };
  }

  /** Starts a round now; with the default overlap policy (skip) nothing starts while a round is running. */
  async trigger(name: string, overlap: OverlapName = 'skip'): Promise<{ name: string; triggered: true }> {
    await this.on(name, (h) => h.trigger(overlapOf(overlap)));
    return { name, triggered: true };
  }

  /** Deletes the schedule; running rounds go on, the lineage stays in the store. */
  async delete(name: string): Promise<{ name: string; deleted: true }> {
    await this.on(name, (h) => h.delete());
    return { name, deleted: true };
  }
}
