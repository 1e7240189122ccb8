/**
 * Records the history of each online workflow with the real activities on the tiny model (two
 * iterations each) for the replay test (test/workflows/histories/<recipe>.json). Re-record only
 * for an intended incompatible change (otherwise put it behind `patched()`):
 *   TEMPORAL_ADDRESS=… npx tsx test/workflows/record-online-histories.ts
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { getRecipe, parseRecipeConfig, RECIPE_NAMES } from '../../algorithms/recipes/index.js';
import { connectTemporal, defaultTemporalAddress } from '../../infra/temporal.js';
import { startWorkers } from '../../infra/workers/worker.js';
import { openStore } from '../../store/index.js';
import { RunStore } from '../../store/run-store.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'aligner-record-'));
const queues = { control: 'align-control-record-online', compute: 'align-cpu-record-online' };
const workers = await startWorkers({ address: defaultTemporalAddress(), store: new RunStore(openStore(`file://${tmp}/store`), `${tmp}/cache`), role: 'all', workerId: 'record', queues });
const client = new Client({ connection: await connectTemporal(defaultTemporalAddress()) });
try {
  for (const recipe of RECIPE_NAMES.filter((n) => getRecipe(n).kind === 'online')) {
    const ex = getRecipe(recipe).example as Record<string, Record<string, unknown>>;
    const config = parseRecipeConfig(recipe, {
      ...ex, model: path.join(root, 'models/fixtures/tiny-llama'), data: { train: path.join(root, 'data/demo/prompts.jsonl') },
      reward: { function: path.join(root, 'examples/rewards/letter-e.ts') }, trainer: { ...ex.trainer, maxSteps: 2 },
    });
    const runId = `record-${recipe}-${Date.now()}`;
    const handle = await client.workflow.start(`${recipe}Workflow`, { taskQueue: queues.control, workflowId: runId, args: [{ runId, recipe, config, queues }] });
    await handle.result();
    writeFileSync(path.join(here, 'histories', `${recipe}.json`), historyToJSON(await handle.fetchHistory()));
    console.log(`recorded ${recipe}`);
  }
} finally {
  await workers.shutdown();
  await client.connection.close();
  rmSync(tmp, { recursive: true, force: true });
}
