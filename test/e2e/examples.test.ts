/**
 * Every config in examples/ runs: started through the run service as `align run <recipe>
 * --config examples/<name>.yaml` would start it (relative paths from the repository root), with a
 * few steps only, on a real Temporal server and real activities.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import YAML from 'yaml';
import { getRecipe } from '../../algorithms/recipes/index.js';
import { exampleFiles } from '../../examples/generate.js';
import { RunService } from '../../infra/runs.js';
import { defaultTemporalAddress } from '../../infra/temporal.js';
import { startWorkers } from '../../infra/workers/worker.js';
import type { RunningWorkers } from '../../infra/workers/worker.js';
import { openStore } from '../../store/index.js';
import { RunStore } from '../../store/run-store.js';
import { root, slowIt, uniqueId } from './helpers.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'aligner-examples-'));
const storeUri = `file://${path.join(tmp, 'store')}`;
const queues = { control: 'align-control-examples', compute: 'align-cpu-examples' };
let workers: RunningWorkers;
let service: RunService;

beforeAll(async () => {
  workers = await startWorkers({ address: defaultTemporalAddress(), store: new RunStore(openStore(storeUri), path.join(tmp, 'cache')), role: 'all', workerId: uniqueId('examples'), queues });
  service = new RunService({ address: defaultTemporalAddress(), storeUri, queues });
});
afterAll(async () => {
  await service?.close();
  await workers?.shutdown();
  rmSync(tmp, { recursive: true, force: true });
});

describe('examples/', () => {
  for (const [name, { recipe }] of exampleFiles()) {
    slowIt(`examples/${name}.yaml runs (4 steps) and reports its headline before and after`, async () => {
      const raw = YAML.parse(readFileSync(path.join(root, 'examples', `${name}.yaml`), 'utf8')) as unknown;
      // An online run reports every iteration (its rollouts' reward); an offline one validates before and after.
      const online = getRecipe(recipe).kind === 'online';
      const sets = online ? ['trainer.maxSteps=4'] : ['trainer.maxSteps=4', 'trainer.checkpointEvery=2', 'trainer.valEvery=4', 'trainer.warmupSteps=0'];
      const run = await service.startRun(recipe, raw, sets, { baseDir: root, detach: false, pollMs: 200 });
      const view = run.final!;
      expect(view.state, JSON.stringify(view.failure)).toBe('COMPLETED');
      const validations = view.result!.validations;
      expect(validations.map((v) => v.step)).toEqual(online ? [1, 2, 3, 4] : [0, 4]);
      expect(validations[1].headline.metric).toBeTruthy();
      expect(view.result!.exportUri).toMatch(/\/export\/$/);
    });
  }
});
