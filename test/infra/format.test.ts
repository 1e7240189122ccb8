/** What `align status` suggests next: resume-failed only for a run that has a checkpoint to resume from; export for a stopped run. */
import { describe, expect, it } from 'vitest';
import { formatStatus } from '../../infra/cli/format.js';
import type { RunView } from '../../infra/runs.js';

const base: RunView = {
  runId: 'r1', recipe: 'sft', state: 'FAILED', startTime: '2026-12-01T00:00:00.000Z', closeTime: '2026-12-01T00:01:00.000Z',
  parentRunId: null, progress: null, result: null, failure: { message: 'train.jsonl:3: missing key "output"', type: 'DataError', activity: 'prepareDataset', chain: [] },
};

describe('align status hints', () => {
  it('a run that failed before its first checkpoint is started again, not resumed', () => {
    expect(formatStatus(base)).toContain('next       fix the cause and start again: align run sft --config …');
  });

  it('a run with a checkpoint can resume-failed', () => {
    const progress = { lastCheckpoint: { uri: 'file:///s/runs/r1/checkpoints/8/', step: 8, sha256: 'x' } } as RunView['progress'];
    expect(formatStatus({ ...base, progress: { ...progress!, runId: 'r1', recipe: 'sft', status: 'training', step: 8, maxSteps: 10, lastLoss: 1, lastValidation: null, tokensPerSecond: null, recent: [], parentRunId: null, exportUri: null } })).toContain('next       align resume-failed r1');
  });

  it('a failed run says where resume-failed would start (the store\'s newest commit), and a run with none is started again', () => {
    const text = formatStatus({ ...base, resumeFrom: { step: 12, uri: 'file:///s/runs/r1/checkpoints/12/' } });
    expect(text).toContain('resume     resume-failed starts from step 12 (file:///s/runs/r1/checkpoints/12/), the newest committed checkpoint');
    expect(text).toContain('next       align resume-failed r1');
    expect(formatStatus({ ...base, resumeFrom: null })).toContain('next       fix the cause and start again');
  });

  it('a stopped run says STOPPED and suggests an export', () => {
    const text = formatStatus({ ...base, state: 'STOPPED', failure: null, result: { runId: 'r1', status: 'stopped', step: 4, lastCheckpoint: null, exportUri: null, validations: [] } });
    expect(text).toMatch(/^run r1 \(sft\)  STOPPED/);
    expect(text).toContain('next       align export r1 --out DIR');
  });
});
