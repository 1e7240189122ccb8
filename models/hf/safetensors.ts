/**
 * Our own reader and writer of the safetensors format (https://github.com/huggingface/safetensors):
 *
 *   [u64 little-endian N] [N bytes of JSON header, space-padded] [raw little-endian tensor data]
 *
 * The header maps each tensor name to {dtype, shape, data_offsets: [begin, end]} (offsets are
 * relative to the data section), plus an optional "__metadata__" map of strings.
 *
 * Reading follows the Rust reference's validation: the tensors, sorted by offset, must tile the
 * data section exactly (no gaps, no overlaps, nothing after the last one), and each must take
 * exactly numel × dtype-size bytes. Float tensors come back as Float32Array (F32 as zero-copy views
 * into the file's buffer when 4-byte aligned; BF16/F16/F64 converted), integer tensors as Int32Array
 * (64-bit ones only when every value fits).
 *
 * Writing produces the same bytes as the Python library for the same tensors and (single-key)
 * metadata: tensors ordered by dtype (widest first, the library's Dtype enum order) and then by
 * name, the header padded with spaces to a multiple of 8 so that the data section is 8-byte
 * aligned. F32→BF16 rounds to nearest even like `roundToBf16`; F32→F16 is IEEE round to nearest
 * even with subnormals, overflow to ±Inf and NaN kept quiet.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fmtShape } from '../../kernels/errors.js';
import { CheckpointError } from './errors.js';

/** Bits per element of every dtype the format defines (safetensors 0.8 Dtype enum). */
const DTYPE_BITS = {
  BOOL: 8, F4: 4, F6_E2M3: 6, F6_E3M2: 6, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8,
  I16: 16, U16: 16, F16: 16, BF16: 16, I32: 32, U32: 32, F32: 32, F64: 64, C64: 64, I64: 64, U64: 64,
} as const;

export type SafetensorsDType = keyof typeof DTYPE_BITS;
/** The dtypes this writer produces: what a model checkpoint needs. */
export type WriteDType = 'F32' | 'BF16' | 'F16' | 'I32';

/** One tensor as read: the stored dtype, and values widened to what the engine computes with. */
export interface StoredTensor {
  dtype: SafetensorsDType;
  shape: number[];
  data: Float32Array | Int32Array;
}

export interface SafetensorsFile {
  metadata: Record<string, string>;
  /** In file (offset) order. */
  tensors: Map<string, StoredTensor>;
}

/** One tensor to write; `data` is row-major, numel long, converted to `dtype` on the way out. */
export interface TensorToWrite {
  dtype: WriteDType;
  shape: readonly number[];
  data: ArrayLike<number>;
}

/** The Rust reference refuses larger headers; so do we, before decoding 100 MB of JSON. */
const MAX_HEADER_BYTES = 100_000_000;
/** Elements converted per write() call, so that saving never needs a second copy of a whole file. */
const CHUNK_ELEMENTS = 1 << 20;
/** fs read/write calls are limited to 2 GiB; stay well below. */
const IO_CHUNK_BYTES = 1 << 30;

// Typed-array views use the host's byte order; the format is little-endian, like every Node target.
const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function checkHost(source: string): void {
  if (!HOST_IS_LITTLE_ENDIAN) throw new CheckpointError(`${source}: safetensors I/O needs a little-endian host`, source);
}

// ---- half-precision conversions ------------------------------------------------------------------

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The bf16 bit pattern of an f32 value: round to nearest even (as `roundToBf16`); NaN → quiet NaN, sign kept. */
export function f32ToBf16Bits(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) & 0x8000) | 0x7fc0;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16BitsToF32(h: number): number {
  u32[0] = h << 16;
  return f32[0];
}

/**
 * The IEEE binary16 bit pattern of an f32 value (the value is first rounded to f32, as a tensor's
 * would be): round to nearest even, gradual underflow to subnormals, overflow to ±Inf, NaN → quiet.
 */
