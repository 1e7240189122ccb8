/**
 * Workers: the control worker runs workflows and light activities on `align-control`; a compute
 * worker takes runs from the shared `align-cpu` queue and trains them on its own queue
 * `align-cpu-<id>`, where the run's model stays resident between chunks.
 */
import os from 'node:os';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createActivities } from '../../activities/index.js';
import type { RunStorePort } from '../../store/run-store-port.js';
import type { Queues } from '../../activities/types.js';
import { ResidentRuns } from '../../activities/train.js';
import { COMPUTE_QUEUE, CONTROL_QUEUE } from '../../workflows/training.js';
import { workflowCode } from './workflow-code.js';
import { Drain } from '../../activities/drain.js';

export type WorkerRole = 'control' | 'compute' | 'all';

export interface WorkerOptions {
  address: string;
  namespace?: string;
  store: RunStorePort;
  role: WorkerRole;
  /** Unique per compute worker; names its own task queue. Default host-pid. */
  workerId?: string;
  /** Task queue names; default align-control / align-cpu (runs must be started with the same). */
  queues?: Queues;
  /** Runs this worker trains at once. Default ALIGN_WORKER_SLOTS, else defaultSlots(). */
  slots?: number;
}

/**
 * Slots from the machine: one per ALIGN_NUM_THREADS cores (a CPU run uses every thread it is
 * given, by default all cores: so 1), and at most one per 8 GiB of memory.
 */
export function defaultSlots(): number {
  const cores = os.cpus().length;
  const threads = Number(process.env.ALIGN_NUM_THREADS) || cores;
  return Math.max(1, Math.min(Math.floor(cores / threads), Math.floor(os.totalmem() / 2 ** 33)));
}

export interface RunningWorkers {
  workerQueue: string;
  /** The models this worker holds, by run (for tests and status). */
  resident: ResidentRuns;
  /** Resolves when every worker has stopped. */
  done: Promise<void>;
  shutdown(): Promise<void>;
  /**
   * Being taken away (SIGTERM): take no new run, let each chunk in flight finish the step it is on,
   * commit a checkpoint there and hand its run back, then stop.
   */
  preempt(reason: string): Promise<void>;
}

/** How long a preempted worker's activities may take to commit and hand back before they are cancelled. */
const SHUTDOWN_GRACE = '2 minutes';


let runtimeInstalled = false;

/** Worker logs at ERROR unless ALIGN_WORKER_LOG says otherwise (the SDK's INFO lines drown progress output). */
function installRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  try {
    const level = (process.env.ALIGN_WORKER_LOG ?? 'ERROR') as 'TRACE' | 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';
    Runtime.install({ logger: new DefaultLogger(level) });
  } catch {
    // Already installed by the embedding program: keep its choice.
  }
}

export async function startWorkers(o: WorkerOptions): Promise<RunningWorkers> {
  installRuntime();
  await o.store.store.probe(); // a store that cannot work fails the worker now, not its first run
  const connection = await NativeConnection.connect({ address: o.address });
  const namespace = o.namespace ?? 'default';
  const queues = o.queues ?? { control: CONTROL_QUEUE, compute: COMPUTE_QUEUE };
  const workerQueue = `${queues.compute}-${o.workerId ?? `${os.hostname()}-${process.pid}`}`;
  const resident = new ResidentRuns();
  const slots = o.slots ?? (Number(process.env.ALIGN_WORKER_SLOTS) || defaultSlots());
  const drain = new Drain();
  const activities = createActivities({ store: o.store, workerQueue, runs: resident, slots, drain });
  const workers: Worker[] = [];
  if (o.role !== 'compute') {
    workers.push(await Worker.create({ connection, namespace, taskQueue: queues.control, ...workflowCode(), activities }));
  }
  if (o.role !== 'control') {
    // The shared queue: placements and precompute, one at a time. The worker's own queue: one
    // chunk per slot, so a placed run never waits behind another run's chunk.
    const compute = { connection, namespace, activities, shutdownGraceTime: SHUTDOWN_GRACE };
    workers.push(await Worker.create({ ...compute, taskQueue: queues.compute, maxConcurrentActivityTaskExecutions: 1 }));
    workers.push(await Worker.create({ ...compute, taskQueue: workerQueue, maxConcurrentActivityTaskExecutions: slots }));
  }
  const done = Promise.all(workers.map((w) => w.run())).then(async () => {
    await connection.close();
  });
  const shutdown = async () => {
    for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    await done;
  };
  return {
    workerQueue,
    resident,
    done,
    shutdown,
    async preempt(reason: string) {
      drain.request(reason);
      await shutdown();
    },
  };
}
