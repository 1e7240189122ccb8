/**
 * Planning a stage that failed before, on a real filesystem store: it resumes from the newest
 * valid checkpoint of its failed runs, newest run first, so a retry that failed before its first
 * checkpoint does not send the stage back to step 0; with no checkpoint anywhere it starts fresh.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { beginPipeline, planPipelineStage } from '../../activities/pipeline/plan.js';
import { getPipeline } from '../../algorithms/pipelines/index.js';
import { writeCheckpoint } from '../../store/checkpoints.js';
import { openStore } from '../../store/index.js';
import { RunStore } from '../../store/run-store.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'aligner-pipeline-plan-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const store = new RunStore(openStore(`file://${path.join(tmp, 'store')}`), path.join(tmp, 'cache'));
const checkpoint = (runId: string, step: number) => writeCheckpoint(store.store, runId, step, [{ name: 'model.safetensors', bytes: Buffer.from(`weights ${step}`) }]);

async function planAfter(pipelineId: string, failedRuns: string[]) {
  const record = await beginPipeline(store, { pipeline: 'rlhf', config: getPipeline('rlhf').example as Record<string, unknown>, pipelineId, attempt: 0 });
  record.stages[0].failedRuns = failedRuns;
  return planPipelineStage(store, { record, stage: 'sft', outputs: {} });
}

describe('planPipelineStage after failures', () => {
  it('resumes from the newest checkpoint of any failed run, the newest run first', async () => {
    await checkpoint('a.sft', 4);
    await checkpoint('a.sft', 8);
    const plan = await planAfter('a', ['a.sft', 'a.sft.r1']); // a.sft.r1 failed before its first checkpoint
    expect(plan).toMatchObject({ kind: 'run', runId: 'a.sft.r2', resumedFrom: { runId: 'a.sft', step: 8 } });
    expect(plan.kind === 'run' && plan.input).toMatchObject({ parentRunId: 'a.sft', resumeFrom: { step: 8 } });

    await checkpoint('a.sft.r1', 2);
    expect((await planAfter('b', ['a.sft', 'a.sft.r1'])).resumedFrom).toEqual({ runId: 'a.sft.r1', step: 2 });
  });

  it('starts fresh when no failed run checkpointed', async () => {
    const plan = await planAfter('c', ['c.sft']);
    expect(plan).toMatchObject({ runId: 'c.sft.r1', resumedFrom: null });
    expect(plan.kind === 'run' && plan.input.resumeFrom).toBeUndefined();
  });
});
