/**
 * The run service: every operation on runs, implemented once, for both the `align` CLI and the
 * HTTP API. It is a Temporal client (runs are workflow executions whose workflow id is the run
 * id) plus the artifact store (checkpoints, exports).
 *
 * Configs are parsed and validated before anything is started: a bad value never becomes a
 * workflow. The Temporal connection is made on first use, so a bad config is reported even when
 * the server is down, and a long-lived API process reconnects after an outage.
 */
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, isGrpcServiceError, ServiceError, WorkflowExecutionAlreadyStartedError, WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import type { WorkflowExecutionDescription, WorkflowExecutionStatusName } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure, defaultPayloadConverter } from '@temporalio/common';
import type { CheckpointRef, Progress, Queues, RecipeConfig, RecipeName, RunInput, RunResult } from '../activities/types.js';
import { applyOverrides } from '../algorithms/config/common.js';
import { checkMaxLength } from '../algorithms/config/common.js';
import { getRecipe, isRecipeName, parseRecipeConfig, RECIPE_NAMES } from '../algorithms/recipes/index.js';
import { isPipelineName } from '../algorithms/pipelines/index.js';
import { contextWindowOf, readModelConfig } from '../activities/model-info.js';
import { ConfigError } from '../algorithms/errors.js';
import { AlignerError } from '../kernels/errors.js';
import { COMPUTE_QUEUE, CONTROL_QUEUE, pauseSignal, progressQuery, resumeSignal, stopSignal } from '../workflows/training.js';
import { CheckpointCorruptError, latestValidCheckpoint, listCheckpoints, readManifest, verifyCheckpoint, type ManifestFile } from '../store/checkpoints.js';
import { openStore, StoreError, type ArtifactStore, type S3Config } from '../store/index.js';
import { readIteration } from '../activities/online/ledger-view.js';
import type { IterationView } from '../activities/online/ledger-view.js';
import { ExportError, exportToFolder } from '../store/export.js';
import { workflowTypeOf } from '../activities/pipeline/plan.js';
import type { AllowedRoots } from './allowed-roots.js';
import { isLocalPath, resolveConfigPath, type PathGuard } from './config-paths.js';
import { ScheduleSpecError } from './schedule-spec.js';

export { ExportError };
import { connectTemporal, TemporalUnavailableError } from './temporal.js';
import { readMetricsHistory } from '../store/metrics-ledger.js';
import type { MetricsHistory } from '../store/metrics-ledger.js';

export { TemporalUnavailableError };

// ---- Errors: typed, with messages that say what to do. The CLI and the API map their kind
// ---- (errorKind) to exit codes and HTTP statuses.

/** A bad argument: a malformed run id, an export folder that is not empty, a missing file. */
export class UsageError extends AlignerError {}

export class RunNotFoundError extends AlignerError {
  constructor(readonly runId: string, namespace: string, address: string, storeUri?: string) {
    super(`no run "${runId}" in Temporal namespace "${namespace}" at ${address}${storeUri ? ` and no checkpoints of it in ${storeUri}` : ''} (see align list, or GET /runs)`);
  }
}

/** A pipeline, schedule or other named object that does not exist. */
export class NotFoundError extends AlignerError {}

/** A name that is taken (a schedule id), or an operation its object's state forbids. */
export class ConflictError extends AlignerError {}

export class RunExistsError extends AlignerError {
  constructor(readonly runId: string) {
    super(`a run with id "${runId}" already exists (run ids are never reused); pick another --run-id or leave it out`);
  }
}

/** The operation does not apply to the run in its current state (pause a completed run, …). */
export class RunStateError extends AlignerError {
  constructor(readonly runId: string, readonly state: string, message: string) {
    super(message);
  }
}

export class NoCheckpointError extends AlignerError {
  constructor(readonly runId: string, readonly skipped: SkippedCheckpoint[], message: string) {
    const bad = skipped.map((s) => `step ${s.step} (${s.reason})`).join('; ');
    super(`${message}${bad ? `; failed verification: ${bad}` : ''}`);
  }
}


export interface SkippedCheckpoint {
  step: number;
  uri: string;
  reason: string;
}

/** Why a run failed: the innermost cause (the activity's error type and message) and the chain. */
export interface FailureView {
  message: string;
  type: string | null;
  /** The activity that raised it, when one did. */
  activity: string | null;
  chain: { type: string; message: string }[];
}

/**
 * The most specific account of a failure: what the failing activity itself said (our typed
 * errors name the file, the field, the endpoint and the object), not only the innermost cause
 * (a raw `connect ECONNREFUSED`), which is appended when it adds something.
 */
