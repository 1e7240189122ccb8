/**
 * The shared-memory process group, with real processes: every collective against the
 * single-process reference, bit for bit, at several sizes (chunked through 64 KiB slots and
 * 4 KiB mailboxes) and rank counts, including a non-power-of-two; and the failures: a rank that
 * never arrives, a rank whose process exits, a bad name.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { nativeAvailable } from '../../../kernels/native-backend.js';
import { openShmGroup } from '../../../kernels/distributed/index.js';
import { add, dispose, setBackend, tensor } from '../../../kernels/index.js';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const RANK = path.join(import.meta.dirname, 'fixtures/collective-rank.ts');
const native = nativeAvailable();

interface RankReport {
  rank: number;
  failures?: string[];
  ticks?: number;
  error?: string;
}

function runRank(name: string, rank: number, world: number, sizes: number[], mode = '', env: Record<string, string> = {}): Promise<RankReport> {
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(ROOT, 'node_modules/.bin/tsx'), [RANK, name, String(rank), String(world), sizes.join(','), mode], {
      env: { ...process.env, ALIGN_NUM_THREADS: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (mode === 'exit-after-rendezvous') return resolve({ rank });
      try {
        resolve(JSON.parse(line) as RankReport);
      } catch {
        reject(new Error(`rank ${rank} exited ${code} without a report: ${out}\n${err}`));
      }
    });
  });
}

const fresh = (tag: string) => `aligner-test-${tag}-${randomBytes(6).toString('hex')}`;

describe.skipIf(!native.ok)('shared-memory process group (real processes)', () => {
  it.each([2, 3, 4])('world %i: every collective equals the reference bit for bit, and event loops stay live', async (world) => {
    const name = fresh(`w${world}`);
    // 20000 floats = 80 KB: more than one 64 KiB slot and twenty 4 KiB mailboxes.
    const sizes = [1, 7, 1001, 20000];
    const reports = await Promise.all(Array.from({ length: world }, (_, r) => runRank(name, r, world, sizes, r === 0 ? 'stall' : '')));
    for (const report of reports) {
      expect(report.error).toBeUndefined();
      expect(report.failures).toEqual([]);
    }
    // Ranks 1.. waited ~400 ms in their first collective for rank 0; their timers kept firing.
    for (const report of reports.slice(1)) expect(report.ticks).toBeGreaterThan(10);
  }, 120_000);

  it('a rank that never arrives is an error naming it, after the timeout', async () => {
    const name = fresh('missing');
    const reports = await Promise.all([0, 1].map((r) => runRank(name, r, 3, [4], '', { GROUP_TIMEOUT_MS: '1500' })));
    for (const report of reports) expect(report.error).toMatch(/ProcessGroupError: process group '.*' \(rank [01] of 3\): rank 2 did not arrive at rendezvous #0 within 1500 ms/);
  }, 60_000);

  it('rank 0 that never creates the group is named too', async () => {
    const report = await runRank(fresh('norank0'), 1, 2, [4], '', { GROUP_TIMEOUT_MS: '1000' });
    expect(report.error).toMatch(/rank 0 did not create it within 1000 ms/);
  }, 60_000);

  it('a rank whose process exits is named with its pid, well before the timeout', async () => {
    const name = fresh('exit');
    const started = Date.now();
    const [survivor] = await Promise.all([runRank(name, 0, 2, [4], '', { GROUP_TIMEOUT_MS: '60000' }), runRank(name, 1, 2, [4], 'exit-after-rendezvous')]);
    expect(survivor.error).toMatch(/rank 1 \(pid \d+\) exited before all_reduce #1/);
    expect(Date.now() - started).toBeLessThan(50_000);
  }, 90_000);

  it('a rank waiting at the rendezvous holds up no tensor work (the wait is on the group\'s own stream)', async () => {
    setBackend('native');
    const events: string[] = [];
    const opening = openShmGroup({ name: fresh('waiting'), world: 2, timeoutMs: 1500 }, 1).then(() => events.push('opened'), () => events.push('gave up'));
    const x = tensor([1, 2, 3], [3]); // [3]
    const y = add(x, x); // [3]
    expect(Array.from(await y.data())).toEqual([2, 4, 6]);
    events.push('computed');
    await opening;
    expect(events).toEqual(['computed', 'gave up']);
    dispose([x, y]);
  });

  it('a name that is not a plain word is refused before anything is created', async () => {
    setBackend('native');
    await expect(openShmGroup({ name: '../etc', world: 2, timeoutMs: 100 }, 0)).rejects.toThrow(/letters, digits/);
  });
});
