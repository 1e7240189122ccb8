/**
 * The tracker copies of a real run (real Temporal, real workers, the tiny model): with
 * `tracking.tensorboard` and `tracking.mlflow` set, an SFT run leaves one event file per chunk
 * whose scalars are exactly the metrics ledger's, and the MLflow server (an HTTP server speaking
 * its REST API) gets every step's loss once, under one run.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import YAML from 'yaml';
import { parseRecipeConfig } from '../../algorithms/recipes/index.js';
import { readMetricsHistory } from '../../store/metrics-ledger.js';
import { startFakeMlflow, type FakeMlflow } from '../helpers/fake-mlflow.js';
import { readEventFile } from '../helpers/tfevents.js';
import { crashFixture, root, slowIt, uniqueId } from './helpers.js';

const fixture = crashFixture('tracking');
let mlflow: FakeMlflow;
beforeAll(async () => {
  mlflow = await startFakeMlflow();
});
afterAll(async () => {
  await mlflow?.close();
});

describe('tracking sinks on a real run', () => {
  slowIt('TensorBoard files hold exactly the ledger\'s steps, one file per chunk; MLflow gets each step\'s loss once', async () => {
    const runId = uniqueId('tracked-sft');
    const raw = YAML.parse(readFileSync(path.join(root, 'examples/sft.yaml'), 'utf8'));
    const config = parseRecipeConfig('sft', {
      ...raw, model: path.join(root, raw.model), data: { ...raw.data, train: path.join(root, raw.data.train) },
      trainer: { ...raw.trainer, maxSteps: 6, checkpointEvery: 2, valEvery: 3 },
      tracking: { tensorboard: true, mlflow: { uri: mlflow.uri, experiment: 'e2e' } },
    });
    await fixture.client.workflow.execute('trainingWorkflow', { taskQueue: fixture.REF.control, workflowId: runId, args: [{ runId, recipe: 'sft', config, queues: fixture.REF }] });

    const ledger = await readMetricsHistory(fixture.store, runId);
    expect(ledger.steps.map((s) => s.step)).toEqual([1, 2, 3, 4, 5, 6]);
    const dir = path.join(fixture.tmp, 'store/runs', runId, 'tensorboard');
    const files = readdirSync(dir).sort();
    expect(files).toEqual([2, 4, 6].map((s) => `events.out.tfevents.${String(s).padStart(10, '0')}.1-steps`));
    const events = files.flatMap((f) => readEventFile(readFileSync(path.join(dir, f)))).filter((e) => e.values.length > 0);
    const lossOf = (e: (typeof events)[number]) => e.values.find((v) => v.tag === 'train/loss')?.value;
    expect(events.filter((e) => lossOf(e) !== undefined).map((e) => [e.step, lossOf(e)])).toEqual(ledger.steps.map((s) => [s.step, Math.fround(s.loss)]));
    const validated = events.filter((e) => e.values.some((v) => v.tag === 'validation/loss')).map((e) => e.step);
    expect(validated).toEqual(ledger.validations.map((v) => v.step));

    const run = mlflow.runs.find((r) => r.tags['aligner.run'] === runId)!;
    expect(run.metrics.filter((m) => m.key === 'train/loss').map((m) => [m.step, m.value])).toEqual(ledger.steps.map((s) => [s.step, s.loss]));
    expect(run.params['trainer.maxSteps']).toBe('6');
  });
});