export function describeFailure(err: WorkflowFailedError): FailureView {
  const chain: FailureView['chain'] = [];
  let activity: string | null = null;
  let thrown: { type: string; message: string } | null = null; // the error the activity threw
  for (let e: unknown = err.cause; e instanceof Error; e = e.cause) {
    if (e instanceof ActivityFailure) activity = e.activityType;
    const type = (e instanceof ApplicationFailure && e.type) || e.name;
    const last = chain.at(-1);
    if (!last || last.type !== type || last.message !== e.message) chain.push({ type, message: e.message });
    if (!thrown && e instanceof ApplicationFailure && (activity !== null || !(err.cause instanceof ActivityFailure))) thrown = { type, message: e.message };
  }
  const inner = chain.at(-1) ?? { type: err.name, message: err.message };
  const main = thrown ?? inner;
  const message = main !== inner && !main.message.includes(inner.message) ? `${main.message} (cause: ${inner.message})` : main.message;
  return { message, type: main.type, activity, chain };
}

export type ErrorKind = 'usage' | 'not-found' | 'conflict' | 'unavailable' | 'internal';

export function errorKind(e: unknown): ErrorKind {
  if (e instanceof ConfigError || e instanceof UsageError || e instanceof ScheduleSpecError) return 'usage';
  if (e instanceof RunNotFoundError || e instanceof NoCheckpointError || e instanceof NotFoundError) return 'not-found';
  if (e instanceof ConflictError || e instanceof RunStateError || e instanceof RunExistsError || e instanceof CheckpointCorruptError || e instanceof ExportError) return 'conflict';
  if (e instanceof TemporalUnavailableError) return 'unavailable';
  if (e instanceof StoreError) {
    return e.code === 'Unavailable' ? 'unavailable' : e.code === 'NotFound' ? 'not-found' : e.code === 'Invalid' || e.code === 'Denied' ? 'usage' : 'internal';
  }
  return 'internal';
}

// ---- Runs

/** The workflow type a recipe runs as: every offline recipe is the one training loop. */
const workflowType = workflowTypeOf;
/** Workflow types of runs started before every offline recipe ran as trainingWorkflow. */
const LEGACY_TYPES: Readonly<Record<string, RecipeName>> = { sftWorkflow: 'sft', dpoWorkflow: 'dpo' };
const RUN_TYPES = [...new Set([...RECIPE_NAMES.map(workflowType), ...Object.keys(LEGACY_TYPES)])];
/** A run's recipe: from its memo (set at start), else from a legacy workflow type. */
function recipeOf(type: string, memo: Record<string, unknown> | undefined): RecipeName | null {
  const r = memo?.recipe;
  if (typeof r === 'string' && isRecipeName(r)) return r;
  return LEGACY_TYPES[type] ?? null;
}
/** How long a progress query may wait for a worker before status reports "no answer". */
const QUERY_DEADLINE_MS = 2_500;
/** temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY */
const TASK_QUEUE_TYPE_ACTIVITY = 2;
/** temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED */
const PENDING_ACTIVITY_SCHEDULED = 1;

/** The store the workers use by default: ALIGN_STORE_URI, else the repo's .state/store. */
export function defaultStoreUri(): string {
  // The one default for the CLI, the API and the worker process (infra/workers/main.ts).
  return process.env.ALIGN_STORE_URI || `file://${fileURLToPath(new URL('../.state/store', import.meta.url))}`;
}

/**
 * `CONTROL,COMPUTE` task queue names (as the workers' --queues and ALIGN_QUEUES); undefined for
 * an empty spec (the default queues).
 */
export function parseQueues(spec: string | undefined): Queues | undefined {
  if (!spec) return undefined;
  const parts = spec.split(',').map((q) => q.trim());
  if (parts.length !== 2 || parts.some((q) => !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(q))) {
    throw new UsageError(`task queues must be given as CONTROL,COMPUTE (e.g. align-control,align-cpu), got ${JSON.stringify(spec)}`);
  }
  return { control: parts[0], compute: parts[1] };
}

export interface RunServiceOptions {
  /** Temporal frontend, host:port. */
  address: string;
  /** Temporal namespace. Default 'default'. */
  namespace?: string;
  /** The artifact store the workers write checkpoints to (file:///… or s3://bucket/prefix). */
  storeUri: string;
  /** How long to wait for the Temporal server on connect. Default 5000 ms. */
  connectTimeoutMs?: number;
  /** How long one operation's calls to the server may take in all before it counts as unreachable. Default 3000 ms. */
  callTimeoutMs?: number;
  /** Task queues of an isolated worker fleet; default align-control / align-cpu. */
  queues?: Queues;
  /** S3 settings for an s3:// store, over the ALIGN_S3_* environment. */
  s3?: S3Config;
}

