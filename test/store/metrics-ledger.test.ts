/**
 * The metrics ledger on a real filesystem store: each step once when a chunk is written again
 * (a retried or redone chunk), validations and evaluations by step, and the history of a run
 * resumed from another run's checkpoint: the ancestor's up to that checkpoint, then its own.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FsStore } from '../../store/fs-store.js';
import { checkpointOrigin, metricsChunkKey, readMetricsHistory, writeEvaluation, writeMetricsChunk } from '../../store/metrics-ledger.js';
import type { StepRow } from '../../store/metrics-ledger.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'aligner-metrics-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const store = new FsStore(tmp);
const ckpt = (runId: string, step: number) => ({ uri: store.uriOf(`runs/${runId}/checkpoints/${step}/`), step });
const stepRow = (step: number, loss: number): StepRow => ({ type: 'step', step, loss, lr: 1e-3, gradNorm: 1, tokens: 10, metrics: {} });
const steps = (from: number, to: number, loss: (s: number) => number) => Array.from({ length: to - from }, (_, i) => stepRow(from + i + 1, loss(from + i + 1)));

describe('metrics ledger', () => {
  it('a chunk written again replaces itself: each step once, in order', async () => {
    await writeMetricsChunk(store, 'a', { fromStep: 0, toStep: 4, parent: null }, [{ type: 'validation', step: 0, loss: 3, metrics: {} }, ...steps(0, 4, (s) => 10 - s)]);
    await writeMetricsChunk(store, 'a', { fromStep: 4, toStep: 8, parent: ckpt('a', 4) }, steps(4, 8, (s) => 10 - s));
    await writeMetricsChunk(store, 'a', { fromStep: 4, toStep: 8, parent: ckpt('a', 4) }, [...steps(4, 8, (s) => 10 - s), { type: 'validation', step: 8, loss: 1, metrics: { accuracy: 0.5 } }]);
    await writeEvaluation(store, 'a', { step: 8, metrics: { evalReward: 2 } });
    const h = await readMetricsHistory(store, 'a');
    expect(h.steps.map((s) => [s.step, s.loss])).toEqual([[1, 9], [2, 8], [3, 7], [4, 6], [5, 5], [6, 4], [7, 3], [8, 2]]);
    expect(h.validations.map((v) => v.step)).toEqual([0, 8]);
    expect(h.evaluations).toEqual([{ type: 'evaluation', step: 8, metrics: { evalReward: 2 } }]);
    expect(h.lineage).toEqual([{ runId: 'a', fromStep: 0, toStep: 8 }]);
  });

  it('a run resumed from another run\'s checkpoint continues its history; the steps past that checkpoint are the new run\'s', async () => {
    // b trained to 8 but only its checkpoint at 4 is good; c resumed from it and trained to 10.
    await writeMetricsChunk(store, 'b', { fromStep: 0, toStep: 4, parent: null }, steps(0, 4, () => 1));
    await writeMetricsChunk(store, 'b', { fromStep: 4, toStep: 8, parent: ckpt('b', 4) }, steps(4, 8, () => 1));
    await writeMetricsChunk(store, 'c', { fromStep: 4, toStep: 6, parent: ckpt('b', 4) }, steps(4, 6, () => 2));
    await writeMetricsChunk(store, 'c', { fromStep: 6, toStep: 10, parent: ckpt('c', 6) }, steps(6, 10, () => 2));
    const h = await readMetricsHistory(store, 'c');
    expect(h.steps.map((s) => `${s.step}:${s.loss}`)).toEqual(['1:1', '2:1', '3:1', '4:1', '5:2', '6:2', '7:2', '8:2', '9:2', '10:2']);
    expect(h.lineage).toEqual([{ runId: 'b', fromStep: 0, toStep: 4 }, { runId: 'c', fromStep: 4, toStep: 10 }]);
    // A run that has written nothing yet has an empty history.
    expect(await readMetricsHistory(store, 'never')).toEqual({ steps: [], validations: [], evaluations: [], lineage: [{ runId: 'never', fromStep: 0, toStep: 0 }] });
  });

  it('a damaged line names the chunk and the line; checkpoint URIs give their run and step', async () => {
    await writeMetricsChunk(store, 'd', { fromStep: 0, toStep: 2, parent: null }, steps(0, 2, () => 1));
    writeFileSync(path.join(tmp, metricsChunkKey('d', 2)), '{"type":"chunk","fromStep":0,"toStep":2,"parent":null}\n{"type":"st');
    await expect(readMetricsHistory(store, 'd')).rejects.toThrow(/metrics\/steps\/0000000002\.jsonl:2 is not JSON/);
    expect(checkpointOrigin('s3://bucket/prefix/runs/r-1.sft/checkpoints/12/')).toEqual({ runId: 'r-1.sft', step: 12 });
    expect(checkpointOrigin('file:///tmp/x/runs/r/export/')).toBeNull();
  });
});
