/**
 * The record codec of tokenized datasets (store/token-shards.ts): a dataset declares its fields
 * once, as dotted paths into a nested plain object, each with a kind from FIELD_KINDS:
 *
 *   const codec = new RecordCodec<PreferenceExample>({
 *     'chosen.ids': 'u32[]', 'chosen.lossMask': 'u8[]', 'rejected.ids': 'u32[]', 'rejected.lossMask': 'u8[]',
 *     chosenReward: 'f64', rejectedReward: 'f64',
 *   });
 *   const arrays = codec.encode(example);   // one typed array per field, in spec order (validated)
 *   const back = codec.decode(arrays);       // nested plain objects with plain number[] arrays
 *
 * Round trips are bit-identical: u32/u8/i32 exactly, f64 exactly, f32 as Math.fround of the input
 * (an f32 field never holds more than f32 precision). `encode` refuses, naming the field (and the
 * element), anything that would not come back equal: a missing field, a key the spec does not
 * declare, a u32 that is not an integer in 0..2^32-1, a finite value that overflows f32.
 */

/**
 * Every field kind: its code in the shard index, element size in bytes, typed array, the values
 * it accepts, and its little-endian read and write (shards are little-endian on every host).
 */
export const FIELD_KINDS = {
  'u32[]': {
    code: 1, bytes: 4, array: true, Typed: Uint32Array, what: 'a u32 (an integer in 0..4294967295)',
    ok: (v: number) => Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff,
    get: (d: DataView, o: number) => d.getUint32(o, true), set: (d: DataView, o: number, v: number) => d.setUint32(o, v, true),
  },
  'u8[]': {
    code: 2, bytes: 1, array: true, Typed: Uint8Array, what: 'a u8 (an integer in 0..255)',
    ok: (v: number) => Number.isInteger(v) && v >= 0 && v <= 0xff,
    get: (d: DataView, o: number) => d.getUint8(o), set: (d: DataView, o: number, v: number) => d.setUint8(o, v),
  },
  'f32[]': {
    code: 3, bytes: 4, array: true, Typed: Float32Array, what: 'an f32 (a number within ±3.4e38)',
    ok: (v: number) => typeof v === 'number' && (!Number.isFinite(v) || Number.isFinite(Math.fround(v))),
    get: (d: DataView, o: number) => d.getFloat32(o, true), set: (d: DataView, o: number, v: number) => d.setFloat32(o, v, true),
  },
  f64: {
    code: 4, bytes: 8, array: false, Typed: Float64Array, what: 'an f64 (a number)',
    ok: (v: number) => typeof v === 'number',
    get: (d: DataView, o: number) => d.getFloat64(o, true), set: (d: DataView, o: number, v: number) => d.setFloat64(o, v, true),
  },
  i32: {
    code: 5, bytes: 4, array: false, Typed: Int32Array, what: 'an i32 (an integer in -2147483648..2147483647)',
    ok: (v: number) => Number.isInteger(v) && v >= -0x8000_0000 && v <= 0x7fff_ffff,
    get: (d: DataView, o: number) => d.getInt32(o, true), set: (d: DataView, o: number, v: number) => d.setInt32(o, v, true),
  },
} as const;

export type FieldKind = keyof typeof FIELD_KINDS;
/** Dotted path → kind, in the order the fields are stored. */
export type FieldSpec = Record<string, FieldKind>;
/** What `encode` gives per field: the values as the field's typed array (scalars: length 1). */
export type FieldArray = Uint32Array | Uint8Array | Float32Array | Float64Array | Int32Array;

export interface FieldInfo {
  path: string;
  segments: readonly string[];
  kind: FieldKind;
}

/** A record or a field spec that cannot be stored as declared. Never retryable: the data is bad. */
export class RecordCodecError extends Error {
  override name = 'RecordCodecError';
  readonly retryable = false;
  constructor(
    /** The dotted path of the offending field, or null when the spec as a whole is wrong. */
    readonly field: string | null,
    message: string,
  ) {
    super(message);
  }
}

const SEGMENT = /^[A-Za-z_$][A-Za-z0-9_$-]*$/;
const RESERVED = new Set(['__proto__', 'prototype', 'constructor']);
const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);