export interface StartOptions {
  /** Default: a readable generated id, `sft-20261128-051200-ab12`. */
  runId?: string;
  /** false: wait for the run to close (reporting progress), and return its final view. Default true. */
  detach?: boolean;
  /** Relative local paths in the config (model, data.*) are made absolute against this folder. */
  baseDir?: string;
  /** Every path of the config must lie under these (the API's ALIGN_ALLOWED_ROOTS); unlimited when absent. */
  allowedRoots?: AllowedRoots;
  /** Polled progress while not detached. */
  onProgress?: (view: RunView) => void;
  /** Poll interval while not detached. Default 1000 ms. */
  pollMs?: number;
  /** Stops waiting (the run goes on). */
  signal?: AbortSignal;
}

export interface StartedRun {
  runId: string;
  recipe: RecipeName;
  config: RecipeConfig;
  /** The closed run's view when started with detach: false. */
  final?: RunView;
}

/**
 * A run's state: Temporal's execution status (RUNNING, COMPLETED, FAILED, TERMINATED, TIMED_OUT,
 * CANCELLED), except that a run stopped by `align cancel` (which ends gracefully, so Temporal says
 * COMPLETED) is STOPPED.
 */
export type RunState = WorkflowExecutionStatusName | 'STOPPED';

/** Everything `align status` shows about a run. */
export interface RunView {
  runId: string;
  recipe: RecipeName | null;
  state: RunState;
  startTime: string;
  closeTime: string | null;
  parentRunId: string | null;
  /** The workflow's progress query; null when no worker answered (see progressError). */
  progress: Progress | null;
  progressError?: string;
  result: RunResult | null;
  failure: FailureView | null;
  /** A closed run that did not complete: the checkpoint resume-failed would start from (null: none). */
  resumeFrom?: { step: number; uri: string } | null;
}

/** One committed checkpoint as GET /runs/:id/checkpoints shows it. */
export interface CheckpointView {
  step: number;
  uri: string;
  createdAt: string;
  /** The sha256 of its manifest, which lists every file's sha256 (what a CheckpointRef pins). */
  manifestSha256: string;
  bytes: number;
  files: ManifestFile[];
  parent: CheckpointRef | null;
}

export interface RunSummary {
  runId: string;
  recipe: RecipeName | null;
  state: RunState;
  startTime: string;
  closeTime: string | null;
  parentRunId: string | null;
}

export interface ResumedRun {
  runId: string;
  parentRunId: string;
  resumeFrom: CheckpointRef;
  /** Newer checkpoints of the failed run that failed verification, with the reason. */
  skipped: SkippedCheckpoint[];
  final?: RunView;
}

/** `sft-20261128-051200-ab12`: recipe, UTC start time, 16 random bits. */
export function newRunId(recipe: RecipeName, now = new Date()): string {
  const t = now.toISOString().replace(/[-:]/g, '').slice(0, 15).replace('T', '-');
  return `${recipe}-${t}-${randomBytes(2).toString('hex')}`;
}

/** Run ids name store folders and workflow ids: letters, digits, `.`, `_`, `-`. */
export function checkRunId(runId: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(runId)) {
    throw new UsageError(`invalid run id ${JSON.stringify(runId)}: use letters, digits, '.', '_' and '-' (at most 128, starting with a letter or digit)`);
  }
  return runId;
}

export function checkRecipe(recipe: string): RecipeName {
  if (!isRecipeName(recipe) && isPipelineName(recipe)) throw new UsageError(`"${recipe}" is a pipeline, not a recipe: align pipeline run ${recipe} --config …`);
  getRecipe(recipe); // throws, listing the recipes
  return recipe as RecipeName;
}


/**
 * The validated config of a run: overrides applied, parsed with the recipe's strict schema, and
 * local paths made absolute (workers do not share the caller's working directory) and checked,
 * so that a typo in a path is reported now and not by a failed run.
 */
