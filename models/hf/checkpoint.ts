/**
 * A Hugging Face model folder: `config.json` plus weights in `model.safetensors`, or in shards
 * `model-0000K-of-0000N.safetensors` listed by `model.safetensors.index.json`
 * (`{"metadata": {"total_size": bytes}, "weight_map": {tensor name: shard file}}`).
 *
 * Saving follows transformers' `save_pretrained`, so that `from_pretrained` loads what we save:
 * the same greedy split into shards, the same file names, `{"format": "pt"}` in every file's
 * metadata (transformers refuses safetensors files without it), JSON with sorted keys and a
 * 2-space indent, and stale weight files of an earlier save in the same folder removed.
 * Each file is written atomically; a whole folder is not (save into a fresh folder and rename it
 * when a reader must never see a mix of two saves).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fmtShape } from '../../kernels/errors.js';
import { CheckpointError } from './errors.js';
import { readSafetensors, syncDir, writeSafetensors } from './safetensors.js';
import type { StoredTensor, TensorToWrite, WriteDType } from './safetensors.js';

export const CONFIG_FILE = 'config.json';
export const WEIGHTS_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';
/** Default largest shard: 2 GiB of tensor data (headers not counted, as in transformers). */
export const DEFAULT_MAX_SHARD_BYTES = 2 * 1024 ** 3;

const SHARD_PATTERN = /^model-\d{5}-of-\d{5}\.safetensors$/;

/** `model-00001-of-00003.safetensors`: K and N counted from 1, five digits, as transformers names them. */
export function shardFileName(k: number, n: number): string {
  const pad = (x: number): string => String(x).padStart(5, '0');
  return `model-${pad(k)}-of-${pad(n)}.safetensors`;
}

export type SaveDType = 'f32' | 'bf16' | 'f16';

/** A tensor to save. Floats are stored in the save's dtype unless `dtype` says otherwise; Int32Array data defaults to i32. */
export interface SaveTensor {
  shape: readonly number[];
  data: ArrayLike<number>;
  dtype?: SaveDType | 'i32';
}

export interface SaveOptions {
  /** Storage type of float tensors. Default 'f32'. */
  dtype?: SaveDType;
  /** Largest shard, in bytes of tensor data. Default 2 GiB; a tensor larger than this gets a shard of its own. */
  maxShardBytes?: number;
  /** Extra `__metadata__` strings for every file (`format: "pt"` is always there). */
  metadata?: Record<string, string>;
}

export interface SaveResult {
  /** The weight files written, in shard order. */
  files: string[];
  /** Bytes of tensor data, the index's `total_size`. */
  totalSize: number;
}

const TO_WRITE: Record<SaveDType | 'i32', WriteDType> = { f32: 'F32', bf16: 'BF16', f16: 'F16', i32: 'I32' };
const BYTES: Record<WriteDType, number> = { F32: 4, BF16: 2, F16: 2, I32: 4 };

// ---- config.json ---------------------------------------------------------------------------------

export async function readConfig(dir: string): Promise<Record<string, unknown>> {
  const path = join(dir, CONFIG_FILE);
  const config = await readJson(path);
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new CheckpointError(`${path}: expected a JSON object`, path);
  }
  return config as Record<string, unknown>;
}

/** Write config.json as transformers does: keys sorted, 2-space indent, trailing newline. */
export async function writeConfig(dir: string, config: object): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeTextAtomic(join(dir, CONFIG_FILE), `${JSON.stringify(sortKeys(config), null, 2)}\n`);
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(value).sort()) out[k] = sortKeys((value as Record<string, unknown>)[k]);
  return out;
}

// ---- loading ---------------------------------------------------------------------------------------

/**
 * All tensors of a model folder, from `model.safetensors` or else from the shards its index lists
 * (transformers' order of preference). Values are Float32Array (floats) or Int32Array (integers).
 */
export async function loadStateDict(dir: string): Promise<Map<string, StoredTensor>> {
  const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    throw new CheckpointError(`${dir}: cannot read the model folder: ${err.code ?? err.message}`, dir);
  });
  if (names.includes(WEIGHTS_FILE)) return (await readSafetensors(join(dir, WEIGHTS_FILE))).tensors;
  if (names.includes(INDEX_FILE)) return loadSharded(dir);
  const hint = names.some((n) => n.endsWith('.bin') || n.endsWith('.pt'))
    ? ' (PyTorch pickle weights are not read: convert them to safetensors)'
    : '';
  throw new CheckpointError(`${dir}: no ${WEIGHTS_FILE} or ${INDEX_FILE} in the model folder${hint}`, dir);
}

