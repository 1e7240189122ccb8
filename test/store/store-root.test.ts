/**
 * Store roots that cannot work fail at once, saying why: a folder under /proc, a read-only
 * filesystem, a file where a folder should be, a bucket that does not exist; a worker does not
 * start on such a store, and a run is not started with it.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RunService } from '../../infra/runs.js';
import { defaultTemporalAddress } from '../../infra/temporal.js';
import { startWorkers } from '../../infra/workers/worker.js';
import { StoreError } from '../../store/artifact-store.js';
import { FsStore } from '../../store/fs-store.js';
import { S3Store } from '../../store/s3-store.js';
import { RunStore } from '../../store/run-store.js';
import { root, tinyLlama } from '../e2e/helpers.js';
import { testS3Config } from '../infra/stores.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'aligner-root-'));
const readOnly = path.join(tmp, 'ro');
let roMounted = false;
try {
  execFileSync('mkdir', ['-p', readOnly]);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs', readOnly], { stdio: 'pipe' });
  roMounted = true;
} catch {
  console.warn('store-root: cannot mount a read-only tmpfs here (needs root); that case is skipped');
}
afterAll(() => {
  if (roMounted) execFileSync('umount', [readOnly]);
  rmSync(tmp, { recursive: true, force: true });
});

const probeError = (store: { probe(): Promise<void> }) => store.probe().then(() => null, (e: unknown) => e as StoreError);

describe('store roots that cannot work', () => {
  it('a folder under /proc: refused at once as a virtual filesystem', async () => {
    const t0 = performance.now();
    const err = await probeError(new FsStore('/proc/aligner-store/runs'));
    expect(err).toBeInstanceOf(StoreError);
    expect(err!.message).toBe('store file:///proc/aligner-store/runs: /proc is on procfs (/proc), a virtual filesystem that cannot hold files; choose a folder on a disk (--store / ALIGN_STORE_URI)');
    expect(err!.retryable).toBe(false);
    expect(performance.now() - t0).toBeLessThan(5_000); // it does not hang
  });

  it.skipIf(!roMounted)('a read-only filesystem says read-only (not ENOENT)', async () => {
    const err = await probeError(new FsStore(path.join(readOnly, 'store')));
    expect(err!.code).toBe('Denied');
    expect(err!.message).toMatch(/is not usable: .*the filesystem is read-only \(EROFS\)/);
  });

  it('a file where the store folder should be', async () => {
    writeFileSync(path.join(tmp, 'a-file'), 'x');
    const err = await probeError(new FsStore(path.join(tmp, 'a-file', 'store')));
    expect(err!.message).toBe(`store file://${path.join(tmp, 'a-file', 'store')}: ${path.join(tmp, 'a-file')} is a file, not a folder`);
  });

  it('a bucket that does not exist names the bucket and the endpoint', async () => {
    const cfg = testS3Config();
    const err = await probeError(new S3Store('no-such-bucket-aligner', 'runs', cfg));
    expect(err!.code).toBe('NotFound');
    expect(err!.message).toMatch(/^store s3:\/\/no-such-bucket-aligner\/runs is not usable: .*bucket no-such-bucket-aligner does not exist at http:\/\/127\.0\.0\.1:\d+/);
  });

  it('a usable store passes (filesystem and S3)', async () => {
    await new FsStore(path.join(tmp, 'fine')).probe();
    await new S3Store(process.env.ALIGN_S3_BUCKET!, 'probe-test', testS3Config()).probe();
  });

  it('a worker does not start on an unusable store, and a run is not started with one', async () => {
    const bad = new RunStore(new FsStore('/proc/aligner-store'), path.join(tmp, 'cache'));
    await expect(startWorkers({ address: defaultTemporalAddress(), store: bad, role: 'compute', workerId: 'bad-store' })).rejects.toThrow(/virtual filesystem/);
    const service = new RunService({ address: defaultTemporalAddress(), storeUri: 'file:///proc/aligner-store' });
    try {
      await expect(service.startRun('sft', { model: tinyLlama, data: { train: path.join(root, 'data/demo/sft.jsonl') }, trainer: { maxLength: 128 } }, [], { runId: 'never-started-bad-store' }))
        .rejects.toThrow(/virtual filesystem/);
      await expect(service.getStatus('never-started-bad-store')).rejects.toThrow(/no run "never-started-bad-store"/);
    } finally {
      await service.close();
    }
  });
});
