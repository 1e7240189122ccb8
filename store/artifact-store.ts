/**
 * ArtifactStore: the one interface for checkpoints, datasets and rollouts, whether they live on a
 * local disk (the embedded default) or in an S3-compatible bucket. Keys are relative,
 * '/'-separated paths under the store's base URI (`file:///abs/dir` or `s3://bucket/prefix`).
 *
 * Every write is all-or-nothing: a reader never sees a half-written object (the filesystem store
 * writes a temp file and renames it; S3 only shows an object once its upload completes).
 */
import type { Readable } from 'node:stream';

/** What `put` uploads: bytes in memory, a stream, or a file on disk (streamed, never buffered). */
export type PutSource = Uint8Array | Readable | { file: string };

export interface PutOptions {
  /** Aborting stops the upload and leaves no object behind. */
  signal?: AbortSignal;
  contentType?: string;
}

/** Size and sha256 (hex) of what was written, hashed while it streamed. */
export interface PutResult {
  key: string;
  size: number;
  sha256: string;
}

export interface ObjectInfo {
  key: string;
  size: number;
  mtime: Date;
}

export interface ArtifactStore {
  /** The base URI, without a trailing slash: `file:///…` or `s3://bucket[/prefix]`. */
  readonly uri: string;
  /** The URI of a key (or of a key prefix such as `runs/r1/`). */
  uriOf(key: string): string;
  /** The key of a URI inside this store; throws StoreError('Invalid') for a foreign URI. */
  keyOf(uri: string): string;
  put(key: string, src: PutSource, opts?: PutOptions): Promise<PutResult>;
  /** Writes only if the key does not exist yet; false when it exists (nothing is written). */
  putIfAbsent(key: string, bytes: Uint8Array): Promise<boolean>;
  get(key: string): Promise<Buffer>;
  /** Start reading at once: an error emitted before a listener is attached would be uncaught. */
  getStream(key: string): Promise<Readable>;
  /** Downloads to `path` (atomically: temp file, then rename); returns its size and sha256. */
  getToFile(key: string, path: string): Promise<PutResult>;
  /** undefined when the key does not exist. */
  stat(key: string): Promise<ObjectInfo | undefined>;
  /** Every object whose key starts with `prefix` (a plain string prefix), sorted by key. */
  list(prefix: string): Promise<ObjectInfo[]>;
  /** Deletes the keys, in order; keys that do not exist are ignored. */
  delete(keys: string[]): Promise<void>;
  /**
   * Checks that objects can be written, read and deleted here (a worker starting, a run
   * starting): a StoreError that says what is wrong (a virtual or read-only filesystem, no
   * permission, a missing bucket, an unreachable endpoint), instead of a run that hangs or fails late.
   */
  probe(): Promise<void>;
}

export type StoreErrorCode =
  | 'NotFound' // the key (or the bucket) does not exist
  | 'Unavailable' // the endpoint or disk could not be reached; try again later
  | 'Denied' // credentials or permissions
  | 'Invalid' // a bad key, URI or argument: a bug or a bad config
  | 'Aborted' // the caller aborted the operation
  | 'Corrupt' // the bytes read back do not match the checksum the server stored with them
  | 'NoSpace' // the disk is full: retrying does not help until space is freed
  | 'Failed'; // anything else the server said

/**
 * A store operation that failed. `retryable` tells an activity whether another attempt may help
 * (a down endpoint, throttling, 5xx) or not (a missing key, bad credentials, a bad URI).
 */
export class StoreError extends Error {
  override name = 'StoreError';
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Rejects keys that could escape the store's base (absolute, `..`, empty segments). */
export function checkKey(key: string, allowPrefix = false): string {
  const segments = key.split('/');
  const bad =
    (!allowPrefix && key === '') ||
    key.startsWith('/') ||
    key.includes('\\') ||
    key.includes('\0') ||
    segments.some((s, i) => s === '..' || s === '.' || (s === '' && !(allowPrefix && i === segments.length - 1)));
  if (bad) throw new StoreError('Invalid', `invalid store key ${JSON.stringify(key)}`, false);
  return key;
}

export type StoreLocation = { kind: 'file'; root: string } | { kind: 's3'; bucket: string; prefix: string };

/**
 * Parses a store URI: `file:///abs/dir`, a plain local path, or `s3://bucket[/prefix]`.
 * The S3 prefix comes back without leading or trailing slashes.
 */
export function parseStoreUri(uri: string): StoreLocation {
  const s3 = /^s3:\/\/([^/]+)\/?(.*)$/.exec(uri);
  if (s3) {
    const bucket = s3[1];
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
      throw new StoreError('Invalid', `invalid S3 bucket name ${JSON.stringify(bucket)} in ${uri}`, false);
    }
    const prefix = s3[2].replace(/\/+$/, '');
    if (prefix) checkKey(prefix);
    return { kind: 's3', bucket, prefix };
  }
  if (uri.startsWith('file:')) {
    let root: string;
    try {
      root = decodeURIComponent(new URL(uri).pathname);
    } catch {
      throw new StoreError('Invalid', `invalid file URI ${uri}`, false);
    }
    if (!uri.startsWith('file:///')) throw new StoreError('Invalid', `file URIs must be absolute (file:///…): ${uri}`, false);
    return { kind: 'file', root: root.replace(/(.)\/+$/, '$1') };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(uri)) {
    throw new StoreError('Invalid', `unsupported store URI ${uri} (use file:///… or s3://bucket/prefix)`, false);
  }
  return { kind: 'file', root: uri };
}
