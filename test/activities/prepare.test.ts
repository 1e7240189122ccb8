/**
 * Data preparation and precompute at the activity level, against a filesystem store (no Temporal):
 * a 2-million-token dataset is prepared in a process whose heap could not hold it, a retried preparation keeps what an
 * earlier attempt committed, and a precompute that fails midway resumes at its first missing part.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parseRecipeConfig } from '../../algorithms/recipes/index.js';
import { prepareDataset } from '../../activities/dataset.js';
import { openParts } from '../../activities/data-source.js';
import { PART_SIZE, precompute } from '../../activities/precompute.js';
import type { ArtifactStore } from '../../store/artifact-store.js';
import { StoreError } from '../../store/artifact-store.js';
import { openStore } from '../../store/index.js';
import { RunStore } from '../../store/run-store.js';
import type { PrecomputedIndex } from '../../activities/types.js';
import { root, slowIt, tinyLlama, writePreferenceData } from '../e2e/helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));

const tmp = mkdtempSync(path.join(os.tmpdir(), 'aligner-prepare-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Runs the preparation fixture in its own process under a small V8 heap; resolves with its exit and output. */
function prepareInProcess(dir: string, records: number, mode: 'stream' | 'hold'): Promise<{ code: number | null; signal: string | null; out: string }> {
  const child = spawn(process.execPath, ['--max-old-space-size=64', '--import', 'tsx', path.join(here, 'fixtures/prepare-large.ts'), dir, String(records), mode], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, out })));
}

describe('prepareDataset at scale', () => {
  // A 64 MiB V8 heap: the modules take ~16 MiB, and 2 M tokens held as decoded examples (JS arrays, ≥ 34 MiB of
  // elements alone) do not fit in the rest; streaming peaks near 50 MiB whatever the dataset's size (1 M to 4 M tokens measured).
  slowIt('prepares a 2-million-token dataset into packed shards in a worker process whose heap cannot hold it (RSS growth reported)', async () => {
    const [streamed, held] = await Promise.all([
      prepareInProcess(mkdtempSync(path.join(tmp, 'large-')), 8900, 'stream'),
      prepareInProcess(mkdtempSync(path.join(tmp, 'held-')), 8900, 'hold'),
    ]);
    expect(streamed.code, streamed.out).toBe(0);
    const r = JSON.parse(streamed.out.trim().split('\n').at(-1)!) as { tokens: number; examples: number; rssStartMiB: number; maxRssMiB: number; heapPeakMiB: number };
    console.log(`prepareDataset memory: ${(r.tokens / 1e6).toFixed(2)} M tokens, ${r.examples} examples under a 64 MiB heap; RSS ${r.rssStartMiB.toFixed(0)} → peak ${r.maxRssMiB.toFixed(0)} MiB (growth ${(r.maxRssMiB - r.rssStartMiB).toFixed(1)} MiB), heap peak ${r.heapPeakMiB.toFixed(1)} MiB`);
    expect(r.tokens).toBeGreaterThanOrEqual(2_000_000);
    // The control: the same process loading every example into memory runs out of heap.
    expect(held.code === 0 && held.signal === null, 'loading the dataset whole should not fit in 64 MiB').toBe(false);
    expect(held.out).toMatch(/heap out of memory|Allocation failed/i);
  });

  it('a run in flight since before token shards (a JSON-array dataset ref) is prepared again, as shards', async () => {
    const store = new RunStore(openStore(`file://${path.join(tmp, 'legacy')}`), path.join(tmp, 'cache-legacy'));
    const config = parseRecipeConfig('dpo', { model: tinyLlama, data: { train: writePreferenceData(path.join(tmp, 'legacy-data'), 40) }, trainer: { maxLength: 64 } });
    await store.putJson('runs/old/data/dataset.json', { trainKey: 'runs/old/data/train.json', validKey: 'runs/old/data/valid.json', trainUri: 'x', validUri: 'y', trainCount: 36, validCount: 4 });
    const ref = await prepareDataset(store, { runId: 'old', recipe: 'dpo', config });
    expect(ref.train.prefix).toBe('runs/old/data/train');
    expect(ref.train.count + ref.valid.count).toBe(40);
    expect(await store.getJson('runs/old/data/dataset.json')).toEqual(ref);
  });

  it.each([['drop', { dropped: 3, truncated: 0, examples: 7 }], ['truncate', { dropped: 0, truncated: 3, examples: 10 }]] as const)(
    'data.overlong = %s: the preparation report counts what it did',
    async (overlong, expected) => {
      const { writeFileSync } = await import('node:fs');
      const file = path.join(tmp, `overlong-${overlong}.jsonl`);
      writeFileSync(file, Array.from({ length: 10 }, (_, i) => JSON.stringify({ input: `q${i}`, output: i % 3 === 0 && i > 0 ? 'x'.repeat(200) : 'short' })).join('\n'));
      const store = new RunStore(openStore(`file://${path.join(tmp, `overlong-${overlong}`)}`), path.join(tmp, `cache-overlong-${overlong}`));
      const config = parseRecipeConfig('sft', { model: tinyLlama, data: { train: file, validationFraction: 0.2, overlong }, trainer: { maxLength: 64 } });
      const ref = await prepareDataset(store, { runId: 'o', recipe: 'sft', config });
      expect(ref.report).toMatchObject({ records: 10, ...expected });
      if (overlong === 'drop') expect(ref.report.droppedSamples).toEqual([3, 6, 9].map((i) => `${file} line ${i + 1}: longer than trainer.maxLength`));
    },
  );

  it('a retried preparation keeps the splits an earlier attempt committed', async () => {
    const store = new RunStore(openStore(`file://${path.join(tmp, 'retry')}`), path.join(tmp, 'cache-retry'));
    const config = parseRecipeConfig('dpo', { model: tinyLlama, data: { train: writePreferenceData(path.join(tmp, 'retry-data'), 40) }, trainer: { maxLength: 64 } });
    const first = await prepareDataset(store, { runId: 'r', recipe: 'dpo', config });
    await store.store.delete(['runs/r/data/dataset.json']); // as if the attempt died after writing both splits
    const again = await prepareDataset(store, { runId: 'r', recipe: 'dpo', config });
    expect(again).toEqual(first);
  });
});

