/**
 * The filesystem store on a full disk (a 1 MiB tmpfs mounted for the test; root only): a write
 * that does not fit is a non-retryable NoSpace error naming the object and the bytes, and it
 * leaves nothing under the object's name and no temp file; once space is freed, writes work.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreError } from '../../store/artifact-store.js';
import { FsStore } from '../../store/fs-store.js';
import { ApplicationFailure } from '@temporalio/activity';
import { parseRecipeConfig } from '../../algorithms/recipes/index.js';
import { createActivities } from '../../activities/index.js';
import { RunStore } from '../../store/run-store.js';
import { tinyLlama, writeSftData } from '../e2e/helpers.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'aligner-full-'));
function tryMount(): string | null {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { stdio: 'pipe' });
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}
const mountError = tryMount();
if (mountError) console.warn(`disk-full tests skipped: cannot mount a tmpfs here (${mountError.split('\n')[0]}); they need root`);

afterAll(() => {
  if (!mountError) execFileSync('umount', [dir]);
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(mountError !== null)('the filesystem store on a full disk', () => {
  let store: FsStore;
  beforeAll(() => {
    store = new FsStore(path.join(dir, 'store'));
  });

  it.each([['put of bytes', 'put'], ['put of a stream', 'stream'], ['putIfAbsent', 'putIfAbsent']] as const)('%s that does not fit: NoSpace, non-retryable, nothing left behind', async (_name, how) => {
    const bytes = new Uint8Array(2 << 20).fill(7); // 2 MiB on a 1 MiB disk
    const key = `runs/r/big-${how}.bin`;
    const write = how === 'put' ? store.put(key, bytes)
      : how === 'stream' ? store.put(key, Readable.from((function* () {
        for (let i = 0; i < 8; i++) yield bytes.subarray(i << 18, (i + 1) << 18);
      })()))
      : store.putIfAbsent(key, bytes);
    const err = await write.then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).code).toBe('NoSpace');
    expect((err as StoreError).retryable).toBe(false);
    expect((err as StoreError).message).toMatch(new RegExp(`${key.replace(/\//g, '\\/')}: no space left on the device \\(ENOSPC\\).*free space there or use another store`));
    if (how !== 'stream') expect((err as StoreError).message).toContain(`with ${2 << 20} bytes to write`);
    expect(await store.stat(key)).toBeUndefined();
    expect(readdirSync(path.join(dir, 'store', 'runs', 'r'))).toEqual([]); // no temp file either
  });

  it('a training chunk whose checkpoint does not fit fails at once: a non-retryable StoreError, not six retries from step 0', async () => {
    const run = new RunStore(new FsStore(path.join(dir, 'runs-store')), path.join(os.tmpdir(), `aligner-full-cache-${process.pid}`));
    const acts = createActivities({ store: run, workerQueue: 'unused' });
    const config = parseRecipeConfig('sft', { model: tinyLlama, data: { train: writeSftData(path.join(os.tmpdir(), `aligner-full-data-${process.pid}`), 40), validationFraction: 0.2 }, trainer: { maxSteps: 2, warmupSteps: 0, maxLength: 96 } });
    const dataset = await acts.prepareDataset({ runId: 'full', recipe: 'sft', config });
    const err = await acts.trainChunk({ runId: 'full', recipe: 'sft', config, dataset, fromStep: 0, toStep: 2, checkpoint: null, validate: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('StoreError');
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    expect((err as ApplicationFailure).message).toMatch(/runs\/full\/checkpoints\/2\/.*no space left on the device \(ENOSPC\)/);
    await run.store.delete((await run.store.list('runs/')).map((o) => o.key)); // give the space back
  });

  it('a write that fits still works after the failed ones (space was given back)', async () => {
    const r = await store.put('runs/r/small.bin', new Uint8Array(1000).fill(1));
    expect(r.size).toBe(1000);
    expect((await store.get('runs/r/small.bin')).length).toBe(1000);
  });
});
