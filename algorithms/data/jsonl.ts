/**
 * JSONL reading that points at the exact line of a bad record.
 *
 * `streamJsonl` reads a file line by line (node:readline over a read stream), so memory does not
 * depend on the file's size; `readJsonl` collects it; `parseJsonl` parses text already in memory.
 * All three give the same errors: `file:line: not valid JSON (…)`, `file:line: expected a JSON
 * object, got …`, `file: the dataset is empty`, `file: cannot read the dataset (ENOENT)`.
 * Blank lines are skipped but counted, so line numbers are the editor's. A UTF-8 byte-order mark
 * on the first line is ignored.
 */
import { open } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { DataError } from '../errors.js';

export interface JsonlRecord {
  /** 1-based line number in the source file. */
  line: number;
  value: Record<string, unknown>;
}

/** One line of JSONL → a record, or null for a blank line. */
function parseLine(raw: string, line: number, source: string): JsonlRecord | null {
  const text = (line === 1 ? raw.replace(/^\uFEFF/, '') : raw).trim();
  if (text === '') return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new DataError(`${source}:${line}: not valid JSON (${jsonSyntaxProblem(err as Error)})`, source, line);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new DataError(`${source}:${line}: expected a JSON object, got ${Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value}`, source, line);
  }
  return { line, value: value as Record<string, unknown> };
}

/**
 * What JSON.parse found wrong, without the text it quotes: V8 echoes the start of the line
 * (`Unexpected token 'r', "root:x:0:0"... is not valid JSON`), and a dataset path pointed at a
 * file that is not a dataset must not show its content in an error. Positions are kept.
 */
export function jsonSyntaxProblem(err: Error): string {
  const m = err.message;
  if (/^Unexpected token /.test(m)) return 'an unexpected character; the line does not start or continue as JSON does';
  return m.replace(/, ".*"(\.\.\.)? is not valid JSON$/s, '').replace(/^".*" is not valid JSON$/s, 'not JSON');
}

const emptyDataset = (source: string) => new DataError(`${source}: the dataset is empty`, source, null);

const cannotRead = (source: string, err: unknown) =>
  new DataError(`${source}: cannot read the dataset (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, source, null);

/** Parse JSONL text; blank lines are skipped; each record must be a JSON object. */
export function parseJsonl(text: string, source: string): JsonlRecord[] {
  const out: JsonlRecord[] = [];
  text.split('\n').forEach((raw, i) => {
    const rec = parseLine(raw, i + 1, source);
    if (rec) out.push(rec);
  });
  if (out.length === 0) throw emptyDataset(source);
  return out;
}

/**
 * The records of a JSONL file, one line at a time. `source` names the file in errors (default
 * `path`; pass the URI the user gave when `path` is a local copy). The file is closed when the
 * loop ends, also by `break` or an error.
 */
export async function* streamJsonl(path: string, source: string = path): AsyncGenerator<JsonlRecord> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    throw cannotRead(source, err);
  }
  const input = handle.createReadStream({ encoding: 'utf8' }); // closes the handle when destroyed
  const lines = createInterface({ input, crlfDelay: Infinity });
  let line = 0;
  let count = 0;
  try {
    for await (const raw of lines) {
      const rec = parseLine(raw, ++line, source);
      if (rec === null) continue;
      count++;
      yield rec;
    }
  } catch (err) {
    if (err instanceof DataError) throw err;
    throw cannotRead(source, err); // EISDIR, EIO, … surface on the first read
  } finally {
    lines.close();
    input.destroy();
  }
  if (count === 0) throw emptyDataset(source);
}

/** All records of a JSONL file (streamed, then collected). */
export async function readJsonl(path: string, source: string = path): Promise<JsonlRecord[]> {
  const out: JsonlRecord[] = [];
  for await (const rec of streamJsonl(path, source)) out.push(rec);
  return out;
}

/** A DataError about one record: `file:line: what`. */
export function recordError(rec: JsonlRecord, source: string, what: string): DataError {
  return new DataError(`${source}:${rec.line}: ${what}`, source, rec.line);
}

/** Run `fn` for a record; any error but a DataError becomes one naming the file and line. */
export function atRecord<T>(rec: JsonlRecord, source: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof DataError) throw err;
    throw recordError(rec, source, (err as Error).message);
  }
}

/** How a JSON value reads in an error message: `a string of 5 characters`, `a number`, `an array`, `null`, … */
export function describeJson(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  // The type and size only: a record's content never appears in an error (it may not be a dataset at all).
  if (typeof v === 'string') return v === '' ? 'an empty string' : `a string of ${v.length} characters`;
  return `a ${typeof v}`;
}

/** A string field of a record, or a DataError naming the key, the file and the line. */
export function stringField(rec: JsonlRecord, key: string, source: string): string {
  const v = rec.value[key];
  if (typeof v !== 'string') {
    throw recordError(rec, source, v === undefined ? `missing key "${key}"` : `"${key}" must be a string, got ${Array.isArray(v) ? 'an array' : typeof v}`);
  }
  return v;
}
