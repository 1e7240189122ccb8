/** A TensorBoard event-file reader for tests: checks every frame's CRCs and decodes the scalars. */
import { maskedCrc32c } from '../../activities/tracking/tensorboard.js';

export interface DecodedEvent {
  wallTime: number;
  step: number;
  fileVersion?: string;
  values: { tag: string; value: number }[];
}

function varint(b: Uint8Array, at: number): [bigint, number] {
  let x = 0n, shift = 0n;
  for (;;) {
    const byte = b[at++];
    x |= BigInt(byte & 0x7f) << shift;
    shift += 7n;
    if (!(byte & 0x80)) return [x, at];
  }
}

/** Fields of one protobuf message: number → raw values (numbers for varints, bytes otherwise). */
function fields(b: Uint8Array): Map<number, (bigint | Uint8Array)[]> {
  const out = new Map<number, (bigint | Uint8Array)[]>();
  for (let at = 0; at < b.length;) {
    let key: bigint;
    [key, at] = varint(b, at);
    const field = Number(key >> 3n), wire = Number(key & 7n);
    let v: bigint | Uint8Array;
    if (wire === 0) [v, at] = varint(b, at);
    else if (wire === 1) [v, at] = [b.subarray(at, at + 8), at + 8];
    else if (wire === 5) [v, at] = [b.subarray(at, at + 4), at + 4];
    else if (wire === 2) {
      let n: bigint;
      [n, at] = varint(b, at);
      [v, at] = [b.subarray(at, at + Number(n)), at + Number(n)];
    } else throw new Error(`wire type ${wire}`);
    out.set(field, [...(out.get(field) ?? []), v]);
  }
  return out;
}

const f64 = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, 8).getFloat64(0, true);
const f32 = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, 4).getFloat32(0, true);

export function readEventFile(bytes: Uint8Array): DecodedEvent[] {
  const events: DecodedEvent[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 0; at < bytes.length;) {
    const len = Number(view.getBigUint64(at, true));
    if (view.getUint32(at + 8, true) !== maskedCrc32c(bytes.subarray(at, at + 8))) throw new Error(`bad length CRC at byte ${at}`);
    const data = bytes.subarray(at + 12, at + 12 + len);
    if (view.getUint32(at + 12 + len, true) !== maskedCrc32c(data)) throw new Error(`bad data CRC at byte ${at}`);
    at += 12 + len + 4;
    const ev = fields(data);
    const summary = ev.get(5)?.[0] as Uint8Array | undefined;
    events.push({
      wallTime: f64(ev.get(1)![0] as Uint8Array),
      step: Number((ev.get(2)?.[0] as bigint | undefined) ?? 0n),
      ...(ev.has(3) ? { fileVersion: new TextDecoder().decode(ev.get(3)![0] as Uint8Array) } : {}),
      values: summary ? (fields(summary).get(1) ?? []).map((v) => {
        const value = fields(v as Uint8Array);
        return { tag: new TextDecoder().decode(value.get(1)![0] as Uint8Array), value: f32(value.get(2)![0] as Uint8Array) };
      }) : [],
    });
  }
  return events;
}