async function loadSharded(dir: string): Promise<Map<string, StoredTensor>> {
  const indexPath = join(dir, INDEX_FILE);
  const index = await readJson(indexPath);
  const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
  const bad = (msg: string): never => {
    throw new CheckpointError(`${indexPath}: ${msg}`, indexPath);
  };
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) bad('no "weight_map" object');
  const map = weightMap as Record<string, unknown>;
  const shards: string[] = [];
  for (const [name, file] of Object.entries(map)) {
    // A plain file name in this folder: an index must not send the reader elsewhere on disk.
    if (typeof file !== 'string' || basename(file) !== file || file === '..' || file === '.') {
      bad(`weight_map entry "${name}" is ${JSON.stringify(file)}, not a file name in the folder`);
    }
    if (!shards.includes(file as string)) shards.push(file as string);
  }
  const out = new Map<string, StoredTensor>();
  for (const shard of shards) {
    const { tensors } = await readSafetensors(join(dir, shard));
    for (const [name, t] of tensors) {
      if (map[name] !== shard) {
        const listed = Object.hasOwn(map, name) ? `lists it in ${map[name]}` : 'does not list it';
        bad(`${shard} holds tensor "${name}" but the index ${listed}`);
      }
      out.set(name, t);
    }
  }
  const missing = Object.keys(map).filter((n) => !out.has(n));
  if (missing.length) bad(`${missing.length} tensors listed in the index are not in their shards: ${missing.map((n) => `${n} (${map[n]})`).join(', ')}`);
  return out;
}

// ---- saving ----------------------------------------------------------------------------------------

/**
 * transformers' split (huggingface_hub `split_state_dict_into_shards_factory`): tensors in the
 * given order fill a shard until the next one would pass `maxBytes`; a tensor larger than
 * `maxBytes` on its own gets a shard of its own, placed before the shard being filled.
 */
