/**
 * The safetensors reader and writer: round trips, bit-exact half-precision rounding, the byte
 * layout the Python library writes, zero-copy reads, a file written by the Python library, and
 * the exact message of every malformed-file error.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { roundToBf16 } from '../../kernels/dtype.js';
import { CheckpointError } from '../../models/hf/errors.js';
import {
  bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits, parseSafetensors, readSafetensors,
  serializeSafetensors, writeSafetensors,
} from '../../models/hf/safetensors.js';
import type { TensorToWrite } from '../../models/hf/safetensors.js';

const TESTDATA = fileURLToPath(new URL('../../models/hf/testdata/', import.meta.url));

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'aligner-safetensors-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** JSON-safe numbers of expected.json back to numbers. */
const num = (v: number | string): number => (typeof v === 'string' ? Number(v) : v);

/** A hand-made file: 8-byte length, header text (space-padded to 8 unless `pad` is false), data bytes. */
function craft(header: object | string, data: number[] | Uint8Array = [], pad = true): Uint8Array {
  let text = typeof header === 'string' ? header : JSON.stringify(header);
  if (pad) text = text.padEnd(Math.ceil(text.length / 8) * 8, ' ');
  const head = Buffer.from(text, 'utf8');
  const out = Buffer.alloc(8 + head.length + data.length);
  out.writeBigUInt64LE(BigInt(head.length), 0);
  head.copy(out, 8);
  out.set(data, 8 + head.length);
  return out;
}

async function fileOf(name: string, bytes: Uint8Array): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, bytes);
  return p;
}

/** The 16-bit patterns a writer stores for `values` in `dtype`, read back from the file's data section. */
function storedBits(dtype: 'BF16' | 'F16', values: number[]): number[] {
  const bytes = serializeSafetensors(new Map([['x', { dtype, shape: [values.length], data: values }]]));
  const n = Number(Buffer.from(bytes).readBigUInt64LE(0));
  const data = Buffer.from(bytes.subarray(8 + n));
  return values.map((_, i) => data.readUInt16LE(2 * i));
}