/** Checks a field spec (names, kinds, no field nested inside another) and returns its fields. */
export function parseFieldSpec(spec: FieldSpec): FieldInfo[] {
  if (!isPlainObject(spec)) throw new RecordCodecError(null, 'a field spec must be an object of path → kind');
  const fields = Object.entries(spec).map(([path, kind]): FieldInfo => {
    const segments = path.split('.');
    if (!segments.every((s) => SEGMENT.test(s) && !RESERVED.has(s))) {
      throw new RecordCodecError(path, `field ${JSON.stringify(path)}: a path is dot-separated identifiers`);
    }
    if (!Object.hasOwn(FIELD_KINDS, kind)) {
      throw new RecordCodecError(path, `field "${path}": unknown kind ${JSON.stringify(kind)} (one of ${Object.keys(FIELD_KINDS).join(', ')})`);
    }
    return { path, segments, kind };
  });
  if (fields.length === 0) throw new RecordCodecError(null, 'a field spec needs at least one field');
  const paths = new Set(fields.map((f) => f.path));
  for (const f of fields) {
    for (let i = 1; i < f.segments.length; i++) {
      const parent = f.segments.slice(0, i).join('.');
      if (paths.has(parent)) throw new RecordCodecError(f.path, `field "${f.path}" lies inside field "${parent}", which is not an object`);
    }
  }
  return fields;
}

export class RecordCodec<T = Record<string, unknown>> {
  readonly fields: readonly FieldInfo[];
  /** The declared spec, in field order (as recorded in a dataset's manifest). */
  readonly spec: Readonly<FieldSpec>;
  /** The object keys at each level, for the check against undeclared keys. */
  private readonly shape: Map<string, Set<string>>;

  constructor(spec: FieldSpec) {
    this.fields = parseFieldSpec(spec);
    this.spec = Object.fromEntries(this.fields.map((f) => [f.path, f.kind]));
    this.shape = new Map();
    for (const f of this.fields) {
      for (let i = 0; i < f.segments.length; i++) {
        const parent = f.segments.slice(0, i).join('.');
        if (!this.shape.has(parent)) this.shape.set(parent, new Set());
        this.shape.get(parent)!.add(f.segments[i]);
      }
    }
  }

  /** The example's values as one typed array per field, in field order; throws RecordCodecError. */
  encode(example: T): FieldArray[] {
    this.checkKeys(example, '');
    return this.fields.map((f) => {
      let v: unknown = example;
      for (const s of f.segments) v = isPlainObject(v) && Object.hasOwn(v, s) ? v[s] : undefined;
      const k = FIELD_KINDS[f.kind];
      if (v === undefined) throw new RecordCodecError(f.path, `record field "${f.path}" (${f.kind}) is missing`);
      if (!k.array) {
        if (typeof v !== 'number' || !k.ok(v)) {
          throw new RecordCodecError(f.path, `record field "${f.path}" = ${show(v)} is not ${k.what}`);
        }
        return k.Typed.of(v);
      }
      if (!Array.isArray(v) && !(ArrayBuffer.isView(v) && !(v instanceof DataView))) {
        throw new RecordCodecError(f.path, `record field "${f.path}" (${f.kind}) must be an array of numbers, got ${show(v)}`);
      }
      const src = v as ArrayLike<unknown>;
      for (let i = 0; i < src.length; i++) {
        const x = src[i];
        if (typeof x !== 'number' || !k.ok(x)) {
          throw new RecordCodecError(f.path, `record field "${f.path}"[${i}] = ${show(x)} is not ${k.what}`);
        }
      }
      return k.Typed.from(src as ArrayLike<number>);
    });
  }

  /** Nested plain objects from one array per field (field order); arrays come back as number[]. */
  decode(values: readonly ArrayLike<number>[]): T {
    if (values.length !== this.fields.length) {
      throw new RecordCodecError(null, `decode got ${values.length} fields, the spec has ${this.fields.length}`);
    }
    const out: Record<string, unknown> = {};
    this.fields.forEach((f, i) => {
      const v = values[i];
      let node = out;
      for (const s of f.segments.slice(0, -1)) node = (node[s] ??= {}) as Record<string, unknown>;
      if (FIELD_KINDS[f.kind].array) node[f.segments.at(-1)!] = Array.isArray(v) ? v : Array.from(v);
      else {
        if (v.length !== 1) throw new RecordCodecError(f.path, `field "${f.path}" (${f.kind}) is a scalar, got ${v.length} values`);
        node[f.segments.at(-1)!] = v[0];
      }
    });
    return out as T;
  }

  /** Refuses keys the spec does not declare: they would be silently dropped. */
  private checkKeys(v: unknown, path: string): void {
    const keys = this.shape.get(path);
    if (!keys) return; // a field's value: checked by encode
    if (!isPlainObject(v)) {
      throw new RecordCodecError(path || null, path ? `record field "${path}" must be an object, got ${show(v)}` : `a record must be an object, got ${show(v)}`);
    }
    for (const k of Object.keys(v)) {
      const sub = path ? `${path}.${k}` : k;
      if (!keys.has(k)) throw new RecordCodecError(sub, `record has key "${sub}", which the field spec does not declare (declared: ${Object.keys(this.spec).join(', ')})`);
      this.checkKeys(v[k], sub);
    }
  }
}

function show(v: unknown): string {
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  if (v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  return typeof v === 'object' ? `a ${v.constructor?.name ?? 'object'}` : typeof v;
}