export function planShards(sizes: readonly (readonly [string, number])[], maxBytes: number): string[][] {
  const shards: string[][] = [];
  let current: string[] = [];
  let currentBytes = 0;
  for (const [name, bytes] of sizes) {
    if (bytes > maxBytes) {
      shards.push([name]);
      continue;
    }
    if (currentBytes + bytes > maxBytes) {
      shards.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(name);
    currentBytes += bytes;
  }
  if (current.length || shards.length === 0) shards.push(current);
  return shards;
}

/** The tensors in their stored dtypes; bad dtypes are CheckpointErrors naming the tensor. */
function writable(dir: string, tensors: ReadonlyMap<string, SaveTensor>, opts: SaveOptions): Map<string, TensorToWrite> {
  const floats: Record<SaveDType, WriteDType> = { f32: 'F32', bf16: 'BF16', f16: 'F16' };
  const floatType = opts.dtype === undefined ? 'F32' : Object.hasOwn(floats, opts.dtype) ? floats[opts.dtype] : null;
  if (!floatType) throw new CheckpointError(`${dir}: unknown save dtype ${JSON.stringify(opts.dtype)} (f32, bf16, f16)`, dir);
  const toWrite = new Map<string, TensorToWrite>();
  for (const [name, t] of tensors) {
    const dtype = t.dtype === undefined ? (t.data instanceof Int32Array ? 'I32' : floatType) : Object.hasOwn(TO_WRITE, t.dtype) ? TO_WRITE[t.dtype] : null;
    if (!dtype) throw new CheckpointError(`${dir}: tensor "${name}" has unknown dtype ${JSON.stringify(t.dtype)}`, dir);
    toWrite.set(name, { dtype, shape: t.shape, data: t.data });
  }
  return toWrite;
}

/** Save tensors into `dir` (created if needed) as one `model.safetensors`, or as shards plus the index. */
export async function saveStateDict(dir: string, tensors: ReadonlyMap<string, SaveTensor>, opts: SaveOptions = {}): Promise<SaveResult> {
  const maxShardBytes = opts.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  if (!Number.isSafeInteger(maxShardBytes) || maxShardBytes <= 0) {
    throw new CheckpointError(`${dir}: maxShardBytes must be a positive integer, got ${maxShardBytes}`, dir);
  }
  const toWrite = writable(dir, tensors, opts);
  const sizes = [...toWrite].map(([name, t]) => [name, t.data.length * BYTES[t.dtype]] as const);
  const totalSize = sizes.reduce((s, [, b]) => s + b, 0);
  const shards = planShards(sizes, maxShardBytes);
  const metadata = { ...opts.metadata, format: 'pt' };
  await mkdir(dir, { recursive: true });

  const files = shards.length === 1 ? [WEIGHTS_FILE] : shards.map((_, i) => shardFileName(i + 1, shards.length));
  for (let i = 0; i < shards.length; i++) {
    await writeSafetensors(join(dir, files[i]), new Map(shards[i].map((n) => [n, toWrite.get(n)!])), metadata);
  }
  if (shards.length > 1) {
    const weightMap: Record<string, string> = {};
    shards.forEach((names, i) => names.forEach((n) => (weightMap[n] = files[i])));
    await writeIndex(dir, weightMap, totalSize);
  }
  await removeStale(dir, files, shards.length === 1);
  return { files, totalSize };
}

/**
 * One shard of a checkpoint that several writers save together (each pipeline stage its own
 * layers): shard k of n, named as saveStateDict names shards. `finishShardedSave` then writes
 * the index once every shard is on disk.
 */
export async function saveStateDictShard(dir: string, k: number, n: number, tensors: ReadonlyMap<string, SaveTensor>, opts: SaveOptions = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeSafetensors(join(dir, shardFileName(k, n)), writable(dir, tensors, opts), { ...opts.metadata, format: 'pt' });
}

/** The index over shards 1 … n that saveStateDictShard wrote (read from their headers); stale weight files removed. */
export async function finishShardedSave(dir: string, n: number): Promise<SaveResult> {
  const files = Array.from({ length: n }, (_, i) => shardFileName(i + 1, n));
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  for (const file of files) {
    const header = await readHeader(join(dir, file));
    for (const [name, entry] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const [from, to] = (entry as { data_offsets: [number, number] }).data_offsets;
      if (weightMap[name]) throw new CheckpointError(`${dir}: tensor "${name}" is in both ${weightMap[name]} and ${file}`, dir);
      weightMap[name] = file;
      totalSize += to - from;
    }
  }
  await writeIndex(dir, weightMap, totalSize);
  await removeStale(dir, files, false);
  return { files, totalSize };
}

async function writeIndex(dir: string, weightMap: Record<string, string>, totalSize: number): Promise<void> {
  const index = { metadata: { total_size: totalSize }, weight_map: weightMap };
  await writeTextAtomic(join(dir, INDEX_FILE), `${JSON.stringify(sortKeys(index), null, 2)}\n`);
}

/** A safetensors file's JSON header only (8-byte little-endian length, then the JSON). */
async function readHeader(path: string): Promise<Record<string, unknown>> {
  const fh = await open(path, 'r');
  try {
    const len = Buffer.alloc(8);
    await fh.read(len, 0, 8, 0);
    const n = Number(len.readBigUInt64LE(0));
    const json = Buffer.alloc(n);
    await fh.read(json, 0, n, 8);
    return JSON.parse(json.toString('utf8')) as Record<string, unknown>;
  } finally {
    await fh.close();
  }
}

// An earlier save in this folder may have used the other layout or more shards: loading would
// pick up its files (model.safetensors wins over an index), so remove them.
async function removeStale(dir: string, files: readonly string[], single: boolean): Promise<void> {
  const stale = (await readdir(dir)).filter(
    (n) => !files.includes(n) && (n === WEIGHTS_FILE || (n === INDEX_FILE && single) || SHARD_PATTERN.test(n)),
  );
  for (const n of stale) await unlink(join(dir, n));
}

// ---- matching a model's parameters ---------------------------------------------------------------

/**
 * Check that a checkpoint's tensors are exactly the model's parameters, with the same shapes.
 * Throws one CheckpointError that lists every missing name, every unexpected name and every shape
 * mismatch, so that a wrong config or name mapping shows up whole rather than one name at a time.
 */
export function matchStateDict(
  expected: ReadonlyMap<string, readonly number[]>,
  got: ReadonlyMap<string, { shape: readonly number[] }>,
  source?: string,
): void {
  const missing = [...expected.keys()].filter((n) => !got.has(n));
  const unexpected = [...got.keys()].filter((n) => !expected.has(n));
  const mismatched: string[] = [];
  for (const [name, shape] of expected) {
    const g = got.get(name);
    if (g && fmtShape(g.shape) !== fmtShape(shape)) mismatched.push(`${name}: expected ${fmtShape(shape)}, got ${fmtShape(g.shape)}`);
  }
  if (!missing.length && !unexpected.length && !mismatched.length) return;
  const lines = [`${source ? `${source}: ` : ''}the checkpoint does not match the model`];
  if (missing.length) lines.push(`  missing (${missing.length}): ${missing.join(', ')}`);
  if (unexpected.length) lines.push(`  unexpected (${unexpected.length}): ${unexpected.join(', ')}`);
  if (mismatched.length) lines.push(`  wrong shape (${mismatched.length}): ${mismatched.join('; ')}`);
  throw new CheckpointError(lines.join('\n'), source);
}

// ---- small file helpers --------------------------------------------------------------------------

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new CheckpointError(`${path}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, path);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CheckpointError(`${path}: not valid JSON: ${(err as Error).message}`, path);
  }
}

/** Temp file, fsync, rename: a reader sees the old file or the new one, never a torn one. */
async function writeTextAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    await syncDir(join(path, '..'));
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw new CheckpointError(`${path}: write failed: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, path);
  }
}