describe('round trips', () => {
  it('F32, BF16, F16 and I32 tensors with scalar and empty shapes, and metadata', async () => {
    const vals = [0.1, -2.5, 1 / 3, 1e-3, 7, -0];
    const tensors = new Map<string, TensorToWrite>([
      ['w.f32', { dtype: 'F32', shape: [2, 3], data: vals }],
      ['w.bf16', { dtype: 'BF16', shape: [3, 2], data: vals }],
      ['w.f16', { dtype: 'F16', shape: [6], data: vals }],
      ['ids', { dtype: 'I32', shape: [2, 2], data: [0, -1, 2147483647, -2147483648] }],
      ['scalar', { dtype: 'F32', shape: [], data: [42.5] }],
      ['empty', { dtype: 'BF16', shape: [0, 3], data: [] }],
    ]);
    const path = join(dir, 'roundtrip.safetensors');
    const size = await writeSafetensors(path, tensors, { format: 'pt', note: 'hello' });
    expect((await readFile(path)).length).toBe(size);
    const f = await readSafetensors(path);
    expect(f.metadata).toEqual({ format: 'pt', note: 'hello' });
    const got = (name: string) => f.tensors.get(name)!;
    expect([...got('w.f32').data]).toEqual(vals.map(Math.fround));
    expect([...got('w.bf16').data]).toEqual(vals.map(roundToBf16));
    expect([...got('w.f16').data]).toEqual(vals.map((v) => f16BitsToF32(f32ToF16Bits(v))));
    expect(got('w.f16').data[2]).toBe(0.333251953125); // 1/3 in f16
    expect(got('ids').data).toEqual(new Int32Array([0, -1, 2147483647, -2147483648]));
    expect(got('scalar')).toEqual({ dtype: 'F32', shape: [], data: new Float32Array([42.5]) });
    expect(got('empty')).toEqual({ dtype: 'BF16', shape: [0, 3], data: new Float32Array(0) });
    expect(Object.is(got('w.bf16').data[5], -0)).toBe(true);
    expect(got('w.bf16').shape).toEqual([3, 2]);
  });

  it('an empty file (no tensors) round-trips', () => {
    const bytes = serializeSafetensors(new Map());
    expect(Buffer.from(bytes).toString('latin1')).toBe('\x08\0\0\0\0\0\0\0{}      ');
    expect(parseSafetensors(bytes, 'mem').tensors.size).toBe(0);
  });

  it('writes the layout the Python library writes: metadata first, widest dtype first, then name by UTF-8 bytes', () => {
    const t = (dtype: TensorToWrite['dtype']): TensorToWrite => ({ dtype, shape: [1], data: [1] });
    const tensors = new Map<string, TensorToWrite>([
      ['a', t('F16')], ['b', t('BF16')], ['c', t('I32')], ['d', t('F32')], ['\u{1F600}', t('F32')], ['\uFF21', t('F32')], ['0', t('F32')],
    ]);
    const bytes = Buffer.from(serializeSafetensors(tensors, { format: 'pt' }));
    const n = Number(bytes.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const header = bytes.subarray(8, 8 + n).toString('utf8');
    expect(header.trimEnd()).toBe(
      '{"__metadata__":{"format":"pt"},' +
        '"0":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},' +
        '"d":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},' +
        '"\uFF21":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},' +
        '"\u{1F600}":{"dtype":"F32","shape":[1],"data_offsets":[12,16]},' +
        '"c":{"dtype":"I32","shape":[1],"data_offsets":[16,20]},' +
        '"b":{"dtype":"BF16","shape":[1],"data_offsets":[20,22]},' +
        '"a":{"dtype":"F16","shape":[1],"data_offsets":[22,24]}}',
    );
    expect(Buffer.byteLength(header.trimEnd())).toBeGreaterThan(n - 8); // padded with fewer than 8 spaces
    expect(bytes.length).toBe(8 + n + 24);
  });
});

describe('half-precision rounding, bit-exact', () => {
  it('F32 → BF16 rounds to nearest even', () => {
    const cases: [number, number][] = [
      [0.1, 0x3dcd], [1 / 3, 0x3eab], [65504, 0x4780], [-0, 0x8000], [0, 0x0000], [NaN, 0x7fc0],
      [Infinity, 0x7f80], [-Infinity, 0xff80],
      [1.00390625, 0x3f80], // 1 + 2^-8: a tie, stays on the even 0x3f80
      [1.01171875, 0x3f82], // 1 + 3·2^-8: a tie, goes up to the even 0x3f82
      [3.4028234663852886e38, 0x7f80], // f32 max rounds past bf16 max: Inf
      [1e-40, 0x0001], // f32 subnormal 0x000116c2 rounds to the bf16 subnormal 0x0001
    ];
    expect(storedBits('BF16', cases.map(([x]) => x)).map(hex)).toEqual(cases.map(([, b]) => hex(b)));
  });

  it('F32 → BF16 agrees with the engine\'s roundToBf16 on random bit patterns', () => {
    const f = new Float32Array(1), u = new Uint32Array(f.buffer);
    let seed = 12345;
    for (let i = 0; i < 20000; i++) {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      u[0] = seed;
      const want = roundToBf16(f[0]);
      const got = bf16BitsToF32(f32ToBf16Bits(f[0]));
      if (Number.isNaN(want)) expect(Number.isNaN(got)).toBe(true);
      else expect(Object.is(got, want)).toBe(true);
    }
  });

  it('F32 → F16 is IEEE round to nearest even, with subnormals, overflow and NaN', () => {
    const cases: [number, number][] = [
      [0.1, 0x2e66], [1 / 3, 0x3555], [65504, 0x7bff], [65519, 0x7bff], [65520, 0x7c00], [1e5, 0x7c00],
      [1e-8, 0x0000], // below 2^-25, half the smallest subnormal: underflows to +0
      [1e-7, 0x0002], // 1.68 · 2^-24: subnormal, rounds to 2 · 2^-24
      [2 ** -24, 0x0001], [3 * 2 ** -26, 0x0001], // 0.75 · 2^-24 rounds up to the smallest subnormal
      [2 ** -25, 0x0000], [3 * 2 ** -25, 0x0002], // exact ties (0.5 and 1.5 · 2^-24) go to even
      [6e-5, 0x03ef], [2 ** -14 - 2 ** -25, 0x0400], // the largest subnormal tie carries into the smallest normal
      [-0, 0x8000], [NaN, 0x7e00], [Infinity, 0x7c00], [-Infinity, 0xfc00], [-2.5, 0xc100],
    ];
    expect(storedBits('F16', cases.map(([x]) => x)).map(hex)).toEqual(cases.map(([, b]) => hex(b)));
  });

  it('every F16 bit pattern decodes and re-encodes to itself', () => {
    for (let h = 0; h < 65536; h++) {
      const v = f16BitsToF32(h);
      if (Number.isNaN(v)) continue;
      if (f32ToF16Bits(v) !== h) throw new Error(`f16 0x${h.toString(16)} → ${v} → 0x${f32ToF16Bits(v).toString(16)}`);
    }
    expect(f16BitsToF32(0x0001)).toBe(2 ** -24);
    expect(f16BitsToF32(0x7bff)).toBe(65504);
  });
});

function hex(b: number): string {
  return `0x${b.toString(16).padStart(4, '0')}`;
}

describe('zero-copy reads', () => {
  it('aligned F32 and I32 tensors are views into the one buffer that holds the file', async () => {
    const path = join(dir, 'aligned.safetensors');
    await writeSafetensors(path, new Map<string, TensorToWrite>([
      ['a', { dtype: 'F32', shape: [3], data: [1, 2, 3] }],
      ['b', { dtype: 'I32', shape: [1], data: [7] }],
      ['c', { dtype: 'BF16', shape: [1], data: [1] }],
    ]));
    const f = await readSafetensors(path);
    const a = f.tensors.get('a')!.data, b = f.tensors.get('b')!.data;
    expect(a.buffer).toBe(b.buffer);
    expect(a.buffer.byteLength).toBe((await readFile(path)).length);
    expect(f.tensors.get('c')!.data.buffer).not.toBe(a.buffer); // converted, so a fresh array
  });

  it('a misaligned F32 tensor (unpadded header) is copied and still correct', () => {
    const data = Buffer.alloc(8);
    data.writeFloatLE(1.5, 0);
    data.writeFloatLE(-3, 4);
    const bytes = craft({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, data, false);
    expect((bytes.length - 8) % 4).not.toBe(0); // the data section starts off a 4-byte boundary
    const x = parseSafetensors(bytes, 'mem').tensors.get('x')!.data;
    expect([...x]).toEqual([1.5, -3]);
    expect(x.buffer).not.toBe(bytes.buffer);
  });

  it('the data of a file inside a larger buffer at an odd offset reads correctly', () => {
    const file = serializeSafetensors(new Map([['x', { dtype: 'F32', shape: [2], data: [4, 5] } as TensorToWrite]]));
    const big = new Uint8Array(file.length + 3);
    big.set(file, 3);
    expect([...parseSafetensors(big.subarray(3), 'mem').tensors.get('x')!.data]).toEqual([4, 5]);
  });
});

describe('the Python safetensors library', () => {
  interface Expected {
    metadata: Record<string, string>;
    tensors: Record<string, { dtype: string; shape: number[]; values: (number | string)[] }>;
    rounding_inputs: (number | string)[];
  }
  const expected = async (): Promise<Expected> => JSON.parse(await readFile(join(TESTDATA, 'expected.json'), 'utf8'));

  it('reads the file the library wrote (F32, BF16, F16, I64, BOOL, __metadata__)', async () => {
    const want = await expected();
    const f = await readSafetensors(join(TESTDATA, 'python.safetensors'));
    expect(f.metadata).toEqual(want.metadata);
    expect([...f.tensors.keys()].sort()).toEqual(Object.keys(want.tensors).sort());
    for (const [name, t] of Object.entries(want.tensors)) {
      const got = f.tensors.get(name)!;
      expect({ name, dtype: got.dtype, shape: got.shape }).toEqual({ name, dtype: t.dtype, shape: t.shape });
      expect(got.data).toBeInstanceOf(t.dtype === 'I64' || t.dtype === 'BOOL' ? Int32Array : Float32Array);
      expect([...got.data]).toEqual(t.values.map(num)); // toEqual tells -0 from 0 and matches NaN
    }
  });

  it('writes what the library writes (check by hand: make_safetensors_fixture.py --check)', async () => {
    // The fixture's float tensors in their own dtype, its integer tensors as I32, and the rounding
    // inputs as BF16 and F16. The script's --check mode serializes the same tensors with the
    // library and compares bytes; set ALIGN_SAFETENSORS_CHECK_OUT to write the file for it.
    const want = await expected();
    const f = await readSafetensors(join(TESTDATA, 'python.safetensors'));
    const tensors = new Map<string, TensorToWrite>();
    for (const [name, t] of f.tensors) {
      const dtype = t.dtype === 'F32' || t.dtype === 'BF16' || t.dtype === 'F16' ? t.dtype : 'I32';
      tensors.set(name, { dtype, shape: t.shape, data: t.data });
    }
    const inputs = want.rounding_inputs.map(num);
    tensors.set('rounding.bf16', { dtype: 'BF16', shape: [inputs.length], data: inputs });
    tensors.set('rounding.f16', { dtype: 'F16', shape: [inputs.length], data: inputs });
    const out = process.env.ALIGN_SAFETENSORS_CHECK_OUT ?? join(dir, 'for-python.safetensors');
    await writeSafetensors(out, tensors, { format: 'pt' });
    const back = await readSafetensors(out);
    for (const [name, t] of f.tensors) expect([...back.tensors.get(name)!.data]).toEqual([...t.data]);
    expect([...back.tensors.get('rounding.bf16')!.data]).toEqual(inputs.map(roundToBf16));
  });
});

describe('malformed files: every message names the file', () => {
  const read = async (name: string, bytes: Uint8Array) => {
    const p = await fileOf(name, bytes);
    return { p, err: await readSafetensors(p).then(() => null, (e: unknown) => e) };
  };
  const expectError = async (name: string, bytes: Uint8Array, message: (p: string) => string) => {
    const { p, err } = await read(name, bytes);
    expect(err).toBeInstanceOf(CheckpointError);
    expect((err as CheckpointError).message).toBe(message(p));
    expect((err as CheckpointError).path).toBe(p);
  };
  const f32x2 = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };

  it('a file shorter than the 8-byte length', async () => {
    await expectError('short.safetensors', new Uint8Array(5), (p) => `${p}: not a safetensors file: 5 bytes, shorter than the 8-byte header length`);
  });

  it('a header length beyond the file', async () => {
    const bytes = Buffer.alloc(18);
    bytes.writeBigUInt64LE(1000n, 0);
    await expectError('long-header.safetensors', bytes, (p) => `${p}: header length 1000 runs past the end of the file (18 bytes, so at most 10 after the length)`);
  });

  it('a header that is not JSON, or not an object, or not UTF-8', async () => {
    const { p, err } = await read('not-json.safetensors', craft('{"x": nope}'));
    expect(err).toBeInstanceOf(CheckpointError);
    expect((err as Error).message.startsWith(`${p}: header (bytes 8..24) is not valid JSON: `)).toBe(true);
    await expectError('array.safetensors', craft('[1, 2]'), (p) => `${p}: header (bytes 8..16) is not a JSON object`);
    const latin1 = craft('{"?": 1}');
    latin1[10] = 0xff; // the '?': a lone 0xff byte is never UTF-8
    await expectError('latin1.safetensors', latin1, (p) => `${p}: header (bytes 8..16) is not valid UTF-8`);
  });

  it('data_offsets that do not match dtype × shape', async () => {
    const bytes = craft({ w: { dtype: 'BF16', shape: [2, 3], data_offsets: [0, 10] } }, new Array(10).fill(0));
    await expectError('size.safetensors', bytes, (p) => `${p}: tensor "w" is BF16 [2,3], which takes 12 bytes, but its data_offsets [0, 10] span 10`);
  });

  it('a truncated file names the tensor and the missing bytes', async () => {
    const whole = serializeSafetensors(new Map<string, TensorToWrite>([
      ['a', { dtype: 'F32', shape: [4], data: [1, 2, 3, 4] }],
      ['b', { dtype: 'F32', shape: [4], data: [1, 2, 3, 4] }],
    ]));
    await expectError('truncated.safetensors', whole.subarray(0, whole.length - 6), (p) =>
      `${p}: file is truncated: tensor "b" needs data bytes [16, 32) but the data section has only 26; 6 bytes are missing`);
  });

  it('bytes after the last tensor', async () => {
    await expectError('trailing.safetensors', craft({ x: f32x2 }, new Array(12).fill(0)), (p) =>
      `${p}: 4 bytes after the end of the last tensor's data (at 8): the file is not what its header describes`);
  });

  it('overlapping offsets, gaps, and data that does not start at 0', async () => {
    const overlap = { a: f32x2, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } };
    await expectError('overlap.safetensors', craft(overlap, new Array(12).fill(0)), (p) =>
      `${p}: tensor "b" at data_offsets [4, 12] overlaps tensor "a" at [0, 8]`);
    const gap = { b: { dtype: 'F32', shape: [2], data_offsets: [12, 20] }, a: f32x2 };
    await expectError('gap.safetensors', craft(gap, new Array(20).fill(0)), (p) =>
      `${p}: 4 unused bytes between tensor "a" (ends at 8) and tensor "b" (starts at 12): offsets must tile the data section`);
    const late = { a: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } };
    await expectError('late.safetensors', craft(late, new Array(12).fill(0)), (p) =>
      `${p}: 4 unused bytes between the start of the data section and tensor "a" (starts at 4): offsets must tile the data section`);
  });

  it('an unknown dtype, a dtype we cannot convert, and malformed entries', async () => {
    await expectError('dtype.safetensors', craft({ w: { dtype: 'F12', shape: [1], data_offsets: [0, 2] } }, [0, 0]), (p) =>
      `${p}: tensor "w" has unknown dtype "F12" (the format defines BOOL, F4, F6_E2M3, F6_E3M2, U8, I8, F8_E5M2, F8_E4M3, F8_E8M0, I16, U16, F16, BF16, I32, U32, F32, F64, C64, I64, U64)`);
    await expectError('fp8.safetensors', craft({ w: { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] } }, [0, 0]), (p) =>
      `${p}: tensor "w" has dtype F8_E4M3, which this reader cannot convert (it reads F32, F16, BF16, F64, BOOL and 8- to 64-bit integers)`);
    await expectError('shape.safetensors', craft({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, [0, 0, 0, 0]), (p) =>
      `${p}: tensor "w": shape [-1] is not a list of non-negative integers`);
    await expectError('offsets.safetensors', craft({ w: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, [0, 0, 0, 0]), (p) =>
      `${p}: tensor "w": data_offsets [4,0] is not a pair [begin, end] with 0 <= begin <= end`);
    await expectError('meta.safetensors', craft({ __metadata__: { n: 1 } }), (p) => `${p}: "__metadata__" value of "n" is 1, not a string`);
  });

  it('I64 values that do not fit in int32', async () => {
    const data = Buffer.alloc(16);
    data.writeBigInt64LE(5n, 0);
    data.writeBigInt64LE(2n ** 31n, 8);
    await expectError('i64.safetensors', craft({ ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, data), (p) =>
      `${p}: tensor "ids": I64 value 2147483648 at index 1 does not fit in int32`);
    const ok = Buffer.alloc(16);
    ok.writeBigInt64LE(-(2n ** 31n), 0);
    ok.writeBigUInt64LE(2n ** 64n - 1n, 8); // -1
    const f = parseSafetensors(craft({ ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, ok), 'mem');
    expect(f.tensors.get('ids')!.data).toEqual(new Int32Array([-(2 ** 31), -1]));
  });

  it('a missing file', async () => {
    const p = join(dir, 'nope.safetensors');
    await expect(readSafetensors(p)).rejects.toThrow(new CheckpointError(`${p}: cannot open: ENOENT`, p));
  });
});

describe('writer errors', () => {
  const one = (t: Partial<TensorToWrite>, name = 'w'): Map<string, TensorToWrite> =>
    new Map([[name, { dtype: 'F32', shape: [2], data: [1, 2], ...t } as TensorToWrite]]);

  it('rejects bad tensors, naming the file and the tensor', async () => {
    const p = join(dir, 'bad.safetensors');
    const cases: [Map<string, TensorToWrite>, string][] = [
      [one({ shape: [3] }), `${p}: tensor "w": 2 values do not fill shape [3] (3 elements)`],
      [one({ shape: [2.5] }), `${p}: tensor "w": shape [2.5] is not a list of non-negative integers`],
      [one({ dtype: 'I64' as TensorToWrite['dtype'] }), `${p}: tensor "w": cannot write dtype "I64" (F32, BF16, F16, I32)`],
      [one({}, '__metadata__'), `${p}: "__metadata__" is reserved and cannot name a tensor`],
      [one({ dtype: 'I32', data: [1, 0.5] }), `${p}: tensor "w": value 0.5 at index 1 is not an int32`],
      [one({ dtype: 'I32', data: [2 ** 31, 0] }), `${p}: tensor "w": value 2147483648 at index 0 is not an int32`],
    ];
    for (const [tensors, message] of cases) await expect(writeSafetensors(p, tensors)).rejects.toThrow(new CheckpointError(message, p));
    await expect(writeSafetensors(p, one({}), { n: 1 } as unknown as Record<string, string>)).rejects.toThrow(
      new CheckpointError(`${p}: metadata "n" is 1, not a string`, p),
    );
  });

  it('a failed write leaves the old file intact and no temporary file behind', async () => {
    const sub = await mkdtemp(join(dir, 'atomic-'));
    const p = join(sub, 'w.safetensors');
    await writeSafetensors(p, one({}));
    const before = await readFile(p);
    await expect(writeSafetensors(p, one({ dtype: 'I32', data: [1, NaN] }))).rejects.toThrow(CheckpointError);
    expect(await readFile(p)).toEqual(before);
    expect(await readdir(sub)).toEqual(['w.safetensors']);
  });
});
