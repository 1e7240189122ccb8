/**
 * Data parallel in real processes over the shared-memory group: DP=2 with one micro-batch per
 * rank gives the same bits as DP=1 accumulating the same two micro-batches (weights, losses,
 * gradient norms), with the full AdamW on every rank and with ZeRO-1's sharded moments; with two
 * micro-batches per rank the sums are grouped differently and agree to float rounding.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { shardOf } from '../../algorithms/train/data-parallel.js';
import { shardRanges } from '../../kernels/distributed/index.js';
import { ConfigError } from '../../algorithms/errors.js';
import { nativeAvailable } from '../../kernels/native-backend.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const RANK = path.join(import.meta.dirname, 'fixtures/dp-rank.ts');

interface Report {
  rank: number;
  losses: number[];
  gradNorms: number[];
  digest: string;
  weights: number[];
  firstMoment: number[];
  buckets: number;
  error?: string;
}

function runRank(name: string, rank: number, world: number, globalBatch: number, microBatch: number, steps: number, mode: 'dp' | 'zero'): Promise<Report> {
  return new Promise((resolve, reject) => {
    const args = [RANK, name, rank, world, globalBatch, microBatch, steps, mode].map(String);
    const child = spawn(path.join(ROOT, 'node_modules/.bin/tsx'), args, { env: { ...process.env, ALIGN_NUM_THREADS: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      try {
        const r = JSON.parse(out.trim().split('\n').pop() ?? '') as Report;
        if (r.error) reject(new Error(`rank ${rank}: ${r.error}`));
        else resolve(r);
      } catch {
        reject(new Error(`rank ${rank} exited ${code} without a report: ${out}\n${err}`));
      }
    });
  });
}

const gang = (world: number, g: number, m: number, steps: number, mode: 'dp' | 'zero') => {
  const name = `aligner-dp-${randomBytes(6).toString('hex')}`;
  return Promise.all(Array.from({ length: world }, (_, r) => runRank(name, r, world, g, m, steps, mode)));
};

const STEPS = 4;

describe.skipIf(!nativeAvailable().ok)('data parallel (real processes)', () => {
  it('DP=2 ≡ DP=1 bit for bit, with the full optimizer and with ZeRO-1', async () => {
    const [single] = await gang(1, 4, 2, STEPS, 'dp');
    const dp = await gang(2, 4, 2, STEPS, 'dp');
    const zero = await gang(2, 4, 2, STEPS, 'zero');
    expect(new Set(single.losses).size).toBe(STEPS); // every step trained on its own batch
    for (const r of [...dp, ...zero]) {
      expect(r.buckets).toBeGreaterThan(1);
      expect(r.losses).toEqual(single.losses);
      expect(r.gradNorms).toEqual(single.gradNorms);
      expect(r.digest).toBe(single.digest);
      expect(r.firstMoment).toEqual(single.firstMoment);
    }
  }, 240_000);

  it('two micro-batches per rank: the same step to float rounding', async () => {
    const [single] = await gang(1, 8, 2, 2, 'dp');
    const dp = await gang(2, 8, 2, 2, 'dp');
    for (const r of dp) {
      r.losses.forEach((l, i) => expect(Math.abs(l - single.losses[i])).toBeLessThan(1e-5));
      r.weights.forEach((w, i) => expect(Math.abs(w - single.weights[i])).toBeLessThan(1e-5));
    }
    expect(dp[0].digest).toBe(dp[1].digest); // the ranks agree with each other exactly
  }, 240_000);
});

describe('sharding a global batch', () => {
  it('gives each rank a contiguous share, and names the fields when the batch does not divide', () => {
    expect(shardOf([0, 1, 2, 3, 4, 5], 1, 3)).toEqual([2, 3]);
    expect(() => shardOf([0, 1, 2], 0, 2)).toThrow(ConfigError);
    expect(() => shardOf([0, 1, 2], 0, 2)).toThrow(/trainer.globalBatchSize \(3\) must divide by parallel.dp \(2\)/);
  });
});

describe('ZeRO-1 ranges', () => {
  it('cut the flat parameters into equal parts, the last one short', () => {
    expect(shardRanges(10, 3)).toEqual({ size: 4, ranges: [[0, 4], [4, 8], [8, 10]] });
    expect(shardRanges(2, 4)).toEqual({ size: 1, ranges: [[0, 1], [1, 2], [2, 2], [2, 2]] });
  });
});
