/** JSONL reading that points at the exact line of a bad record. */
import { readFile } from 'node:fs/promises';
import { DataError } from '../errors.js';

export interface JsonlRecord {
  /** 1-based line number in the source file. */
  line: number;
  value: Record<string, unknown>;
}

/** Parse JSONL text; blank lines are skipped; each record must be a JSON object. */
export function parseJsonl(text: string, source: string): JsonlRecord[] {
  const out: JsonlRecord[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new DataError(`${source}:${i + 1}: not valid JSON (${(err as Error).message})`, source, i + 1);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new DataError(`${source}:${i + 1}: expected a JSON object, got ${Array.isArray(value) ? 'an array' : typeof value}`, source, i + 1);
    }
    out.push({ line: i + 1, value: value as Record<string, unknown> });
  });
  if (out.length === 0) throw new DataError(`${source}: the dataset is empty`, source, null);
  return out;
}

export async function readJsonl(path: string): Promise<JsonlRecord[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new DataError(`${path}: cannot read the dataset (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, path, null);
  }
  return parseJsonl(text, path);
}

/** A string field of a record, or a DataError naming the key, the file and the line. */
export function stringField(rec: JsonlRecord, key: string, source: string): string {
  const v = rec.value[key];
  if (typeof v !== 'string') {
    throw new DataError(`${source}:${rec.line}: ${v === undefined ? `missing key "${key}"` : `"${key}" must be a string, got ${Array.isArray(v) ? 'an array' : typeof v}`}`, source, rec.line);
  }
  return v;
}