export function prepareConfig(recipe: string, raw: unknown, sets: readonly string[] = [], baseDir?: string, guard?: PathGuard): RecipeConfig {
  const r = checkRecipe(recipe);
  if (raw !== undefined && raw !== null && (typeof raw !== 'object' || Array.isArray(raw))) {
    throw new ConfigError(`the ${r} config must be a mapping of keys to values, got ${Array.isArray(raw) ? 'a list' : typeof raw}`);
  }
  const config = parseRecipeConfig(r, applyOverrides((raw ?? {}) as Record<string, unknown>, sets));
  const entry = getRecipe(r);
  const fix = (field: string, spec: string): string => resolveConfigPath(field, spec, baseDir ?? process.cwd(), entry.files?.includes(field), guard);
  // Every path the recipe reads: the data, the model folder of each role (model, kd.teacher, …), its modules (reward.function).
  const fields = ['data.train', 'data.validation', ...Object.values(entry.roles).map((role) => role!.configField), ...(entry.files ?? [])];
  for (const field of new Set(fields)) {
    const keys = field.split('.');
    const parent = keys.slice(0, -1).reduce<Record<string, unknown> | undefined>((o, k) => o?.[k] as Record<string, unknown> | undefined, config);
    const last = keys.at(-1)!;
    if (parent && typeof parent[last] === 'string') parent[last] = fix(field, parent[last] as string);
  }
  return config;
}

/**
 * What a waiting run's pending activity last heard: a full worker's answer to the placement
 * ("worker … has no free slot (1 of 1 in use, by <run>)") or the store's error, with the attempt count.
 */
function waitingDetail(d: WorkflowExecutionDescription): string {
  const pending = d.raw.pendingActivities?.find((a) => a.lastFailure?.message);
  if (!pending) return '';
  const type = pending.activityType?.name ?? 'an activity';
  return `; ${type}, attempt ${pending.attempt ?? 1}: ${pending.lastFailure!.message}`;
}

/** trainer.maxLength against a local model's positions, before anything starts (remote models are checked by prepareDataset). */
async function checkModelLimits(config: RecipeConfig): Promise<void> {
  if (!isLocalPath(config.model)) return;
  const model = await readModelConfig(config.model).catch((e: Error) => {
    throw new ConfigError(`model: ${config.model} is not a Hugging Face model folder (${e.message})`);
  });
  checkMaxLength(config.trainer, contextWindowOf(model));
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

const GRPC_UNAVAILABLE = 14;
const GRPC_DEADLINE_EXCEEDED = 4;
/** Default of RunServiceOptions.callTimeoutMs: the API answers 503 within about this when the server is gone. */
const CALL_TIMEOUT_MS = 3_000;
/** The gRPC status code of an error, raw or wrapped by the SDK; null for any other error. */
function grpcCodeOf(e: unknown): number | null {
  const g = e instanceof ServiceError ? e.cause : e;
  return isGrpcServiceError(g) ? g.code : null;
}

/** The server went away after we connected (gRPC UNAVAILABLE). */
const isUnavailable = (e: unknown): boolean => grpcCodeOf(e) === GRPC_UNAVAILABLE;
const isDeadlineExceeded = (e: unknown): boolean => grpcCodeOf(e) === GRPC_DEADLINE_EXCEEDED;

// ---- Checkpoints: where a failed run resumes from, and exports as Hugging Face folders.


/**
 * The newest valid checkpoint of a run; when it wrote none (it failed before its first
 * checkpoint), the checkpoint it was itself resumed from, if that still verifies.
 */
async function findResumePoint(store: ArtifactStore, runId: string, input: RunInput): Promise<{ checkpoint?: CheckpointRef; skipped: SkippedCheckpoint[] }> {
  const { checkpoint, skipped } = await latestValidCheckpoint(store, runId);
  if (checkpoint) return { checkpoint: checkpoint.ref, skipped };
  const from = input.resumeFrom, parent = input.parentRunId;
  if (from && parent) {
    const ok = await verifyCheckpoint(store, parent, from.step).then((c) => c.ref.sha256 === from.sha256, () => false);
    if (ok) return { checkpoint: from, skipped };
  }
  return { skipped };
}

export interface ExportResult {
  runId: string;
  step: number;
  checkpoint: CheckpointRef;
  outDir: string;
  files: string[];
  skipped: SkippedCheckpoint[];
}

/**
 * Writes a checkpoint as a verified Hugging Face folder (store/export.ts, the same path as the
 * workflow's export) into a new or empty `outDir`.
 */
async function exportCheckpoint(store: ArtifactStore, runId: string, opts: { step?: number; outDir: string }): Promise<ExportResult> {
  const out = path.resolve(opts.outDir);
  const existing = await readdir(out).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [];
    throw new UsageError(`cannot use ${out} as the export folder: ${e.message}`);
  });
  if (existing.length > 0) throw new UsageError(`export folder ${out} is not empty; choose a new --out folder`);
  let ref: CheckpointRef | undefined;
  let skipped: SkippedCheckpoint[] = [];
  if (opts.step !== undefined) {
    ref = await readManifest(store, runId, opts.step).then((m) => m.ref, async (e: unknown) => {
      if (!(e instanceof StoreError && e.code === 'NotFound')) throw e;
      const steps = (await listCheckpoints(store, runId)).map((c) => c.step);
      throw new NoCheckpointError(runId, [], `run ${runId} has no checkpoint at step ${opts.step} in ${store.uri}; ${steps.length ? `its checkpoints: steps ${steps.join(', ')}` : 'it has none'}`);
    });
  } else {
    const found = await latestValidCheckpoint(store, runId);
    ref = found.checkpoint?.ref;
    skipped = found.skipped;
    if (!ref) throw new NoCheckpointError(runId, skipped, `run ${runId} has no valid checkpoint in ${store.uri}; is that the store its workers write to (--store)?`);
  }
  const files = await exportToFolder(store, ref, out);
  return { runId, step: ref.step, checkpoint: ref, outDir: out, files, skipped };
}