export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 112; // rebias 127 → 15
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): the 24-bit significand shifted down, rounded to nearest even.
    if (e < -10) return sign; // below half the smallest subnormal (2^-25): rounds to ±0
    const m = mant | 0x800000;
    const shift = 14 - e;
    let h = m >>> shift;
    const rest = m & ((1 << shift) - 1), half = 1 << (shift - 1);
    if (rest > half || (rest === half && (h & 1))) h++; // a carry into bit 10 gives the smallest normal: right
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++; // a carry can run into the exponent, up to Inf: right
  return sign | h;
}

let f16Table: Float32Array | null = null;

/** The f32 value of every f16 bit pattern, built on first use (256 KiB). */
function f16ToF32Table(): Float32Array {
  if (f16Table) return f16Table;
  const table = new Float32Array(65536);
  const bits = new Uint32Array(table.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16, exp = (h >>> 10) & 0x1f, mant = h & 0x3ff;
    if (exp === 0) table[h] = (sign ? -1 : 1) * mant * 2 ** -24; // zero and subnormals, exact
    else if (exp === 31) bits[h] = sign | 0x7f800000 | (mant << 13); // Inf, NaN (payload kept)
    else bits[h] = sign | ((exp + 112) << 23) | (mant << 13);
  }
  return (f16Table = table);
}

export function f16BitsToF32(h: number): number {
  return f16ToF32Table()[h & 0xffff];
}

// ---- reading -------------------------------------------------------------------------------------

/** Read a whole .safetensors file. F32 tensors may be views into one buffer that holds the whole file. */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  return parseSafetensors(await readWholeFile(path), path);
}

/** Parse safetensors bytes (a file read into memory); `source` names them in error messages. */
export function parseSafetensors(bytes: Uint8Array, source: string): SafetensorsFile {
  checkHost(source);
  const fail = (msg: string): never => {
    throw new CheckpointError(`${source}: ${msg}`, source);
  };
  if (bytes.length < 8) fail(`not a safetensors file: ${bytes.length} bytes, shorter than the 8-byte header length`);
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(bytes.length - 8)) {
    fail(`header length ${n} runs past the end of the file (${bytes.length} bytes, so at most ${bytes.length - 8} after the length)`);
  }
  const headerEnd = 8 + Number(n);
  const where = `header (bytes 8..${headerEnd})`;
  if (headerEnd - 8 > MAX_HEADER_BYTES) fail(`${where} is larger than the format's limit of ${MAX_HEADER_BYTES} bytes`);
  let text = '';
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, headerEnd));
  } catch {
    fail(`${where} is not valid UTF-8`);
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    fail(`${where} is not valid JSON: ${(err as Error).message}`);
  }
  if (!isPlainObject(header)) fail(`${where} is not a JSON object`);
  const { metadata, entries } = parseHeader(header as Record<string, unknown>, fail);
  checkLayout(entries, bytes.length - headerEnd, fail);
  const tensors = new Map<string, StoredTensor>();
  for (const e of entries) {
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data: decode(e, bytes, headerEnd, fail) });
  }
  return { metadata, tensors };
}

interface Entry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  begin: number;
  end: number;
  /** numel × dtype size, as the shape says. */
  bytes: number;
}

type Fail = (msg: string) => never;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseHeader(header: Record<string, unknown>, fail: Fail): { metadata: Record<string, string>; entries: Entry[] } {
  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!isPlainObject(info)) fail(`"__metadata__" must be an object of strings`);
      for (const [k, v] of Object.entries(info as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`"__metadata__" value of "${k}" is ${JSON.stringify(v)}, not a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    const t = `tensor "${name}"`;
    if (!isPlainObject(info)) fail(`${t}: entry must be an object with dtype, shape and data_offsets`);
    const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
    if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_BITS, dtype)) {
      fail(`${t} has unknown dtype ${JSON.stringify(dtype)} (the format defines ${Object.keys(DTYPE_BITS).join(', ')})`);
    }
    const isDim = (d: unknown): d is number => Number.isSafeInteger(d) && (d as number) >= 0;
    if (!Array.isArray(shape) || !shape.every(isDim)) fail(`${t}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isDim) || offsets[0] > offsets[1]) {
      fail(`${t}: data_offsets ${JSON.stringify(offsets)} is not a pair [begin, end] with 0 <= begin <= end`);
    }
    const dt = dtype as SafetensorsDType;
    let bits = DTYPE_BITS[dt];
    for (const d of shape as number[]) bits *= d;
    if (!Number.isSafeInteger(bits)) fail(`${t}: shape ${fmtShape(shape as number[])} is too large`);
    if (bits % 8 !== 0) fail(`${t}: ${dt} ${fmtShape(shape as number[])} does not fill a whole number of bytes`);
    const [begin, end] = offsets as number[];
    entries.push({ name, dtype: dt, shape: shape as number[], begin, end, bytes: bits / 8 });
  }
  return { metadata, entries };
}