describe('precompute', () => {
  /** A store whose first write of one key fails (its shards are uploaded, its manifest is not), as an outage in the middle of a precompute would. */
  function failingOnce(store: ArtifactStore, key: string): ArtifactStore {
    let failed = false;
    return new Proxy(store, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof value !== 'function') return value;
        const write = prop === 'put' || prop === 'putIfAbsent';
        return (...args: unknown[]) => {
          if (write && !failed && args[0] === key) {
            failed = true;
            return Promise.reject(new StoreError('Unavailable', `injected outage writing ${key}`, true));
          }
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
  }

  it('a precompute that fails midway resumes at its first missing part, and gives what an uninterrupted one gives', async () => {
    const root = path.join(tmp, 'pre');
    const config = parseRecipeConfig('dpo', { model: tinyLlama, data: { train: writePreferenceData(path.join(tmp, 'pre-data'), 2 * PART_SIZE + 40), validationFraction: 0.05 }, trainer: { maxLength: 64 } });
    const clean = new RunStore(openStore(`file://${root}`), path.join(tmp, 'cache-pre'));
    const dataset = await prepareDataset(clean, { runId: 'p', recipe: 'dpo', config });
    expect(dataset.train.count).toBeGreaterThan(2 * PART_SIZE);
    const part = (k: number) => `runs/p/precompute/reference-logps/train/part-0000${k}/manifest.json`;
    const flaky = new RunStore(failingOnce(openStore(`file://${root}`), part(1)), path.join(tmp, 'cache-pre'));
    await expect(precompute(flaky, { runId: 'p', recipe: 'dpo', config, dataset })).rejects.toThrow(/injected outage/);
    const firstPart = await clean.store.get(part(0));
    expect(await clean.getJson('runs/p/precompute/reference-logps/index.json')).toBeNull(); // not done: no index
    const resumed = (await precompute(clean, { runId: 'p', recipe: 'dpo', config, dataset }))!;
    expect(Buffer.compare(await clean.store.get(part(0)), firstPart)).toBe(0); // part 0 was kept, not redone
    const index = (await clean.getJson<PrecomputedIndex>(resumed.indexKey))!;
    expect(index.train).toHaveLength(3);
    // The same numbers as a run that never failed.
    const other = new RunStore(openStore(`file://${path.join(tmp, 'pre-clean')}`), path.join(tmp, 'cache-pre2'));
    const d2 = await prepareDataset(other, { runId: 'p', recipe: 'dpo', config });
    const p2 = (await precompute(other, { runId: 'p', recipe: 'dpo', config, dataset: d2 }))!;
    const [a, b] = [openParts(clean, index.train, 2), openParts(other, (await other.getJson<PrecomputedIndex>(p2.indexKey))!.train)]; // 2 open parts of 3: the LRU closes and reopens
    const all = Array.from({ length: a.count }, (_, i) => i);
    expect(await a.getMany(all)).toEqual(await b.getMany(all));
    await Promise.all([a.close(), b.close()]);
  });
});
