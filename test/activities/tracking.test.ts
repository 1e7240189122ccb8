/**
 * The trackers the metrics ledger is copied to: TensorBoard event files (CRC-32C framing and the
 * Event protobuf, checked byte by byte and read back), one file per chunk that a retry rewrites,
 * and the MLflow sink against an HTTP server speaking MLflow's REST API: one experiment, one run
 * found again by its tag, every metric with its step, the token sent; a tracker that is down is a
 * warning, never a failed chunk.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventFileKey, scalarsOf, trackMetrics, type LedgerRow } from '../../activities/tracking/index.js';
import { crc32c, eventFile, maskedCrc32c } from '../../activities/tracking/tensorboard.js';
import { getRecipe, parseRecipeConfig } from '../../algorithms/recipes/index.js';
import { openStore } from '../../store/index.js';
import { startFakeMlflow, type FakeMlflow } from '../helpers/fake-mlflow.js';
import { readEventFile } from '../helpers/tfevents.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'aligner-tracking-'));
const store = openStore(`file://${path.join(tmp, 'store')}`);
let mlflow: FakeMlflow;
beforeAll(async () => {
  mlflow = await startFakeMlflow();
});
afterAll(async () => {
  await mlflow?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const rows: LedgerRow[] = [
  { type: 'step', step: 1, loss: 2.5, lr: 0.001, gradNorm: 3, tokens: 64, metrics: { reward: 0.25 } },
  { type: 'step', step: 2, loss: 1.5, lr: 0.0005, gradNorm: 2, tokens: 64, metrics: { reward: 0.5 } },
  { type: 'validation', step: 2, loss: 1.75, metrics: { accuracy: 0.75 } },
];

describe('TensorBoard event files', () => {
  it('CRC-32C and its mask: the standard check value, and the mask by hand', () => {
    expect(crc32c(new TextEncoder().encode('123456789'))).toBe(0xe3069283); // RFC 3720 B.4 check value
    // mask(c) = rotr15(c) + 0xa282ead8: rotr15(0xe3069283) = 0x2507c60d; + 0xa282ead8 = 0xc78ab0e5
    expect(maskedCrc32c(new TextEncoder().encode('123456789'))).toBe(0xc78ab0e5);
  });

  it('the version event, byte by byte: a 24-byte Event framed as a TFRecord', () => {
    const file = eventFile([], 0);
    // Event{wall_time: 0 (field 1, fixed64), file_version: "brain.Event:2" (field 3, 13 bytes)}
    const data = [0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0x1a, 13, ...new TextEncoder().encode('brain.Event:2')];
    expect(file.length).toBe(8 + 4 + 24 + 4);
    expect([...file.subarray(0, 8)]).toEqual([24, 0, 0, 0, 0, 0, 0, 0]); // uint64 length, little-endian
    expect([...file.subarray(12, 36)]).toEqual(data);
    expect(new DataView(file.buffer, file.byteOffset, file.byteLength).getUint32(36, true)).toBe(maskedCrc32c(Uint8Array.from(data)));
  });

  it('scalars read back by step and tag (float32), with a version event first', () => {
    const events = readEventFile(eventFile(scalarsOf(rows), 1796000000.5));
    expect(events[0]).toMatchObject({ fileVersion: 'brain.Event:2', wallTime: 1796000000.5 });
    expect(events.slice(1).map((e) => [e.step, Object.fromEntries(e.values.map((v) => [v.tag, v.value]))])).toEqual([
      [1, { 'train/loss': 2.5, 'train/lr': Math.fround(0.001), 'train/grad_norm': 3, 'train/tokens': 64, 'train/reward': 0.25 }],
      [2, { 'train/loss': 1.5, 'train/lr': Math.fround(0.0005), 'train/grad_norm': 2, 'train/tokens': 64, 'train/reward': 0.5, 'validation/loss': 1.75, 'validation/accuracy': 0.75 }],
    ]);
  });

  it('one file per ledger chunk under runs/<run>/tensorboard/, rewritten (not appended) when the chunk is retried; names sort in reading order', async () => {
    const config = { tracking: { tensorboard: true } };
    await trackMetrics(store, { runId: 'tb-run', step: 2, kind: 'steps', rows, config });
    await trackMetrics(store, { runId: 'tb-run', step: 2, kind: 'steps', rows, config }); // the retried chunk
    await trackMetrics(store, { runId: 'tb-run', step: 2, kind: 'eval', rows: [{ type: 'evaluation', step: 2, metrics: { evalReward: 0.5 } }], config });
    await trackMetrics(store, { runId: 'tb-run', step: 10, kind: 'steps', rows: [{ ...rows[0], step: 10 } as LedgerRow], config });
    const dir = path.join(tmp, 'store/runs/tb-run/tensorboard');
    const files = readdirSync(dir).sort();
    expect(files).toEqual(['events.out.tfevents.0000000002.1-steps', 'events.out.tfevents.0000000002.2-eval', 'events.out.tfevents.0000000010.1-steps']);
    expect(eventFileKey('tb-run', 2, 'steps')).toBe(`runs/tb-run/tensorboard/${files[0]}`);
    expect(readEventFile(readFileSync(path.join(dir, files[0]))).filter((e) => e.values.length).map((e) => e.step)).toEqual([1, 2]);
  });

  it('no tracking config: nothing is written', async () => {
    await trackMetrics(store, { runId: 'untracked', step: 2, kind: 'steps', rows, config: {} });
    expect(await store.list('runs/untracked/')).toEqual([]);
  });
});

describe('the tracking config', () => {
  it('an MLflow address without http(s):// and an unknown tracker are refused, naming the field', () => {
    const ex = getRecipe('sft').example as Record<string, unknown>;
    expect(() => parseRecipeConfig('sft', { ...ex, tracking: { mlflow: { uri: 'localhost:5000' } } })).toThrow(/tracking\.mlflow\.uri.*http\(s\):\/\/ address of an MLflow tracking server/);
    expect(() => parseRecipeConfig('sft', { ...ex, tracking: { wandb: true } })).toThrow(/wandb/);
    expect(parseRecipeConfig('sft', { ...ex, tracking: { mlflow: { uri: 'http://mlflow:5000' } } }).tracking).toEqual({ tensorboard: false, mlflow: { uri: 'http://mlflow:5000', experiment: 'aligner' } });
  });
});

describe('the MLflow sink', () => {
  it('creates the experiment and the run once, finds the run again by its tag, logs params once and every metric with its step, sends the token', async () => {
    process.env.MLFLOW_TRACKING_TOKEN = 'mlflow-token-1';
    try {
      const config = { model: '/models/llama', trainer: { lr: 0.001 }, tracking: { tensorboard: false, mlflow: { uri: mlflow.uri, experiment: 'exp-a' } } };
      await trackMetrics(store, { runId: 'ml-run', step: 2, kind: 'steps', rows, config });
      await trackMetrics(store, { runId: 'ml-run', step: 3, kind: 'steps', rows: [{ ...rows[0], step: 3 } as LedgerRow], config });
      expect(mlflow.experiments).toEqual([{ id: '1', name: 'exp-a' }]);
      expect(mlflow.runs).toHaveLength(1);
      const run = mlflow.runs[0];
      expect(run.tags).toMatchObject({ 'aligner.run': 'ml-run', 'mlflow.runName': 'ml-run' });
      expect(run.params).toEqual({ model: '/models/llama', 'trainer.lr': '0.001' });
      expect(run.metrics.filter((m) => m.key === 'train/loss').map((m) => [m.step, m.value])).toEqual([[1, 2.5], [2, 1.5], [3, 2.5]]);
      expect(run.metrics.find((m) => m.key === 'validation/accuracy')).toMatchObject({ step: 2, value: 0.75 });
      expect(new Set(mlflow.auth)).toEqual(new Set(['Bearer mlflow-token-1']));
    } finally {
      delete process.env.MLFLOW_TRACKING_TOKEN;
    }
  });

  it('a tracker that is down is a warning naming it, and the chunk goes on', async () => {
    const warnings: string[] = [];
    const config = { tracking: { tensorboard: false, mlflow: { uri: 'http://127.0.0.1:9', experiment: 'x' } } };
    await trackMetrics(store, { runId: 'ml-down', step: 2, kind: 'steps', rows, config }, (m) => warnings.push(m));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^run ml-down: metrics of step 2 not copied to a tracker \(the metrics ledger has them\): MLflow at http:\/\/127\.0\.0\.1:9 is unreachable/);
  });
});