export class RunService {
  private clientP: Promise<Client> | undefined;
  private storeCache: ArtifactStore | undefined;
  readonly namespace: string;

  constructor(readonly opts: RunServiceOptions) {
    this.namespace = opts.namespace ?? 'default';
  }

  get address(): string {
    return this.opts.address;
  }

  /** What the policy of an online run said at an iteration (default the newest), from the rollout ledger. */
  async rollouts(runId: string, iteration?: number): Promise<IterationView> {
    return readIteration(this.store, runId, iteration);
  }

  /**
   * A run's metrics history from the metrics ledger, each step once, continued across the runs it
   * resumed from; `from`/`to` keep the steps (and validations, evaluations) in that range.
   */
  async metrics(runId: string, range: { from?: number; to?: number } = {}): Promise<MetricsHistory> {
    checkRunId(runId);
    const h = await readMetricsHistory(this.store, runId);
    // Nothing in the ledger: an unknown run is a 404, a run that has not trained yet an empty history.
    if (h.steps.length + h.validations.length + h.evaluations.length === 0) await this.describe(runId);
    const inRange = (r: { step: number }) => r.step >= (range.from ?? 0) && r.step <= (range.to ?? Infinity);
    return { steps: h.steps.filter(inRange), validations: h.validations.filter(inRange), evaluations: h.evaluations.filter(inRange), lineage: h.lineage };
  }

  /**
   * A run's committed checkpoints, newest first, with each one's files, sizes and hashes (from its
   * manifest; nothing is re-hashed here: resume-failed and export verify).
   */
  async checkpoints(runId: string): Promise<CheckpointView[]> {
    checkRunId(runId);
    const found = await listCheckpoints(this.store, runId);
    if (found.length === 0) await this.describe(runId); // an unknown run is a 404, a young one has none yet
    return Promise.all(found.map(async ({ step, uri }): Promise<CheckpointView> => {
      const { ref, manifest } = await readManifest(this.store, runId, step);
      return { step, uri, createdAt: manifest.createdAt, manifestSha256: ref.sha256, bytes: manifest.files.reduce((n, f) => n + f.size, 0), files: manifest.files, parent: manifest.parent };
    }));
  }

  /** The run store's URI (file:///… or s3://bucket/prefix). */
  get storeUri(): string {
    return this.opts.storeUri;
  }

  get store(): ArtifactStore {
    this.storeCache ??= openStore(this.opts.storeUri, this.opts.s3);
    return this.storeCache;
  }

  /** The client, connected on first use; a failed connect is retried by the next call. */
  private async client(): Promise<Client> {
    if (!this.clientP) {
      this.clientP = connectTemporal(this.opts.address, { timeoutMs: this.opts.connectTimeoutMs }).then(
        (connection) => new Client({ connection, namespace: this.namespace }),
      );
      this.clientP.catch(() => (this.clientP = undefined));
    }
    return this.clientP;
  }

  /** Runs `fn` with the client, turning a lost server or a missing namespace into typed errors. */
  async withClient<T>(fn: (c: Client) => Promise<T>): Promise<T> {
    const c = await this.client();
    const timeout = this.opts.callTimeoutMs ?? CALL_TIMEOUT_MS;
    try {
      // A deadline on every call: a server that went away answers "unavailable" in seconds, not
      // after the SDK's ~20 s of retries.
      return await c.connection.withDeadline(Date.now() + timeout, () => fn(c));
    } catch (e) {
      if (isUnavailable(e)) {
        throw new TemporalUnavailableError(this.address, `lost the Temporal server at ${this.address} (${(e as Error).message}); is it running? Start one with: npm run stack`, { cause: e });
      }
      if (isDeadlineExceeded(e)) {
        throw new TemporalUnavailableError(this.address, `the Temporal server at ${this.address} did not answer within ${timeout / 1000} s; is it running? Start one with: npm run stack`, { cause: e });
      }
      if (/namespace .* not found/i.test((e as Error).message ?? '')) {
        throw new UsageError(`Temporal namespace "${this.namespace}" does not exist on ${this.address}`);
      }
      throw e;
    }
  }

