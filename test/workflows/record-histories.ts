/**
 * Records one workflow history per recipe for the replay test (test/workflows/histories/*.json).
 * Re-record only when a workflow change is intended to be incompatible (and put it behind
 * `patched()` otherwise): TEMPORAL_ADDRESS=… npx tsx test/workflows/record-histories.ts
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { NativeConnection, Worker } from '@temporalio/worker';
import { parseRecipeConfig } from '../../algorithms/recipes/index.js';
import { connectTemporal, defaultTemporalAddress } from '../../infra/temporal.js';
import { COMPUTE_QUEUE, CONTROL_QUEUE } from '../../workflows/training.js';
import { fakeActivities } from './fake-activities.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const connection = await NativeConnection.connect({ address: defaultTemporalAddress() });
const client = new Client({ connection: await connectTemporal(defaultTemporalAddress()) });
const own = `${COMPUTE_QUEUE}-record`;
const { acts } = fakeActivities(own);
const workers = await Promise.all([
  Worker.create({ connection, taskQueue: CONTROL_QUEUE, workflowsPath: path.resolve(here, '../../workflows/index.ts'), activities: acts }),
  Worker.create({ connection, taskQueue: COMPUTE_QUEUE, activities: acts }),
  Worker.create({ connection, taskQueue: own, activities: acts }),
]);
const running = workers.map((w) => w.run());
mkdirSync(path.join(here, 'histories'), { recursive: true });
// The current training loop (every offline recipe); sft.json and dpo.json are kept from before the
// recipe table, so that the patched() branches stay tested.
{
  const config = parseRecipeConfig('dpo', { model: 'm', data: { train: 't.jsonl' }, trainer: { maxSteps: 6, checkpointEvery: 2, valEvery: 2, warmupSteps: 0 } });
  const runId = `record-training-${Date.now()}`;
  const handle = await client.workflow.start('trainingWorkflow', { taskQueue: CONTROL_QUEUE, workflowId: runId, args: [{ runId, recipe: 'dpo', config, heartbeatSeconds: 5 }] });
  await handle.result();
  writeFileSync(path.join(here, 'histories', 'training.json'), historyToJSON(await handle.fetchHistory()));
  console.log('recorded training');
}
workers.forEach((w) => w.shutdown());
await Promise.all(running);
await connection.close();
await client.connection.close();
