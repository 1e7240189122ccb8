/**
 * A worker process: `tsx infra/workers/main.ts --role compute|control|all [--id NAME]`.
 * Temporal address from --address or TEMPORAL_ADDRESS; the run store from --store or
 * ALIGN_STORE_URI (default the local folder .state/store), S3 settings from ALIGN_S3_*.
 */
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { RunStore } from '../../store/run-store.js';
import { defaultStoreUri } from '../runs.js';
import { openStore, StoreError } from '../../store/index.js';
import { AlignerError } from '../../kernels/errors.js';
import { connectTemporal, defaultTemporalAddress, TemporalUnavailableError } from '../temporal.js';
import { startWorkers } from './worker.js';
import type { WorkerRole } from './worker.js';


const { values } = parseArgs({
  options: {
    role: { type: 'string', default: 'all' },
    id: { type: 'string' },
    address: { type: 'string' },
    store: { type: 'string' },
    queues: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(`tsx infra/workers/main.ts [--role all|control|compute] [--id NAME] [--address HOST:PORT] [--store URI]
  --role     control: workflows + light activities; compute: training; all: both (default)
  --id       this compute worker's name (its own task queue is align-cpu-<id>); default host-pid
  --address  Temporal server (default TEMPORAL_ADDRESS or 127.0.0.1:7233)
  --store    run store URI, file:///… or s3://bucket/prefix (default ALIGN_STORE_URI or .state/store)
  --queues   CONTROL,COMPUTE task queue names of an isolated fleet (default align-control,align-cpu)`);
  process.exit(0);
}
/** A problem a person can fix: one line on stderr naming it, no stack trace, exit 2 (usage) or 3 (a server). */
function fail(message: string, code: number): never {
  console.error(`worker: ${message}`);
  process.exit(code);
}

const role = values.role as WorkerRole;
if (!['all', 'control', 'compute'].includes(role)) fail(`--role must be all, control or compute, got ${role}`, 2);
const storeUri = values.store ?? defaultStoreUri();
const address = values.address ?? defaultTemporalAddress();
const [control, compute] = (values.queues ?? process.env.ALIGN_QUEUES ?? '').split(',');
const queues = control && compute ? { control, compute } : undefined;
let workers: Awaited<ReturnType<typeof startWorkers>>;
try {
  const store = new RunStore(openStore(storeUri), path.join(os.tmpdir(), 'aligner-input-cache'));
  // Reach the server first (5 s), so that a wrong address is named at once, not as a connect stack.
  await (await connectTemporal(address)).close();
  workers = await startWorkers({ address, store, role, workerId: values.id, queues });
} catch (e) {
  if (e instanceof TemporalUnavailableError) fail(`${e.message} (--address or TEMPORAL_ADDRESS)`, 3);
  if (e instanceof StoreError) fail(`the run store ${storeUri} cannot be used: ${e.message} (--store or ALIGN_STORE_URI)`, 3);
  if (e instanceof AlignerError) fail(e.message, 2);
  throw e;
}
console.log(JSON.stringify({ event: 'worker-started', role, queue: workers.workerQueue, store: storeUri, pid: process.pid }));
// SIGTERM is a notice (a spot reclaim, a Kubernetes drain): training chunks commit at the step they
// are on and hand their runs back before the worker exits. SIGINT (Ctrl-C) does the same.
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    console.log(JSON.stringify({ event: 'worker-draining', signal: sig, pid: process.pid }));
    void workers.preempt(`${sig} to pid ${process.pid}`);
  });
}
await workers.done;