  async close(): Promise<void> {
    const p = this.clientP;
    this.clientP = undefined;
    if (p) await (await p.catch(() => undefined))?.connection.close();
  }

  /** Parses and validates the config, then starts the run (and, unless detached, waits for it). */
  async startRun(recipe: string, rawConfig: unknown, sets: readonly string[] = [], opts: StartOptions = {}): Promise<StartedRun> {
    const config = prepareConfig(recipe, rawConfig, sets, opts.baseDir, opts.allowedRoots?.guard);
    // The resolver guarded the recipe's own path fields; this covers every other path-like key.
    opts.allowedRoots?.checkConfig(config);
    await checkModelLimits(config);
    await this.store.probe(); // the store the workers write to must work before a run is started
    const r = recipe as RecipeName;
    const runId = opts.runId !== undefined ? checkRunId(opts.runId) : newRunId(r);
    await this.startWorkflow(r, { runId, config });
    const final = opts.detach === false ? await this.watch(runId, opts) : undefined;
    return { runId, recipe: r, config, ...(final ? { final } : {}) };
  }

  private async startWorkflow(recipe: RecipeName, input: Omit<RunInput, 'recipe'>): Promise<void> {
    const queues = input.queues ?? this.opts.queues;
    if (queues) input = { ...input, queues };
    await this.withClient(async (c) => {
      try {
        await c.workflow.start(workflowType(recipe), {
          taskQueue: queues?.control ?? CONTROL_QUEUE,
          workflowId: input.runId,
          args: [{ ...input, recipe }],
          // A run id names one run forever: its store folder must never be shared by two runs.
          workflowIdReusePolicy: 'REJECT_DUPLICATE',
          memo: { recipe, parentRunId: input.parentRunId ?? null },
        });
      } catch (e) {
        if (e instanceof WorkflowExecutionAlreadyStartedError) throw new RunExistsError(input.runId);
        throw e;
      }
    });
  }

  private async describe(runId: string): Promise<WorkflowExecutionDescription> {
    checkRunId(runId);
    return this.withClient(async (c) => {
      try {
        return await c.workflow.getHandle(runId).describe();
      } catch (e) {
        if (e instanceof WorkflowNotFoundError) throw new RunNotFoundError(runId, this.namespace, this.address);
        throw e;
      }
    });
  }

  /** The run's state, its progress (from the workflow's query) and, once closed, its result or failure. */
  async getStatus(runId: string): Promise<RunView> {
    const d = await this.describe(runId);
    const view: RunView = {
      runId, recipe: recipeOf(d.type, d.memo), state: d.status.name, startTime: d.startTime.toISOString(),
      closeTime: d.closeTime?.toISOString() ?? null, parentRunId: (d.memo?.parentRunId as string | null) ?? null,
      progress: null, result: null, failure: null,
    };
    // Each step is an operation of its own (its own call deadline): a query no worker answers must
    // not use up the time of the calls after it.
    await this.withClient(async (c) => {
      try {
        // A closed run answers too (a worker replays it): the step it failed at is worth showing.
        const progress = await c.connection.withDeadline(Date.now() + QUERY_DEADLINE_MS, () => c.workflow.getHandle(runId).query(progressQuery));
        view.progress = progress;
        view.parentRunId = progress.parentRunId;
      } catch (e) {
        if (isUnavailable(e)) throw e;
        view.progressError = `no worker answered the progress query within ${QUERY_DEADLINE_MS / 1000} s (${(e as Error).message}); are the workers running?`;
      }
    });
    if (view.progress && d.status.name === 'RUNNING') {
      const none = await this.withClient((c) => this.noComputeWorker(c, d));
      if (none) view.progress.waiting = none;
      else if (view.progress.waiting) view.progress.waiting += waitingDetail(d);
    }
    if (d.status.name === 'COMPLETED') {
      view.result = (await this.withClient((c) => c.workflow.getHandle(runId).result())) as RunResult;
      if (view.result.status === 'stopped') view.state = 'STOPPED';
    } else if (d.status.name !== 'RUNNING') {
      view.failure = await this.withClient((c) => c.workflow.getHandle(runId).result().then(
        () => null,
        (e: unknown) => {
          if (isUnavailable(e) || isDeadlineExceeded(e)) throw e;
          return e instanceof WorkflowFailedError ? describeFailure(e) : { message: String(e), type: null, activity: null, chain: [] };
        },
      ));
      // Where resume-failed would start: the newest committed checkpoint in the store (verified when
      // resuming), which can differ from the last one the workflow recorded (pruned, or newer).
      const newest = (await listCheckpoints(this.store, runId).catch(() => []))[0];
      view.resumeFrom = newest ? { step: newest.step, uri: newest.uri } : null;
    }
    return view;
  }

