/**
 * TensorBoard event files, written without TensorFlow: TFRecord framing of `Event` protocol
 * buffers holding scalar `Summary` values, as tensorboard's own reader expects them.
 *
 *   record = uint64 length · uint32 masked_crc32c(length) · data · uint32 masked_crc32c(data)
 *   Event  = 1: wall_time (double) · 2: step (int64) · 3: file_version (string) | 5: summary
 *   Summary.Value = 1: tag (string) · 2: simple_value (float)
 *
 * (tensorflow/core/util/event.proto, summary.proto; tensorflow/core/lib/io/record_writer.cc.)
 * The protobuf wire format is written with protobufjs's Writer; the messages are three, so no
 * .proto file is loaded.
 */
import protobuf from 'protobufjs';

const { Writer } = protobuf;

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

/** A protobuf field key: field number and wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32). */
const key = (field: number, wireType: 0 | 1 | 2 | 5) => (field << 3) | wireType;

/** One TFRecord frame around `data`. */
function frame(data: Uint8Array): Buffer {
  const head = Buffer.alloc(12);
  head.writeBigUInt64LE(BigInt(data.length), 0);
  head.writeUInt32LE(maskedCrc32c(head.subarray(0, 8)), 8);
  const tail = Buffer.alloc(4);
  tail.writeUInt32LE(maskedCrc32c(data), 0);
  return Buffer.concat([head, data, tail]);
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
  const frames = [frame(Writer.create().uint32(key(1, 1)).double(wallTime).uint32(key(3, 2)).string('brain.Event:2').finish())];
  const bySteps = new Map<number, Scalar[]>();
  for (const s of scalars) bySteps.set(s.step, [...(bySteps.get(s.step) ?? []), s]);
  for (const [step, values] of [...bySteps].sort((a, b) => a[0] - b[0])) {
    const event = Writer.create().uint32(key(1, 1)).double(wallTime).uint32(key(2, 0)).int64(step).uint32(key(5, 2)).fork();
    for (const v of values) event.uint32(key(1, 2)).fork().uint32(key(1, 2)).string(v.tag).uint32(key(2, 5)).float(v.value).ldelim();
    frames.push(frame(event.ldelim().finish()));
  }
  return Buffer.concat(frames);
}
