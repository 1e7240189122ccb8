/**
 * Checkpoints (DESIGN §7) on the filesystem store and on real S3 (versitygw): manifest-last
 * commits, corruption detection, interrupted writes (abort, kill -9), and retention.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ArtifactStore } from '../../store/artifact-store.js';
import {
  CheckpointCorruptError,
  checkpointPrefix,
  latestValidCheckpoint,
  listCheckpoints,
  cleanUncommitted,
  pruneCheckpoints,
  readCheckpoint,
  writeCheckpoint,
  MANIFEST_FORMAT,
} from '../../store/checkpoints.js';
import { STORE_CASES } from './stores.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
let tmp: string;
beforeAll(() => void (tmp = mkdtempSync(join(tmpdir(), 'aligner-ckpt-test-'))));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A small checkpoint: a "model" file from disk and optimizer/rng state from memory. */
function files(step: number) {
  const model = join(tmp, `model-${step}-${Math.random()}.safetensors`);
  writeFileSync(model, Buffer.alloc(300_000, step));
  return [
    { name: 'model.safetensors', path: model },
    { name: 'optimizer.bin', bytes: Buffer.from(`adam state ${step}`) },
    { name: 'rng.json', bytes: Buffer.from(JSON.stringify({ seed: 1, step })) },
  ];
}

