/**
 * A Hugging Face tokenizer: `tokenizer.json` (the fast-tokenizer pipeline: normalizer,
 * pre-tokenizer, BPE/Unigram/WordPiece model, post-processor, decoder) plus the optional
 * `tokenizer_config.json` (special tokens and the chat template), run by `@huggingface/tokenizers`.
 *
 * Conventions, chosen to match the Python `tokenizers` library (our reference ids come from it):
 * - `encode` adds the post-processor's special tokens by default, as `tokenizer.encode` does;
 *   chat code passes `addSpecialTokens: false` because templates write BOS themselves.
 * - `decode` never applies transformers' `clean_up_tokenization_spaces` unless
 *   tokenizer_config.json asks for it: the clean-up (" ." → ".") breaks decode(encode(s)) == s.
 * - `vocabSize` is the largest token id + 1 (base vocabulary plus added tokens). A model's
 *   embedding table may be larger (Qwen3 pads 151,669 to 151,936).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as HFTokenizer } from '@huggingface/tokenizers';
import { TokenizerError } from './tokenizer-errors.js';

export { TokenizerError } from './tokenizer-errors.js';

/** Parsed JSON objects, as read from disk. */
export type JsonObject = Record<string, unknown>;

export interface EncodeOptions {
  /** Add the post-processor's special tokens (e.g. Llama's BOS). Default true, as in Hugging Face. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (added tokens marked special, and additional_special_tokens). Default false. */
  skipSpecialTokens?: boolean;
}

export interface TokenizerSource {
  /** Names the source in error messages (a path, or a label such as "gpt2"). */
  name?: string;
  /** A chat template that overrides tokenizer_config.json's. */
  chatTemplate?: string | null;
}

/** The special-token roles read from tokenizer_config.json. */
type SpecialRole = 'bos' | 'eos' | 'pad' | 'unk';

export class Tokenizer {
  readonly name: string;
  /** The Jinja chat template, or null when the tokenizer has none (use DEFAULT_CHAT_TEMPLATE). */
  readonly chatTemplate: string | null;
  readonly vocabSize: number;
  readonly bosToken: string | null;
  readonly bosTokenId: number | null;
  readonly eosToken: string | null;
  readonly eosTokenId: number | null;
  readonly padToken: string | null;
  readonly padTokenId: number | null;
  readonly unkToken: string | null;
  readonly unkTokenId: number | null;
  private readonly hf: HFTokenizer;
  private readonly cleanUpSpaces: boolean;

  /** Build from parsed `tokenizer.json` and `tokenizer_config.json` objects. */
  constructor(tokenizerJson: unknown, config: unknown = {}, source: TokenizerSource = {}) {
    this.name = source.name ?? 'tokenizer.json';
    if (!isObject(tokenizerJson) || !isObject(tokenizerJson.model)) {
      throw new TokenizerError(`${this.name}: not a tokenizer.json (expected an object with a "model" object)`);
    }
    if (!isObject(config)) throw new TokenizerError(`${this.name}: tokenizer_config.json must be a JSON object`);
    // The library requires these keys to exist; tokenizer.json files written by hand may omit them.
    const full = { normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, added_tokens: [], ...tokenizerJson };
    try {
      this.hf = new HFTokenizer(full, config);
    } catch (e) {
      throw new TokenizerError(`${this.name}: cannot build the tokenizer: ${(e as Error).message}`);
    }
    this.vocabSize = this.hf.model!.vocab.length;
    this.cleanUpSpaces = config.clean_up_tokenization_spaces === true;
    this.chatTemplate = source.chatTemplate !== undefined ? source.chatTemplate : pickChatTemplate(config.chat_template, this.name);
    const special = (role: SpecialRole): [string | null, number | null] => {
      const token = specialTokenContent(config[`${role}_token`], role, this.name);
      return token === null ? [null, null] : [token, this.requireTokenId(token, `${role}_token from tokenizer_config.json`)];
    };
    [this.bosToken, this.bosTokenId] = special('bos');
    [this.eosToken, this.eosTokenId] = special('eos');
    [this.padToken, this.padTokenId] = special('pad');
    [this.unkToken, this.unkTokenId] = special('unk');
  }

