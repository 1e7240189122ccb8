/**
 * TensorBoard event files, written without TensorFlow: TFRecord framing of `Event` protocol
 * buffers holding scalar `Summary` values, as tensorboard's own reader expects them.
 *
 *   record = uint64 length · uint32 masked_crc32c(length) · data · uint32 masked_crc32c(data)
 *   Event  = 1: wall_time (double) · 2: step (int64) · 3: file_version (string) | 5: summary
 *   Summary.Value = 1: tag (string) · 2: simple_value (float)
 *
 * (tensorflow/core/util/event.proto, summary.proto; tensorflow/core/lib/io/record_writer.cc.)
 */

/** CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum TFRecord frames carry. */
const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC32C_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord's masking: a CRC of data that itself holds CRCs must not look like one. */
export function maskedCrc32c(bytes: Uint8Array): number {
  const c = crc32c(bytes);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** Protocol-buffer wire encoding, for the three message types above. */
class ProtoWriter {
  private readonly parts: number[] = [];

  varint(v: number | bigint): this {
    let x = BigInt(v);
    if (x < 0n) x += 1n << 64n; // int64 negatives are ten-byte two's complement
    do {
      let byte = Number(x & 0x7fn);
      x >>= 7n;
      if (x > 0n) byte |= 0x80;
      this.parts.push(byte);
    } while (x > 0n);
    return this;
  }

  tag(field: number, wireType: 0 | 1 | 2 | 5): this {
    return this.varint((field << 3) | wireType);
  }

  double(field: number, v: number): this {
    const b = new DataView(new ArrayBuffer(8));
    b.setFloat64(0, v, true);
    this.tag(field, 1).parts.push(...new Uint8Array(b.buffer));
    return this;
  }

  float(field: number, v: number): this {
    const b = new DataView(new ArrayBuffer(4));
    b.setFloat32(0, v, true);
    this.tag(field, 5).parts.push(...new Uint8Array(b.buffer));
    return this;
  }

  int64(field: number, v: number): this {
    return this.tag(field, 0).varint(v);
  }

  bytes(field: number, v: Uint8Array): this {
    this.tag(field, 2).varint(v.length).parts.push(...v);
    return this;
  }

  string(field: number, v: string): this {
    return this.bytes(field, new TextEncoder().encode(v));
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

/** One TFRecord frame around `data`. */
function frame(data: Uint8Array): Uint8Array {
  const head = new Uint8Array(12);
  const view = new DataView(head.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(head.subarray(0, 8)), true);
  const tail = new Uint8Array(4);
  new DataView(tail.buffer).setUint32(0, maskedCrc32c(data), true);
  const out = new Uint8Array(head.length + data.length + 4);
  out.set(head, 0);
  out.set(data, head.length);
  out.set(tail, head.length + data.length);
  return out;
}

export interface Scalar {
  tag: string;
  step: number;
  value: number;
}

/**
 * A whole event file: the version event TensorBoard reads first, then one event per step with
 * that step's scalars. NaN and ±Infinity are written as they are (float32), as TensorFlow does.
 */
export function eventFile(scalars: readonly Scalar[], wallTime: number): Uint8Array {
  const frames = [frame(new ProtoWriter().double(1, wallTime).string(3, 'brain.Event:2').finish())];
  const bySteps = new Map<number, Scalar[]>();
  for (const s of scalars) bySteps.set(s.step, [...(bySteps.get(s.step) ?? []), s]);
  for (const [step, values] of [...bySteps].sort((a, b) => a[0] - b[0])) {
    const summary = new ProtoWriter();
    for (const v of values) summary.bytes(1, new ProtoWriter().string(1, v.tag).float(2, v.value).finish());
    frames.push(frame(new ProtoWriter().double(1, wallTime).int64(2, step).bytes(5, summary.finish()).finish()));
  }
  const out = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  let at = 0;
  for (const f of frames) {
    out.set(f, at);
    at += f.length;
  }
  return out;
}
