/** Streaming JSONL: the same records and the same file:line errors as parseJsonl, read line by line. */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseJsonl, readJsonl, streamJsonl } from '../../algorithms/data/jsonl.js';
import type { JsonlRecord } from '../../algorithms/data/jsonl.js';
import { DataError } from '../../algorithms/errors.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'aligner-jsonl-'));
const file = (name: string, text: string): string => {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
};

async function collect(p: string, source?: string): Promise<JsonlRecord[]> {
  const out: JsonlRecord[] = [];
  for await (const r of streamJsonl(p, source)) out.push(r);
  return out;
}

async function rejection(p: Promise<unknown>): Promise<DataError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(DataError);
  return err as DataError;
}

describe('streamJsonl', () => {
  it('yields the records parseJsonl gives, with editor line numbers (blank lines, CRLF, a BOM)', async () => {
    const text = '\uFEFF{"input": "Hi", "output": "Hello!"}\r\n\r\n  \n{"messages": [{"role": "user", "content": "2+2?"}]}\n';
    const p = file('ok.jsonl', text);
    const streamed = await collect(p);
    expect(streamed).toEqual([
      { line: 1, value: { input: 'Hi', output: 'Hello!' } },
      { line: 4, value: { messages: [{ role: 'user', content: '2+2?' }] } },
    ]);
    expect(parseJsonl(text, p)).toEqual(streamed);
    expect(await readJsonl(p)).toEqual(streamed);
  });

  it('a malformed line, a non-object and null are DataErrors naming the file and the line', async () => {
    const bad = await rejection(collect(file('bad.jsonl', '{"input": "a", "output": "b"}\n\n{"input": "c", oops}\n')));
    expect(bad.message).toMatch(/^.*bad\.jsonl:3: not valid JSON \(/);
    expect([bad.file, bad.line]).toEqual([path.join(dir, 'bad.jsonl'), 3]);
    expect((await rejection(collect(file('arr.jsonl', '{"a": 1}\n[1, 2]\n'), 'arr.jsonl'))).message).toBe('arr.jsonl:2: expected a JSON object, got an array');
    expect((await rejection(collect(file('null.jsonl', 'null\n'), 'null.jsonl'))).message).toBe('null.jsonl:1: expected a JSON object, got null');
    expect(() => parseJsonl('"text"\n', 's.jsonl')).toThrow('s.jsonl:1: expected a JSON object, got string');
  });

  it('an empty file, a missing file and a folder are errors that name the source', async () => {
    expect((await rejection(collect(file('empty.jsonl', '\n  \n'), 'empty.jsonl'))).message).toBe('empty.jsonl: the dataset is empty');
    expect((await rejection(collect(file('zero.jsonl', ''), 's3://bucket/zero.jsonl'))).message).toBe('s3://bucket/zero.jsonl: the dataset is empty');
    expect((await rejection(collect(path.join(dir, 'nope.jsonl'), 'nope.jsonl'))).message).toBe('nope.jsonl: cannot read the dataset (ENOENT)');
    const sub = path.join(dir, 'a-folder');
    mkdirSync(sub);
    expect((await rejection(collect(sub))).message).toBe(`${sub}: cannot read the dataset (EISDIR)`);
    expect((await rejection(readJsonl(path.join(dir, 'nope.jsonl')))).message).toBe(`${path.join(dir, 'nope.jsonl')}: cannot read the dataset (ENOENT)`);
  });

  it('reads lazily: records before a bad line arrive, and stopping early never reads the rest', async () => {
    const good = Array.from({ length: 20_000 }, (_, i) => JSON.stringify({ text: `line ${i} ${'x'.repeat(100)}` }));
    const p = file('big.jsonl', [...good, '{broken'].join('\n'));
    let seen = 0;
    for await (const rec of streamJsonl(p)) {
      expect(rec.line).toBe(seen + 1);
      if (++seen === 3) break; // the broken last line is never parsed
    }
    expect(seen).toBe(3);
    let count = 0;
    const err = await (async () => {
      for await (const _ of streamJsonl(p, 'big.jsonl')) count++;
    })().then(() => null, (e: unknown) => e);
    expect(count).toBe(20_000);
    expect((err as Error).message).toMatch(/^big\.jsonl:20001: not valid JSON/);
  });
});