describe.each(STORE_CASES)('checkpoints on the $name store', (c) => {
  it('writes files then the manifest; lists, verifies and reads them back', async () => {
    const s = c.make();
    const one = await writeCheckpoint(s, 'run-a', 10, files(10), { config: { lr: 1e-3 }, codeVersion: 'test@1' });
    const two = await writeCheckpoint(s, 'run-a', 20, files(20), { config: { lr: 1e-3 }, parent: one });
    expect(one).toMatchObject({ step: 10, existed: false, uri: s.uriOf('runs/run-a/checkpoints/10/') });
    expect(await listCheckpoints(s, 'run-a')).toEqual([
      { step: 20, uri: two.uri },
      { step: 10, uri: one.uri },
    ]);
    const manifestBytes = await s.get('runs/run-a/checkpoints/20/manifest.json');
    expect(sha(manifestBytes)).toBe(two.sha256);
    const m = JSON.parse(manifestBytes.toString());
    expect(m).toMatchObject({ format: MANIFEST_FORMAT, runId: 'run-a', step: 20, config: { lr: 1e-3 } });
    expect(m.parent).toEqual({ uri: one.uri, step: 10, sha256: one.sha256, existed: false });
    expect(m.codeVersion).toMatch(/^aligner@/);
    expect(m.files).toContainEqual({ name: 'optimizer.bin', size: 13, sha256: sha(Buffer.from('adam state 20')) });

    const latest = await latestValidCheckpoint(s, 'run-a');
    expect(latest.skipped).toEqual([]);
    expect(latest.checkpoint?.ref).toEqual({ uri: two.uri, step: 20, sha256: two.sha256 });
    const dest = join(tmp, `${c.name}-read`);
    await readCheckpoint(s, two, dest);
    expect(readFileSync(join(dest, 'model.safetensors'))).toEqual(Buffer.alloc(300_000, 20));
    expect(readFileSync(join(dest, 'manifest.json'))).toEqual(manifestBytes);

    // A retried write of a committed step changes nothing and returns the committed ref.
    const again = await writeCheckpoint(s, 'run-a', 20, files(99));
    expect(again).toEqual({ ...two, existed: true });
    expect(await latestValidCheckpoint(s, 'run-b')).toEqual({ skipped: [] }); // no checkpoint: start from base
  });

  it('a step folder without its manifest is not a checkpoint', async () => {
    const s = c.make();
    const one = await writeCheckpoint(s, 'run-m', 1, files(1));
    // Files of step 2 uploaded, manifest never written (the writer died in between).
    await s.put(`${checkpointPrefix('run-m', 2)}model.safetensors`, Buffer.alloc(1000, 2));
    await s.put(`${checkpointPrefix('run-m', 2)}optimizer.bin`, Buffer.from('x'));
    expect((await listCheckpoints(s, 'run-m')).map((x) => x.step)).toEqual([1]);
    expect((await latestValidCheckpoint(s, 'run-m')).checkpoint?.ref.sha256).toBe(one.sha256);
  });

  it('detects a corrupted shard: latestValidCheckpoint skips it with the reason, readCheckpoint names the file', async () => {
    const s = c.make();
    const good = await writeCheckpoint(s, 'run-c', 100, files(100));
    const bad = await writeCheckpoint(s, 'run-c', 200, files(200));
    c.corrupt(s, `${checkpointPrefix('run-c', 200)}model.safetensors`, 123_456); // one byte, same size

    const latest = await latestValidCheckpoint(s, 'run-c');
    expect(latest.checkpoint?.ref).toEqual({ uri: good.uri, step: 100, sha256: good.sha256 });
    expect(latest.skipped).toHaveLength(1);
    expect(latest.skipped[0]).toMatchObject({ step: 200, uri: bad.uri });
    // The S3 client may find it first, by the CRC versitygw stored at upload; either way it names the file.
    expect(latest.skipped[0].reason).toMatch(/^model\.safetensors: (sha256 [0-9a-f]{64}, manifest says [0-9a-f]{64}$|.*checksum mismatch)/i);

    const dest = join(tmp, `${c.name}-corrupt`);
    const err = await readCheckpoint(s, bad, dest).catch((e) => e);
    expect(err).toBeInstanceOf(CheckpointCorruptError);
    expect(err).toMatchObject({ file: 'model.safetensors', uri: bad.uri, retryable: false });
    expect(err.message).toContain('model.safetensors');
    expect(existsSync(join(dest, 'model.safetensors'))).toBe(false); // the bad copy is not left behind
    expect(existsSync(join(dest, 'manifest.json'))).toBe(false);

    // A manifest replaced after the ref was taken is caught too.
    await s.delete([`${checkpointPrefix('run-c', 100)}manifest.json`]);
    await writeCheckpoint(s, 'run-c', 100, files(101));
    await expect(readCheckpoint(s, good, dest)).rejects.toMatchObject({ file: 'manifest.json' });
  });

  it('an upload aborted midway leaves no visible checkpoint', async () => {
    const s = c.make({ partSize: 5 << 20 });
    const big = join(tmp, `${c.name}-40mib.bin`);
    writeFileSync(big, Buffer.alloc(40 << 20, 7));
    const ac = new AbortController();
    // Abort 30 ms into the 40 MiB upload of the second file.
    const watched: ArtifactStore = Object.create(s);
    watched.put = (key, src, opts) => {
      if (key.endsWith('model.safetensors')) setTimeout(() => ac.abort(), 30);
      return s.put(key, src, opts);
    };
    const files = [
      { name: 'rng.json', bytes: Buffer.from('{}') },
      { name: 'model.safetensors', path: big },
    ];
    const err = await writeCheckpoint(watched, 'run-i', 5, files, {}, { signal: ac.signal }).catch((e) => e);
    expect(err.name === 'AbortError' || err.code === 'Aborted').toBe(true);
    expect(await listCheckpoints(s, 'run-i')).toEqual([]);
    expect(await s.stat(`${checkpointPrefix('run-i', 5)}manifest.json`)).toBeUndefined();
    expect(await s.stat(`${checkpointPrefix('run-i', 5)}model.safetensors`)).toBeUndefined();
  });

  it('a writer killed (-9) before the manifest leaves no visible checkpoint', async () => {
    const s = c.make();
    const child = spawn(join(ROOT, 'node_modules/.bin/tsx'), [join(ROOT, 'test/infra/fixtures/checkpoint-writer.ts'), s.uri, 'run-k', '3'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('COMMITTING') && resolve());
      child.on('exit', (code) => reject(new Error(`writer exited (${code}) before the commit point`)));
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('close', r));
    const keys = (await s.list('runs/run-k/')).map((o) => o.key);
    expect(keys).toEqual(['runs/run-k/checkpoints/3/model.safetensors', 'runs/run-k/checkpoints/3/optimizer.bin']);
    expect(await listCheckpoints(s, 'run-k')).toEqual([]);
    expect(await latestValidCheckpoint(s, 'run-k')).toEqual({ skipped: [] });
  });

  it('retention keeps the last N, deletes the rest manifest first, and clears crashed writes', async () => {
    const s = c.make();
    for (const step of [1, 2, 3, 4, 5]) await writeCheckpoint(s, 'run-r', step, files(step));
    await s.put(`${checkpointPrefix('run-r', 0)}model.safetensors`, Buffer.from('orphan, older')); // crashed write
    await s.put(`${checkpointPrefix('run-r', 6)}model.safetensors`, Buffer.from('in progress')); // a write under way
    expect(await pruneCheckpoints(s, 'run-r', 2)).toEqual({ kept: [5, 4], deleted: [0, 1, 2, 3] });
    expect((await listCheckpoints(s, 'run-r')).map((x) => x.step)).toEqual([5, 4]);
    const dirs = new Set((await s.list('runs/run-r/')).map((o) => o.key.split('/')[3]));
    expect([...dirs].sort()).toEqual(['4', '5', '6']);

    // A prune that dies after deleting a manifest leaves that checkpoint invisible, not broken.
    const failing: ArtifactStore = Object.create(s);
    let calls = 0;
    failing.delete = async (keys) => {
      if (++calls === 2) throw new Error('crash mid-prune');
      return s.delete(keys);
    };
    await expect(pruneCheckpoints(failing, 'run-r', 1)).rejects.toThrow('crash mid-prune');
    expect((await listCheckpoints(s, 'run-r')).map((x) => x.step)).toEqual([5]);
    expect((await latestValidCheckpoint(s, 'run-r')).checkpoint?.ref.step).toBe(5);
    await expect(pruneCheckpoints(s, 'run-r', 0)).rejects.toMatchObject({ code: 'Invalid' });
  });

  it('an uncommitted step between kept checkpoints is removed by retention; when the run has ended, cleanUncommitted removes the rest', async () => {
    const s = c.make();
    for (const step of [2, 4, 8]) await writeCheckpoint(s, 'run-u', step, files(step));
    await s.put(`${checkpointPrefix('run-u', 6)}model.safetensors`, Buffer.from('interrupted, chunk redone'));
    await s.put(`${checkpointPrefix('run-u', 10)}model.safetensors`, Buffer.from('interrupted when the run failed'));
    expect(await pruneCheckpoints(s, 'run-u', 3)).toEqual({ kept: [8, 4, 2], deleted: [6] });
    const steps = async () => [...new Set((await s.list('runs/run-u/')).map((o) => o.key.split('/')[3]))].sort();
    expect(await steps()).toEqual(['10', '2', '4', '8']); // 10 might still be a write in progress
    expect(await cleanUncommitted(s, 'run-u')).toEqual([10]);
    expect(await steps()).toEqual(['2', '4', '8']);
    expect((await listCheckpoints(s, 'run-u')).map((x) => x.step)).toEqual([8, 4, 2]);
  });
});
