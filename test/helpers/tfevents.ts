/** A TensorBoard event-file reader for tests: checks every frame's CRCs and decodes the scalars. */
import protobuf from 'protobufjs';
import { maskedCrc32c } from '../../activities/tracking/tensorboard.js';

export interface DecodedEvent {
  wallTime: number;
  step: number;
  fileVersion?: string;
  values: { tag: string; value: number }[];
}

/** Fields of one protobuf message: number → raw values (numbers for varints, bytes otherwise). */
function fields(b: Uint8Array): Map<number, (bigint | Uint8Array)[]> {
  const out = new Map<number, (bigint | Uint8Array)[]>();
  const r = protobuf.Reader.create(b);
  while (r.pos < r.len) {
    const key = r.uint32();
    const field = key >>> 3, wire = key & 7;
    let v: bigint | Uint8Array;
    if (wire === 0) v = BigInt(r.int64().toString());
    else if (wire === 1) [v, r.pos] = [b.subarray(r.pos, r.pos + 8), r.pos + 8];
    else if (wire === 5) [v, r.pos] = [b.subarray(r.pos, r.pos + 4), r.pos + 4];
    else if (wire === 2) v = r.bytes();
    else throw new Error(`wire type ${wire}`);
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