  /**
   * Load `<dir>/tokenizer.json`, and `<dir>/tokenizer_config.json` when present. The chat template
   * comes from tokenizer_config.json, else from `<dir>/chat_template.jinja` (newer transformers).
   */
  static fromDir(dir: string): Tokenizer {
    const tokenizerPath = join(dir, 'tokenizer.json');
    const tokenizerJson = readJson(tokenizerPath, true)!;
    const config = readJson(join(dir, 'tokenizer_config.json'), false) ?? {};
    let chatTemplate: string | undefined;
    if (config.chat_template === undefined) chatTemplate = readText(join(dir, 'chat_template.jinja'), false) ?? undefined;
    return new Tokenizer(tokenizerJson, config, { name: tokenizerPath, chatTemplate });
  }

  /** Token ids of `text`. */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new TokenizerError(`${this.name}: encode expects a string, got ${typeof text}`);
    return this.hf.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  /** The text of `ids`; an empty list decodes to "". */
  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    for (const id of ids) this.checkId(id);
    if (ids.length === 0) return '';
    return this.hf.decode(ids as number[], {
      skip_special_tokens: opts.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: this.cleanUpSpaces,
    });
  }

  /** The id of a vocabulary or added token, or null when it has none. */
  tokenToId(token: string): number | null {
    return this.hf.token_to_id(token) ?? null;
  }

  /** The id of `token`; a TokenizerError naming `what` when the vocabulary lacks it. */
  requireTokenId(token: string, what = 'token'): number {
    const id = this.tokenToId(token);
    if (id === null) throw new TokenizerError(`${this.name}: ${what} ${JSON.stringify(token)} is not in the vocabulary`);
    return id;
  }

  /** The token string of `id` (byte-level BPE shows bytes as their printable stand-ins, e.g. "Ġ"). */
  idToToken(id: number): string {
    this.checkId(id);
    return this.hf.id_to_token(id)!;
  }

  /** The special-token strings by role, as chat templates receive them (unset roles omitted). */
  specialTokensMap(): Partial<Record<`${SpecialRole}_token`, string>> {
    const out: Partial<Record<`${SpecialRole}_token`, string>> = {};
    if (this.bosToken !== null) out.bos_token = this.bosToken;
    if (this.eosToken !== null) out.eos_token = this.eosToken;
    if (this.padToken !== null) out.pad_token = this.padToken;
    if (this.unkToken !== null) out.unk_token = this.unkToken;
    return out;
  }

  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || this.hf.id_to_token(id) === undefined) {
      throw new TokenizerError(`${this.name}: token id ${id} is not in the vocabulary (size ${this.vocabSize})`);
    }
  }
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function readText(path: string, required: boolean): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT' && !required) return null;
    if (err.code === 'ENOENT') throw new TokenizerError(`tokenizer file not found: ${path}`);
    throw new TokenizerError(`cannot read ${path}: ${err.message}`);
  }
}

function readJson(path: string, required: boolean): JsonObject | null {
  const text = readText(path, required);
  if (text === null) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new TokenizerError(`invalid JSON in ${path}: ${(e as Error).message}`);
  }
  if (!isObject(parsed)) throw new TokenizerError(`invalid ${path}: expected a JSON object`);
  return parsed;
}

/** tokenizer_config.json writes a special token as a string or as a serialized AddedToken. */
function specialTokenContent(v: unknown, role: string, name: string): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return v;
  if (isObject(v) && typeof v.content === 'string') return v.content;
  throw new TokenizerError(`${name}: ${role}_token in tokenizer_config.json must be a string or {"content": ...}`);
}

/** A chat template is a string, or a list of named templates of which "default" is the chat one. */
function pickChatTemplate(v: unknown, name: string): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    const named = v.find((t) => isObject(t) && t.name === 'default');
    if (named && typeof named.template === 'string') return named.template;
  }
  throw new TokenizerError(`${name}: chat_template must be a string or a list with a {"name": "default"} entry`);
}
