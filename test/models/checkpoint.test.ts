/**
 * Hugging Face model folders: config.json, single-file and sharded weights (transformers' split,
 * names and index), stale files of an earlier save, folder-level errors, and matchStateDict.
 */
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { roundToBf16 } from '../../kernels/dtype.js';
import {
  loadStateDict, matchStateDict, planShards, readConfig, saveStateDict, shardFileName, writeConfig,
} from '../../models/hf/checkpoint.js';
import type { SaveTensor } from '../../models/hf/checkpoint.js';
import { CheckpointError } from '../../models/hf/errors.js';
import { readSafetensors, serializeSafetensors } from '../../models/hf/safetensors.js';

let root: string;
let n = 0;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'aligner-checkpoint-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});
const freshDir = (): string => join(root, `m${n++}`);

/** Tensors a (16 B), b (40 B), c (8 B), d (100 B), e (12 B) in f32, and an i32 tensor. */
function tensors(): Map<string, SaveTensor> {
  const range = (k: number, scale: number) => Array.from({ length: k }, (_, i) => (i + 1) * scale);
  return new Map<string, SaveTensor>([
    ['a', { shape: [2, 2], data: range(4, 0.1) }],
    ['b', { shape: [10], data: range(10, -0.7) }],
    ['c', { shape: [2], data: range(2, 1 / 3) }],
    ['d', { shape: [5, 5], data: range(25, 0.01) }],
    ['e', { shape: [3], data: range(3, 3) }],
  ]);
}

const valuesOf = (m: Map<string, { shape: readonly number[]; data: ArrayLike<number> }>) =>
  Object.fromEntries([...m].map(([k, t]) => [k, { shape: [...t.shape], data: [...Array.from(t.data)] }]));

describe('config.json', () => {
  it('writes keys sorted with a 2-space indent, as transformers does, and reads it back', async () => {
    const dir = freshDir();
    await writeConfig(dir, { vocab_size: 256, architectures: ['LlamaForCausalLM'], rope_scaling: { type: 'llama3', factor: 8 } });
    expect(await readFile(join(dir, 'config.json'), 'utf8')).toBe(
      '{\n  "architectures": [\n    "LlamaForCausalLM"\n  ],\n  "rope_scaling": {\n    "factor": 8,\n    "type": "llama3"\n  },\n  "vocab_size": 256\n}\n',
    );
    expect(await readConfig(dir)).toEqual({ vocab_size: 256, architectures: ['LlamaForCausalLM'], rope_scaling: { type: 'llama3', factor: 8 } });
  });

  it('names the file when it is missing, not JSON, or not an object', async () => {
    const dir = freshDir();
    const p = join(dir, 'config.json');
    await expect(readConfig(dir)).rejects.toThrow(new CheckpointError(`${p}: cannot read: ENOENT`, p));
    await mkdir(dir);
    await writeFile(p, '{"a": 1,}');
    await expect(readConfig(dir)).rejects.toThrow(/^.*config\.json: not valid JSON: /);
    await writeFile(p, '[1]');
    await expect(readConfig(dir)).rejects.toThrow(new CheckpointError(`${p}: expected a JSON object`, p));
  });
});

