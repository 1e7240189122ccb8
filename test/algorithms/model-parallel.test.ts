/**
 * Tensor and pipeline parallel in real processes over the shared-memory group, on both fixture
 * families: TP=2 and PP=2 each give the unsplit model's loss and whole gradient (within 1e-5)
 * and the same 20 SFT steps' losses (within 1e-5); DP=2 × TP=2 on four processes trains the same
 * steps; a checkpoint saved from the shards (TP=2, and TP=2 × PP=2 as one file per stage plus an
 * index) loads unsplit with the split run's logits, within 1e-6 of their scale (f32 rounding of
 * the partial sums; the weights themselves round-trip exactly).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { noGrad, setBackend, tensor, tidy } from '../../kernels/index.js';
import { nativeAvailable } from '../../kernels/native-backend.js';
import { pipelineStage } from '../../models/causal-lm.js';
import { loadPretrained } from '../../models/pretrained.js';
import { shardTensor, tensorParallelSpec, unshardTensor } from '../../models/tensor-parallel.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const RANK = path.join(import.meta.dirname, 'fixtures/parallel-rank.ts');
const work = mkdtempSync(path.join(os.tmpdir(), 'aligner-mp-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Layout { dp?: number; pp?: number; tp?: number }

function runRank(name: string, rank: number, family: string, out: string, l: Required<Layout>): Promise<void> {
  return new Promise((resolve, reject) => {
    const args = [RANK, name, String(rank), family, out, String(l.dp), String(l.pp), String(l.tp)];
    const child = spawn(path.join(ROOT, 'node_modules/.bin/tsx'), args, { env: { ...process.env, ALIGN_NUM_THREADS: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`rank ${rank} exited ${code}: ${stdout}\n${stderr}`))));
  });
}

const f32 = (file: string) => {
  const b = readFileSync(file);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};

async function run(family: string, layout: Layout = {}) {
  const l = { dp: layout.dp ?? 1, pp: layout.pp ?? 1, tp: layout.tp ?? 1 };
  const out = path.join(work, `${family}-dp${l.dp}-pp${l.pp}-tp${l.tp}`);
  const name = `aligner-mp-${randomBytes(6).toString('hex')}`;
  await Promise.all(Array.from({ length: l.dp * l.pp * l.tp }, (_, r) => runRank(name, r, family, out, l)));
  const report = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8')) as { loss: number; losses: number[]; probe: number[][] };
  // Every stage's gradients by name.
  const grads = new Map<string, Float32Array>();
  for (let s = 0; s < l.pp && l.dp === 1; s++) {
    const meta = JSON.parse(readFileSync(path.join(out, `grads-${s}.json`), 'utf8')) as { names: string[]; sizes: number[] };
    const all = f32(path.join(out, `grads-${s}.bin`));
    let at = 0;
    meta.names.forEach((n, i) => {
      grads.set(n, all.subarray(at, at + meta.sizes[i]));
      at += meta.sizes[i];
    });
  }
  return { out, report, grads, logits: f32(path.join(out, 'logits.bin')) };
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

/** The split run against the plain one: loss, every gradient, 20 steps; returns the measured differences. */
function expectSameTraining(split: Awaited<ReturnType<typeof run>>, plain: Awaited<ReturnType<typeof run>>) {
  const loss = Math.abs(split.report.loss - plain.report.loss);
  expect(loss).toBeLessThan(1e-5);
  expect([...split.grads.keys()].sort()).toEqual([...plain.grads.keys()].sort());
  let grad = 0;
  for (const [n, g] of plain.grads) grad = Math.max(grad, maxDiff(split.grads.get(n)!, g));
  expect(grad).toBeLessThan(1e-5);
  expect(plain.report.losses[19]).toBeLessThan(plain.report.losses[0]);
  const steps = maxDiff(split.report.losses, plain.report.losses);
  expect(steps).toBeLessThan(1e-5);
  return `loss Δ ${loss.toExponential(2)}, gradient max Δ ${grad.toExponential(2)}, 20-step losses max Δ ${steps.toExponential(2)}`;
}

/** The checkpoint a split run saved, loaded unsplit, gives the split run's logits. */
async function expectReshard(split: Awaited<ReturnType<typeof run>>) {
  setBackend('native');
  const model = await loadPretrained(path.join(split.out, 'checkpoint'));
  const probe = split.report.probe;
  const logits = noGrad(() => tidy(() => model.forward(tensor(probe.flat(), [2, 12], { dtype: 'i32' })).keep())); // [2, 12, V]
  const scale = Math.max(...Array.from(split.logits, Math.abs));
  const d = maxDiff(await logits.data(), split.logits) / scale;
  expect(d).toBeLessThan(1e-6);
  logits.dispose();
  model.dispose();
  return d;
}

describe.skipIf(!nativeAvailable().ok)('model parallel (real processes)', () => {
  const plain = new Map<string, Awaited<ReturnType<typeof run>>>();
  const plainRun = async (family: string) => plain.get(family) ?? plain.set(family, await run(family)).get(family)!;

  it.each(['tiny-llama', 'tiny-gpt2'])('%s: TP=2 ≡ TP=1, and the two shards save one checkpoint that loads at TP=1', async (family) => {
    const two = await run(family, { tp: 2 });
    const summary = expectSameTraining(two, await plainRun(family));
    const d = await expectReshard(two);
    console.info(`${family} TP=2: ${summary}; resharded logits Δ/scale ${d.toExponential(2)}`);
  }, 300_000);

  it.each(['tiny-llama', 'tiny-gpt2'])('%s: PP=2 (1F1B, tied embedding summed over first and last stage) ≡ PP=1', async (family) => {
    const two = await run(family, { pp: 2 });
    const summary = expectSameTraining(two, await plainRun(family));
    console.info(`${family} PP=2: ${summary}`);
  }, 300_000);

  it('TP=2 × PP=2 on four processes ≡ one process, and its checkpoint (a shard per stage and an index) loads at TP=1', async () => {
    const four = await run('tiny-llama', { tp: 2, pp: 2 });
    const summary = expectSameTraining(four, await plainRun('tiny-llama'));
    expect(existsSync(path.join(four.out, 'checkpoint/model.safetensors.index.json'))).toBe(true);
    const d = await expectReshard(four);
    console.info(`tiny-llama TP=2×PP=2: ${summary}; resharded logits Δ/scale ${d.toExponential(2)}`);
  }, 300_000);

  it('DP=2 × TP=2 on four processes trains the same 20 steps as one process', async () => {
    const four = await run('tiny-llama', { dp: 2, tp: 2 });
    const d = maxDiff(four.report.losses, (await plainRun('tiny-llama')).report.losses);
    expect(d).toBeLessThan(1e-5);
    console.info(`tiny-llama DP=2×TP=2: 20-step losses max Δ ${d.toExponential(2)}`);
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

describe('pipeline stages', () => {
  it('hold consecutive layers, as even as the layer count allows, and refuse more stages than layers', () => {
    expect([0, 1, 2].map((s) => pipelineStage(8, { stage: s, stages: 3 }).layers)).toEqual([[0, 2], [2, 5], [5, 8]]);
    expect(pipelineStage(2, { stage: 1, stages: 2 })).toMatchObject({ first: false, last: true, layers: [1, 2] });
    expect(() => pipelineStage(2, { stage: 0, stages: 3 })).toThrow(/a model of 2 layers allows 1 … 2 stages/);
  });
});