  /**
   * A run whose activity waits to start while no compute worker polls the run's compute queue
   * waits for nothing that will come by itself: say so (and how to start one), so that it never
   * looks like an ordinary wait. Null when a worker polls, or nothing waits to start.
   */
  private async noComputeWorker(c: Client, d: WorkflowExecutionDescription): Promise<string | null> {
    const unstarted = d.raw.pendingActivities?.some((a) => Number(a.state) === PENDING_ACTIVITY_SCHEDULED || String(a.state).endsWith('SCHEDULED'));
    if (!unstarted) return null;
    const queue = this.opts.queues?.compute ?? COMPUTE_QUEUE;
    const pollers = await c.workflowService.describeTaskQueue({ namespace: this.namespace, taskQueue: { name: queue }, taskQueueType: TASK_QUEUE_TYPE_ACTIVITY })
      .then((r) => r.pollers?.length ?? 0, () => null);
    return pollers === 0 ? `waiting for a compute worker on ${queue}: none is polling; start one with npx tsx infra/workers/main.ts (ALIGN_QUEUES names the queues)` : null;
  }

  /** Polls getStatus until the run closes (or `signal` aborts, returning the last view). */
  async watch(runId: string, opts: Pick<StartOptions, 'onProgress' | 'pollMs' | 'signal'> = {}): Promise<RunView> {
    for (;;) {
      const view = await this.getStatus(runId);
      opts.onProgress?.(view);
      if (view.state !== 'RUNNING' || opts.signal?.aborted) return view;
      await sleep(opts.pollMs ?? 1000, opts.signal);
    }
  }

  /**
   * Our runs, newest first. A run that continued as new is listed once, by its current execution
   * (its start time is that execution's).
   */
  async listRuns(opts: { limit?: number } = {}): Promise<RunSummary[]> {
    const limit = opts.limit ?? 20;
    const types = RUN_TYPES.map((t) => `'${t}'`).join(', ');
    return this.withClient(async (c) => {
      const out: RunSummary[] = [];
      const query = `WorkflowType IN (${types}) AND ExecutionStatus != 'ContinuedAsNew'`;
      for await (const w of c.workflow.list({ query, pageSize: Math.min(limit, 1000) })) {
        out.push({
          runId: w.workflowId, recipe: recipeOf(w.type, w.memo), state: w.status.name, startTime: w.startTime.toISOString(),
          closeTime: w.closeTime?.toISOString() ?? null, parentRunId: (w.memo?.parentRunId as string | null) ?? null,
        });
        if (out.length >= limit) break;
      }
      // A gracefully stopped run closes as COMPLETED in Temporal: its result says which it was.
      await Promise.all(out.filter((r) => r.state === 'COMPLETED').map(async (r) => {
        const result = (await c.workflow.getHandle(r.runId).result().catch(() => null)) as RunResult | null;
        if (result?.status === 'stopped') r.state = 'STOPPED';
      }));
      return out.sort((a, b) => b.startTime.localeCompare(a.startTime));
    });
  }

  pause(runId: string) {
    return this.signalRun(runId, 'pause');
  }

  resume(runId: string) {
    return this.signalRun(runId, 'resume');
  }

  /** Graceful: the run finishes its current chunk (and checkpoint) and ends as 'stopped'. */
  cancel(runId: string) {
    return this.signalRun(runId, 'cancel');
  }

  private async signalRun(runId: string, op: 'pause' | 'resume' | 'cancel'): Promise<{ runId: string; requested: typeof op }> {
    const d = await this.describe(runId);
    if (d.status.name !== 'RUNNING') throw new RunStateError(runId, d.status.name, `cannot ${op} run ${runId}: it is ${d.status.name.toLowerCase()}`);
    const signal = { pause: pauseSignal, resume: resumeSignal, cancel: stopSignal }[op];
    await this.withClient(async (c) => {
      try {
        await c.workflow.getHandle(runId).signal(signal);
      } catch (e) {
        // It closed between describe and signal.
        if (e instanceof WorkflowNotFoundError) throw new RunStateError(runId, 'COMPLETED', `cannot ${op} run ${runId}: it has just closed`);
        throw e;
      }
    });
    return { runId, requested: op };
  }

