/**
 * The binary layout of a prepared example: dotted paths into the example object and their
 * element kinds. store/ writes and reads packed token shards with it; recipes only declare it.
 */
export type FieldKind = 'u32[]' | 'u8[]' | 'f32[]' | 'f64' | 'i32';
export type FieldSpec = Readonly<Record<string, FieldKind>>;