describe('weights', () => {
  it('fits in one model.safetensors with {"format": "pt"} metadata, and loads back', async () => {
    const dir = freshDir();
    const t = tensors();
    t.set('ids', { shape: [2], data: new Int32Array([3, -4]) });
    const res = await saveStateDict(dir, t, { metadata: { step: '7' } });
    expect(res).toEqual({ files: ['model.safetensors'], totalSize: 184 });
    expect(await readdir(dir)).toEqual(['model.safetensors']);
    const file = await readSafetensors(join(dir, 'model.safetensors'));
    expect(file.metadata).toEqual({ format: 'pt', step: '7' });
    expect(file.tensors.get('ids')!.dtype).toBe('I32');
    const back = await loadStateDict(dir);
    expect(valuesOf(back)).toEqual(valuesOf(new Map([...t].map(([k, v]) => [k, { shape: v.shape, data: Array.from(v.data, Math.fround) }]))));
  });

  it('stores floats as bf16 or f16 when asked, and a per-tensor dtype overrides it', async () => {
    const dir = freshDir();
    const t = tensors();
    t.set('norm', { shape: [2], data: [0.1, 0.2], dtype: 'f32' });
    await saveStateDict(dir, t, { dtype: 'bf16' });
    const back = await loadStateDict(dir);
    expect(back.get('b')!.dtype).toBe('BF16');
    expect([...back.get('b')!.data]).toEqual(Array.from(t.get('b')!.data, roundToBf16));
    expect(back.get('norm')).toEqual({ dtype: 'F32', shape: [2], data: new Float32Array([0.1, 0.2]) });
    await saveStateDict(dir, t, { dtype: 'f16' });
    expect((await loadStateDict(dir)).get('c')!.data[0]).toBe(0.333251953125);
  });

  it('splits like transformers: greedy in order, an oversized tensor alone', () => {
    const sizes: [string, number][] = [['a', 16], ['b', 40], ['c', 8], ['d', 100], ['e', 12]];
    expect(planShards(sizes, 48)).toEqual([['a'], ['d'], ['b', 'c'], ['e']]);
    expect(planShards(sizes, 1000)).toEqual([['a', 'b', 'c', 'd', 'e']]);
    expect(planShards([], 10)).toEqual([[]]);
    expect(shardFileName(2, 13)).toBe('model-00002-of-00013.safetensors');
  });

  it('shards with a small maxShardBytes: files, index and an identical reload', async () => {
    const dir = freshDir();
    const t = tensors();
    const res = await saveStateDict(dir, t, { maxShardBytes: 48 });
    const files = [1, 2, 3, 4].map((k) => `model-0000${k}-of-00004.safetensors`);
    expect(res).toEqual({ files, totalSize: 176 });
    expect((await readdir(dir)).sort()).toEqual([...files, 'model.safetensors.index.json']);
    expect(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8')).toBe(`{
  "metadata": {
    "total_size": 176
  },
  "weight_map": {
    "a": "${files[0]}",
    "b": "${files[2]}",
    "c": "${files[2]}",
    "d": "${files[1]}",
    "e": "${files[3]}"
  }
}
`);
    expect([...(await readSafetensors(join(dir, files[2]))).tensors.keys()]).toEqual(['b', 'c']);
    const back = await loadStateDict(dir);
    expect(valuesOf(back)).toEqual(valuesOf(new Map([...t].map(([k, v]) => [k, { shape: v.shape, data: Array.from(v.data, Math.fround) }]))));
  });

  it('a later save removes the files of an earlier one that loading would pick up', async () => {
    const dir = freshDir();
    await saveStateDict(dir, tensors(), { maxShardBytes: 48 }); // 4 shards
    await saveStateDict(dir, tensors(), { maxShardBytes: 112 }); // 2 shards: [a, b, c], [d, e]
    expect((await readdir(dir)).sort()).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']);
    await writeFile(join(dir, 'notes.txt'), 'kept');
    await saveStateDict(dir, tensors());
    expect((await readdir(dir)).sort()).toEqual(['model.safetensors', 'notes.txt']);
    await saveStateDict(dir, tensors(), { maxShardBytes: 112 });
    expect((await readdir(dir)).sort()).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json', 'notes.txt']);
    expect((await loadStateDict(dir)).size).toBe(5);
  });

  it('loads a folder whose model.safetensors the Python library wrote', async () => {
    const dir = freshDir();
    await mkdir(dir);
    await copyFile(fileURLToPath(new URL('../../models/hf/testdata/python.safetensors', import.meta.url)), join(dir, 'model.safetensors'));
    const back = await loadStateDict(dir);
    expect(back.get('input_ids')).toEqual({ dtype: 'I64', shape: [2, 2], data: new Int32Array([0, -1, 2 ** 31 - 1, -(2 ** 31)]) });
  });

  it('rejects bad save options', async () => {
    const dir = freshDir();
    await expect(saveStateDict(dir, tensors(), { maxShardBytes: 0 })).rejects.toThrow(
      new CheckpointError(`${dir}: maxShardBytes must be a positive integer, got 0`, dir),
    );
    await expect(saveStateDict(dir, tensors(), { dtype: 'i32' as 'f32' })).rejects.toThrow(
      new CheckpointError(`${dir}: unknown save dtype "i32" (f32, bf16, f16)`, dir),
    );
    const bad = new Map<string, SaveTensor>([['w', { shape: [1], data: [1], dtype: 'f64' as 'f32' }]]);
    await expect(saveStateDict(dir, bad)).rejects.toThrow(new CheckpointError(`${dir}: tensor "w" has unknown dtype "f64"`, dir));
  });
});

describe('folder errors name the folder or file', () => {
  const shard = (names: string[]) => serializeSafetensors(new Map(names.map((k) => [k, { dtype: 'F32' as const, shape: [1], data: [1] }])));
  async function folder(files: Record<string, string | Uint8Array>): Promise<string> {
    const dir = freshDir();
    await mkdir(dir);
    for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
    return dir;
  }
  const index = (weightMap: Record<string, unknown>) => JSON.stringify({ metadata: { total_size: 8 }, weight_map: weightMap });

  it('no weights, or only PyTorch pickles', async () => {
    const empty = await folder({});
    await expect(loadStateDict(empty)).rejects.toThrow(new CheckpointError(`${empty}: no model.safetensors or model.safetensors.index.json in the model folder`, empty));
    const pickles = await folder({ 'pytorch_model.bin': 'x' });
    await expect(loadStateDict(pickles)).rejects.toThrow(new CheckpointError(
      `${pickles}: no model.safetensors or model.safetensors.index.json in the model folder (PyTorch pickle weights are not read: convert them to safetensors)`, pickles,
    ));
    const missing = join(root, 'does-not-exist');
    await expect(loadStateDict(missing)).rejects.toThrow(new CheckpointError(`${missing}: cannot read the model folder: ENOENT`, missing));
  });

  it('an index that disagrees with its shards, or points outside the folder', async () => {
    const s1 = 'model-00001-of-00002.safetensors', s2 = 'model-00002-of-00002.safetensors';
    const expectIndexError = async (files: Record<string, string | Uint8Array>, message: string) => {
      const dir = await folder(files);
      const p = join(dir, 'model.safetensors.index.json');
      await expect(loadStateDict(dir)).rejects.toThrow(new CheckpointError(`${p}: ${message}`, p));
    };
    await expectIndexError({ 'model.safetensors.index.json': index({ a: s1, b: s2, c: s2 }), [s1]: shard(['a']), [s2]: shard(['b']) },
      '1 tensors listed in the index are not in their shards: c (model-00002-of-00002.safetensors)');
    await expectIndexError({ 'model.safetensors.index.json': index({ a: s1 }), [s1]: shard(['a', 'z']) },
      'model-00001-of-00002.safetensors holds tensor "z" but the index does not list it');
    await expectIndexError({ 'model.safetensors.index.json': index({ a: s1, b: s2 }), [s1]: shard(['a', 'b']), [s2]: shard(['b']) },
      'model-00001-of-00002.safetensors holds tensor "b" but the index lists it in model-00002-of-00002.safetensors');
    await expectIndexError({ 'model.safetensors.index.json': index({ a: '../secret.safetensors' }) },
      'weight_map entry "a" is "../secret.safetensors", not a file name in the folder');
    await expectIndexError({ 'model.safetensors.index.json': '{"metadata": {}}' }, 'no "weight_map" object');
    const dir = await folder({ 'model.safetensors.index.json': index({ a: s1 }) });
    const p = join(dir, s1);
    await expect(loadStateDict(dir)).rejects.toThrow(new CheckpointError(`${p}: cannot open: ENOENT`, p));
  });
});

describe('matchStateDict', () => {
  const expected = new Map<string, number[]>([['embed', [4, 2]], ['w1', [2, 3]], ['w2', [3]], ['norm', [2]]]);

  it('passes when names and shapes match exactly', () => {
    const got = new Map([...expected].map(([k, shape]) => [k, { shape }]));
    expect(() => matchStateDict(expected, got)).not.toThrow();
  });

  it('lists every missing name, unexpected name and shape mismatch in one error', () => {
    const got = new Map([
      ['embed', { shape: [4, 2] }], ['w1', { shape: [3, 2] }], ['norm', { shape: [] }], ['lm_head', { shape: [4, 2] }], ['extra', { shape: [1] }],
    ]);
    expect(() => matchStateDict(expected, got, '/ckpt')).toThrow(new CheckpointError(
      '/ckpt: the checkpoint does not match the model\n' +
        '  missing (1): w2\n' +
        '  unexpected (2): lm_head, extra\n' +
        '  wrong shape (2): w1: expected [2,3], got [3,2]; norm: expected [2], got []',
      '/ckpt',
    ));
  });
});