/** Sort by offset and check that the tensors tile the data section exactly, as the Rust reference does. */
function checkLayout(entries: Entry[], dataBytes: number, fail: Fail): void {
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  let prev: Entry | null = null;
  for (const e of entries) {
    const t = `tensor "${e.name}"`;
    if (e.end - e.begin !== e.bytes) {
      fail(`${t} is ${e.dtype} ${fmtShape(e.shape)}, which takes ${e.bytes} bytes, but its data_offsets [${e.begin}, ${e.end}] span ${e.end - e.begin}`);
    }
    if (e.begin < pos) fail(`${t} at data_offsets [${e.begin}, ${e.end}] overlaps tensor "${prev!.name}" at [${prev!.begin}, ${prev!.end}]`);
    if (e.begin > pos) {
      const after = prev ? `tensor "${prev.name}" (ends at ${pos})` : 'the start of the data section';
      fail(`${e.begin - pos} unused bytes between ${after} and ${t} (starts at ${e.begin}): offsets must tile the data section`);
    }
    pos = e.end;
    prev = e;
  }
  if (dataBytes < pos) {
    const first = entries.find((e) => e.end > dataBytes)!;
    fail(`file is truncated: tensor "${first.name}" needs data bytes [${first.begin}, ${first.end}) but the data section has only ${dataBytes}; ${pos - dataBytes} bytes are missing`);
  }
  if (dataBytes > pos) fail(`${dataBytes - pos} bytes after the end of the last tensor's data (at ${pos}): the file is not what its header describes`);
}

/** Bytes [start, start+len) of `bytes` viewed as T when aligned (zero-copy), else copied into a fresh buffer. */
function view<T>(
  make: new (buffer: ArrayBufferLike, offset: number, length: number) => T,
  size: number, bytes: Uint8Array, start: number, len: number,
): T {
  const at = bytes.byteOffset + start;
  if (at % size === 0) return new make(bytes.buffer, at, len / size);
  const copy = new Uint8Array(len); // not bytes.slice(): on a Node Buffer that is a view, not a copy
  copy.set(bytes.subarray(start, start + len));
  return new make(copy.buffer, 0, len / size);
}

function decode(e: Entry, bytes: Uint8Array, dataStart: number, fail: Fail): Float32Array | Int32Array {
  const start = dataStart + e.begin, len = e.bytes, n = len / (DTYPE_BITS[e.dtype] / 8);
  const widen = <T extends ArrayLike<number>>(src: T, ok: (v: number) => boolean = () => true): Int32Array => {
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      if (!ok(src[i])) fail(`tensor "${e.name}": ${e.dtype} value ${src[i]} at index ${i} does not fit in int32`);
      out[i] = src[i];
    }
    return out;
  };
  switch (e.dtype) {
    case 'F32':
      return view(Float32Array, 4, bytes, start, len);
    case 'I32':
      return view(Int32Array, 4, bytes, start, len);
    case 'BF16': {
      const src = view(Uint16Array, 2, bytes, start, len);
      const out = new Float32Array(n), outBits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) outBits[i] = src[i] << 16;
      return out;
    }
    case 'F16': {
      const src = view(Uint16Array, 2, bytes, start, len), table = f16ToF32Table();
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = table[src[i]];
      return out;
    }
    case 'F64':
      return Float32Array.from(view(Float64Array, 8, bytes, start, len));
    case 'BOOL':
      return Int32Array.from(view(Uint8Array, 1, bytes, start, len), (v) => (v ? 1 : 0));
    case 'U8':
      return widen(view(Uint8Array, 1, bytes, start, len));
    case 'I8':
      return widen(view(Int8Array, 1, bytes, start, len));
    case 'U16':
      return widen(view(Uint16Array, 2, bytes, start, len));
    case 'I16':
      return widen(view(Int16Array, 2, bytes, start, len));
    case 'U32':
      return widen(view(Uint32Array, 4, bytes, start, len), (v) => v <= 0x7fffffff);
    case 'I64':
    case 'U64': {
      // torch saves token ids and positions as int64; keep them when every value fits in int32.
      const src = e.dtype === 'I64' ? view(BigInt64Array, 8, bytes, start, len) : view(BigUint64Array, 8, bytes, start, len);
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = src[i];
        if (v < -0x80000000n || v > 0x7fffffffn) fail(`tensor "${e.name}": ${e.dtype} value ${v} at index ${i} does not fit in int32`);
        out[i] = Number(v);
      }
      return out;
    }
    default:
      return fail(`tensor "${e.name}" has dtype ${e.dtype}, which this reader cannot convert (it reads F32, F16, BF16, F64, BOOL and 8- to 64-bit integers)`);
  }
}