  /** For a stuck run (no worker answers, a chunk never returns): ends it at once, as TERMINATED. */
  async terminate(runId: string, reason = 'terminated with align terminate'): Promise<{ runId: string; requested: 'terminate' }> {
    const d = await this.describe(runId);
    if (d.status.name !== 'RUNNING') throw new RunStateError(runId, d.status.name, `cannot terminate run ${runId}: it is ${d.status.name.toLowerCase()}`);
    await this.withClient((c) => c.workflow.getHandle(runId).terminate(reason));
    return { runId, requested: 'terminate' };
  }

  /** The input the run's current execution was started with (its config, lineage, settings). */
  private async runInput(runId: string): Promise<RunInput> {
    return this.withClient(async (c) => {
      const history = await c.workflow.getHandle(runId).fetchHistory();
      const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
      if (!payload) throw new RunStateError(runId, 'UNKNOWN', `run ${runId}: its start event has no input`);
      return defaultPayloadConverter.fromPayload<RunInput>(payload);
    });
  }

  /**
   * Starts a NEW run from a failed (or terminated, timed-out) run's last valid checkpoint, with
   * the same config and `parentRunId` set to the failed run.
   */
  async resumeFailed(runId: string, opts: Omit<StartOptions, 'baseDir'> = {}): Promise<ResumedRun> {
    const d = await this.describe(runId);
    const state = d.status.name;
    if (state === 'RUNNING') {
      throw new RunStateError(runId, state, `run ${runId} is still running; resume-failed resumes a run that failed. If it is stuck, end it first with: align terminate ${runId}`);
    }
    if (state === 'COMPLETED') {
      throw new RunStateError(runId, state, `run ${runId} completed, it did not fail; to get its model: align export ${runId} --out DIR`);
    }
    if (!RUN_TYPES.includes(d.type)) throw new RunStateError(runId, state, `run ${runId} is a ${d.type}, not a training run`);
    const input = await this.runInput(runId);
    // The memo names the recipe of runs started here; a run started by another client has it in its input.
    const recipe = recipeOf(d.type, d.memo) ?? (isRecipeName(String(input.recipe)) ? input.recipe : null);
    if (!recipe) throw new RunStateError(runId, state, `run ${runId}: its input names no known recipe (${JSON.stringify(input.recipe)})`);
    const config = parseRecipeConfig(recipe, input.config); // today's schema must still accept it
    const found = await findResumePoint(this.store, runId, input);
    if (!found.checkpoint) {
      throw new NoCheckpointError(runId, found.skipped, `run ${runId} has no valid checkpoint in ${this.store.uri} to resume from; start it again from the base model: align run ${recipe} --config …`);
    }
    const newId = opts.runId !== undefined ? checkRunId(opts.runId) : newRunId(recipe);
    // A PPO critic on a worker of its own checkpoints as `<run>-critic`, at the same iterations.
    const critic = await verifyCheckpoint(this.store, `${runId}-critic`, found.checkpoint.step).then((c) => c.ref, () => null);
    await this.startWorkflow(recipe, {
      runId: newId, config, resumeFrom: found.checkpoint, parentRunId: runId, ...(critic ? { resumeCritic: critic } : {}),
      // The same fleet and settings as the failed run.
      ...(input.queues ? { queues: input.queues } : {}),
      ...(input.heartbeatSeconds !== undefined ? { heartbeatSeconds: input.heartbeatSeconds } : {}),
      ...(input.storeRetrySeconds !== undefined ? { storeRetrySeconds: input.storeRetrySeconds } : {}),
    });
    const final = opts.detach === false ? await this.watch(newId, opts) : undefined;
    return { runId: newId, parentRunId: runId, resumeFrom: found.checkpoint, skipped: found.skipped, ...(final ? { final } : {}) };
  }

  /** Writes the model files of a checkpoint (default: the newest valid one) as a Hugging Face folder. */
  async exportRun(runId: string, opts: { step?: number; outDir: string }): Promise<ExportResult> {
    checkRunId(runId);
    try {
      return await exportCheckpoint(this.store, runId, opts);
    } catch (e) {
      // No checkpoint at all may mean a mistyped run id: say so when Temporal knows no such run.
      if (e instanceof NoCheckpointError && e.skipped.length === 0 && opts.step === undefined) {
        await this.describe(runId).catch((err: unknown) => {
          if (err instanceof RunNotFoundError) throw new RunNotFoundError(runId, this.namespace, this.address, this.store.uri);
        });
      }
      throw e;
    }
  }
}
