/**
 * Tensor parallel in real processes over the shared-memory group, on both fixture families:
 * TP=2 gives TP=1's loss and whole gradient (within 1e-5), the same 20 SFT steps' losses
 * (within 1e-5), and a checkpoint saved from the two shards loads unsplit with logits within 1e-6
 * of their scale (f32 rounding of the partial sums; the weights themselves round-trip exactly).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { noGrad, setBackend, tensor, tidy } from '../../kernels/index.js';
import { nativeAvailable } from '../../kernels/native-backend.js';
import { loadPretrained } from '../../models/pretrained.js';
import { shardTensor, tensorParallelSpec, unshardTensor } from '../../models/tensor-parallel.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const RANK = path.join(import.meta.dirname, 'fixtures/tp-rank.ts');
const work = mkdtempSync(path.join(os.tmpdir(), 'aligner-tp-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function runRank(name: string, rank: number, world: number, family: string, out: string, dp: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(ROOT, 'node_modules/.bin/tsx'), [RANK, name, String(rank), String(world), family, out, '20', String(dp)], {
      env: { ...process.env, ALIGN_NUM_THREADS: '1' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`rank ${rank} exited ${code}: ${stdout}\n${stderr}`))));
  });
}

async function layout(family: string, tp: number, dp = 1) {
  const out = path.join(work, `${family}-tp${tp}-dp${dp}`);
  const name = `aligner-tp-${randomBytes(6).toString('hex')}`;
  await Promise.all(Array.from({ length: tp * dp }, (_, r) => runRank(name, r, tp * dp, family, out, dp)));
  const report = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8')) as { loss: number; losses: number[]; names: string[]; sizes: number[]; probe: number[][] };
  const f32 = (file: string) => {
    const b = readFileSync(path.join(out, file));
    return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  };
  return { out, report, grads: f32('grads.bin'), logits: f32('logits.bin') };
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

describe.skipIf(!nativeAvailable().ok)('tensor parallel (real processes)', () => {
  it.each(['tiny-llama', 'tiny-gpt2'])('%s: TP=2 ≡ TP=1 (loss, gradients, 20 steps), and the shards save one checkpoint that loads at TP=1', async (family) => {
    const [one, two] = [await layout(family, 1), await layout(family, 2)];
    expect(two.report.names).toEqual(one.report.names);
    expect(Math.abs(two.report.loss - one.report.loss)).toBeLessThan(1e-5);
    const gradDiff = maxDiff(two.grads, one.grads);
    expect(gradDiff).toBeLessThan(1e-5);
    expect(one.report.losses[19]).toBeLessThan(one.report.losses[0]);
    expect(maxDiff(two.report.losses, one.report.losses)).toBeLessThan(1e-5);
    expect(maxDiff(two.logits, one.logits)).toBeLessThan(1e-4); // the two runs trained apart for 20 steps

    // Reshard: the checkpoint the two shards saved, loaded unsplit, gives TP=2's logits.
    setBackend('native');
    const model = await loadPretrained(path.join(two.out, 'checkpoint'));
    const probe = two.report.probe;
    const logits = noGrad(() => tidy(() => model.forward(tensor(probe.flat(), [2, 12], { dtype: 'i32' })).keep())); // [2, 12, V]
    // Relative to the logits' scale: the row-parallel sums add their partial products in another order.
    const scale = Math.max(...Array.from(two.logits, Math.abs));
    expect(maxDiff(await logits.data(), two.logits) / scale).toBeLessThan(1e-6);
    logits.dispose();
    model.dispose();
    console.info(`${family}: TP=2 vs TP=1 loss Δ ${Math.abs(two.report.loss - one.report.loss).toExponential(2)}, gradient max Δ ${gradDiff.toExponential(2)}, ` +
      `20-step losses max Δ ${maxDiff(two.report.losses, one.report.losses).toExponential(2)}`);
  }, 300_000);

  it('DP=2 × TP=2 on four processes: the same 20 steps as one process', async () => {
    const [one, four] = [await layout('tiny-llama', 1), await layout('tiny-llama', 2, 2)];
    const d = maxDiff(four.report.losses, one.report.losses);
    expect(d).toBeLessThan(1e-5);
    console.info(`tiny-llama: DP=2×TP=2 vs one process, 20-step losses max Δ ${d.toExponential(2)}`);
  }, 300_000);
});

describe('tensor-parallel layout', () => {
  it('cuts and glues along an axis, with uneven last shards and fused parts', () => {
    // [2, 6] split on axis 1 in 3 parts of 2 → each rank takes one column of each part.
    const whole = { shape: [2, 6], data: [0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15] };
    const spec = { axis: 1, parts: 3 };
    const r0 = shardTensor(whole, spec, 0, 2), r1 = shardTensor(whole, spec, 1, 2);
    expect(r0).toEqual({ shape: [2, 3], data: Float32Array.from([0, 2, 4, 10, 12, 14]) });
    expect(r1).toEqual({ shape: [2, 3], data: Float32Array.from([1, 3, 5, 11, 13, 15]) });
    expect(Array.from(unshardTensor([r0, r1], spec, 6).data)).toEqual(whole.data);
    // A vocabulary of 5 rows over 2 ranks: 3 and 2.
    const vocab = { shape: [5, 1], data: [0, 1, 2, 3, 4] };
    const v = [0, 1].map((r) => shardTensor(vocab, { axis: 0, parts: 1 }, r, 2));
    expect(v.map((s) => s.shape)).toEqual([[3, 1], [2, 1]]);
    expect(Array.from(unshardTensor(v, { axis: 0, parts: 1 }, 5).data)).toEqual(vocab.data);
  });

  it('names the split of every projection of both families', () => {
    expect(tensorParallelSpec('llama', 'model.layers.0.self_attn.k_proj.weight')).toEqual({ axis: 0, parts: 1 });
    expect(tensorParallelSpec('llama', 'model.layers.0.mlp.down_proj.weight')).toEqual({ axis: 1, parts: 1 });
    expect(tensorParallelSpec('llama', 'model.layers.0.input_layernorm.weight')).toBeNull();
    expect(tensorParallelSpec('gpt2', 'transformer.h.1.attn.c_attn.weight')).toEqual({ axis: 1, parts: 3 });
    expect(tensorParallelSpec('gpt2', 'transformer.h.1.attn.c_proj.bias')).toBeNull();
    expect(tensorParallelSpec('gpt2', 'transformer.wpe.weight')).toBeNull();
  });
});
