/** Helpers for recipes' `prepare`: records → examples, one by one, with data.overlong drops counted by the caller. */
import type { JsonlRecord } from '../data/jsonl.js';
import type { ExampleSource, Prepared } from './types.js';

/** Map each record to an example; `null` from the tokenizer means data.overlong dropped it. */
export async function* mapRecords<E>(records: AsyncIterable<JsonlRecord>, tokenize: (rec: JsonlRecord) => E | null): AsyncIterable<Prepared<E>> {
  for await (const rec of records) {
    const example = tokenize(rec);
    yield example === null ? { dropped: `line ${rec.line}: longer than trainer.maxLength` } : { example };
  }
}

/** All examples of a source, in order, fetched in bounded chunks. */
export async function* chunksOf<E>(src: ExampleSource<E>, size = 256): AsyncIterable<{ from: number; items: E[] }> {
  for (let from = 0; from < src.count; from += size) {
    const idx = Array.from({ length: Math.min(size, src.count - from) }, (_, i) => from + i);
    yield { from, items: await src.getMany(idx) };
  }
}