async function readWholeFile(path: string): Promise<Uint8Array> {
  checkHost(path);
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw new CheckpointError(`${path}: cannot open: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, path);
  }
  try {
    const { size } = await fh.stat();
    // Our own buffer (never Node's shared pool) so that offset 0 is 8-byte aligned and F32 views line up.
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(new ArrayBuffer(size));
    } catch {
      throw new CheckpointError(`${path}: ${size} bytes do not fit in one buffer; shard the checkpoint (maxShardBytes)`, path);
    }
    for (let pos = 0; pos < size; ) {
      const { bytesRead } = await fh.read(bytes, pos, Math.min(size - pos, IO_CHUNK_BYTES), pos);
      if (bytesRead === 0) throw new CheckpointError(`${path}: file shrank to ${pos} bytes while being read`, path);
      pos += bytesRead;
    }
    return bytes;
  } finally {
    await fh.close();
  }
}

// ---- writing -------------------------------------------------------------------------------------

/** The library's order: widest dtype first (its Dtype enum, descending), then name by UTF-8 bytes. */
const WRITE_RANK: Record<WriteDType, number> = { F32: 3, I32: 2, BF16: 1, F16: 0 };
const WRITE_BYTES: Record<WriteDType, number> = { F32: 4, I32: 4, BF16: 2, F16: 2 };

interface Plan {
  /** The 8-byte length and the padded JSON header. */
  head: Uint8Array;
  entries: { name: string; t: TensorToWrite }[];
  size: number;
}

function plan(tensors: ReadonlyMap<string, TensorToWrite>, metadata: Record<string, string> | undefined, source: string): Plan {
  checkHost(source);
  const fail = (msg: string): never => {
    throw new CheckpointError(`${source}: ${msg}`, source);
  };
  const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');
  const entries = [...tensors].map(([name, t]) => ({ name, t, key: utf8(name) }));
  entries.sort((a, b) => WRITE_RANK[b.t.dtype] - WRITE_RANK[a.t.dtype] || Buffer.compare(a.key, b.key));
  // Built by hand rather than JSON.stringify(object) so that integer-like names ("0") keep this order.
  const parts: string[] = [];
  if (metadata) {
    const keys = Object.keys(metadata).sort((a, b) => Buffer.compare(utf8(a), utf8(b)));
    for (const k of keys) if (typeof metadata[k] !== 'string') fail(`metadata "${k}" is ${JSON.stringify(metadata[k])}, not a string`);
    parts.push(`"__metadata__":{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(',')}}`);
  }
  let offset = 0;
  for (const { name, t } of entries) {
    if (name === '__metadata__') fail('"__metadata__" is reserved and cannot name a tensor');
    if (!Object.hasOwn(WRITE_BYTES, t.dtype)) fail(`tensor "${name}": cannot write dtype ${JSON.stringify(t.dtype)} (F32, BF16, F16, I32)`);
    let numel = 1;
    for (const d of t.shape) {
      if (!Number.isSafeInteger(d) || d < 0) fail(`tensor "${name}": shape ${JSON.stringify(t.shape)} is not a list of non-negative integers`);
      numel *= d;
    }
    if (t.data.length !== numel) fail(`tensor "${name}": ${t.data.length} values do not fill shape ${fmtShape(t.shape)} (${numel} elements)`);
    const end = offset + numel * WRITE_BYTES[t.dtype];
    parts.push(`${JSON.stringify(name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${offset},${end}]}`);
    offset = end;
  }
  const json = utf8(`{${parts.join(',')}}`);
  const n = Math.ceil(json.length / 8) * 8;
  const head = Buffer.alloc(8 + n, 0x20); // pad with spaces, as the library does
  head.writeBigUInt64LE(BigInt(n), 0);
  json.copy(head, 8);
  return { head, entries, size: 8 + n + offset };
}

/** The file's bytes in order: the head, then each tensor converted in chunks of CHUNK_ELEMENTS. */
function* chunks(p: Plan, source: string): Generator<Uint8Array> {
  yield p.head;
  for (const { name, t } of p.entries) {
    const { data, dtype } = t;
    if (dtype === 'F32' && data instanceof Float32Array) {
      yield new Uint8Array(data.buffer, data.byteOffset, data.byteLength); // already the bytes we want
      continue;
    }
    for (let lo = 0; lo < data.length; lo += CHUNK_ELEMENTS) {
      const hi = Math.min(data.length, lo + CHUNK_ELEMENTS);
      if (dtype === 'F32') {
        const out = new Float32Array(hi - lo);
        for (let i = lo; i < hi; i++) out[i - lo] = data[i];
        yield new Uint8Array(out.buffer);
      } else if (dtype === 'I32') {
        const out = new Int32Array(hi - lo);
        for (let i = lo; i < hi; i++) {
          const v = data[i];
          if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) {
            throw new CheckpointError(`${source}: tensor "${name}": value ${v} at index ${i} is not an int32`, source);
          }
          out[i - lo] = v;
        }
        yield new Uint8Array(out.buffer);
      } else {
        const out = new Uint16Array(hi - lo);
        const conv = dtype === 'BF16' ? f32ToBf16Bits : f32ToF16Bits;
        for (let i = lo; i < hi; i++) out[i - lo] = conv(data[i]);
        yield new Uint8Array(out.buffer);
      }
    }
  }
}

/** The bytes of a safetensors file in memory (small files, tests, uploads). */
export function serializeSafetensors(tensors: ReadonlyMap<string, TensorToWrite>, metadata?: Record<string, string>, source = '<memory>'): Uint8Array {
  const p = plan(tensors, metadata, source);
  const out = new Uint8Array(p.size);
  let pos = 0;
  for (const c of chunks(p, source)) {
    out.set(c, pos);
    pos += c.length;
  }
  return out;
}

/**
 * Write a safetensors file atomically: into a temporary file next to `path`, flushed to disk, then
 * renamed over `path`, so that a reader (or a resumed workflow) sees the old file or the new one,
 * never half of one. Returns the file's size in bytes.
 */
export async function writeSafetensors(path: string, tensors: ReadonlyMap<string, TensorToWrite>, metadata?: Record<string, string>): Promise<number> {
  const p = plan(tensors, metadata, path);
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fh = await open(tmp, 'w').catch((err: NodeJS.ErrnoException) => {
    throw new CheckpointError(`${path}: cannot create ${tmp}: ${err.code ?? err.message}`, path);
  });
  try {
    try {
      for (const c of chunks(p, path)) {
        for (let pos = 0; pos < c.length; ) {
          const { bytesWritten } = await fh.write(c, pos, Math.min(c.length - pos, IO_CHUNK_BYTES));
          pos += bytesWritten;
        }
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    await syncDir(dirname(path));
  } catch (err) {
    await unlink(tmp).catch(() => {});
    if (err instanceof CheckpointError) throw err;
    throw new CheckpointError(`${path}: write failed: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, path);
  }
  return p.size;
}

/** Flush a directory entry (a rename) to disk; best effort, since not every platform can open a directory. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r').catch(() => null);
  if (!fh) return;
  await fh.sync().catch(() => {});
  await fh.close();
}
