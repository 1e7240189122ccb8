/**
 * The S3 ArtifactStore, for any S3-compatible endpoint (AWS, versitygw, MinIO…). Path-style
 * addressing by default, so a bare `http://host:port` endpoint works without DNS tricks.
 *
 * Uploads go through lib-storage's `Upload` (multipart above `partSize`), hashing the bytes as
 * they stream; an upload that fails or is aborted is aborted on the server too, so no object and
 * no part is left behind under the key.
 */
import { createReadStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import {
  CreateBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import {
  checkKey,
  StoreError,
  type ArtifactStore,
  type ObjectInfo,
  type PutOptions,
  type PutResult,
  type PutSource,
} from './artifact-store.js';
import { HashingStream, sha256Hex } from './hashing.js';

export interface S3Config {
  /** e.g. `http://127.0.0.1:7070`; env ALIGN_S3_ENDPOINT; unset = AWS's own endpoints. */
  endpoint?: string;
  /** env ALIGN_S3_REGION, then AWS_REGION; default us-east-1. */
  region?: string;
  /** env ALIGN_S3_ACCESS_KEY / ALIGN_S3_SECRET_KEY; unset = the AWS SDK's default chain. */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Path-style URLs (`endpoint/bucket/key`); default true. */
  forcePathStyle?: boolean;
  /** Multipart part size in bytes (default 16 MiB; S3's minimum is 5 MiB). */
  partSize?: number;
  /** Parts uploaded concurrently (default 4); memory use is about partSize × queueSize. */
  queueSize?: number;
  /** Attempts per request, including the first (the SDK's retry with backoff; default 3). */
  maxAttempts?: number;
  /** TCP connect timeout (default 5 s). */
  connectTimeoutMs?: number;
}

/** The S3 settings from the environment (ALIGN_S3_*), overridden by `over`. */
export function s3ConfigFromEnv(over: S3Config = {}, env: NodeJS.ProcessEnv = process.env): S3Config {
  return {
    endpoint: env.ALIGN_S3_ENDPOINT || undefined,
    region: env.ALIGN_S3_REGION || env.AWS_REGION || undefined,
    accessKeyId: env.ALIGN_S3_ACCESS_KEY || undefined,
    secretAccessKey: env.ALIGN_S3_SECRET_KEY || undefined,
    ...Object.fromEntries(Object.entries(over).filter(([, v]) => v !== undefined)),
  };
}

export function makeS3Client(cfg: S3Config): S3Client {
  // The SDK warns on every process that Node 20 support ends in 2027; @aws-sdk/* is pinned
  // exactly (package.json), so the warning is only noise in CLI and test output.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  return new S3Client({
    endpoint: cfg.endpoint,
    region: cfg.region ?? 'us-east-1',
    forcePathStyle: cfg.forcePathStyle ?? true,
    credentials:
      cfg.accessKeyId && cfg.secretAccessKey
        ? { accessKeyId: cfg.accessKeyId, secretAccessKey: cfg.secretAccessKey }
        : undefined,
    maxAttempts: cfg.maxAttempts ?? 3,
    requestHandler: { connectionTimeout: cfg.connectTimeoutMs ?? 5_000 },
  });
}

const NETWORK = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'ECONNABORTED',
]);

interface SdkError {
  name?: string;
  code?: string;
  Code?: string;
  message?: string;
  errors?: { code?: string }[];
  $metadata?: { httpStatusCode?: number };
}

export class S3Store implements ArtifactStore {
  readonly uri: string;
  readonly client: S3Client;
  private readonly endpointName: string;

  constructor(
    readonly bucket: string,
    readonly prefix: string,
    readonly config: S3Config = s3ConfigFromEnv(),
  ) {
    if (prefix) checkKey(prefix);
    this.uri = `s3://${bucket}${prefix ? `/${prefix}` : ''}`;
    this.client = makeS3Client(config);
    this.endpointName = config.endpoint ?? `AWS S3 (${config.region ?? 'us-east-1'})`;
  }

  private full(key: string): string {
    checkKey(key, true);
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  uriOf(key: string): string {
    return `s3://${this.bucket}/${this.full(key)}`;
  }

  keyOf(uri: string): string {
    const base = `${this.uri}/`;
    if (!uri.startsWith(base)) throw new StoreError('Invalid', `${uri} is not inside ${this.uri}`, false);
    return checkKey(uri.slice(base.length), true);
  }

  /** Maps an SDK or network error to a StoreError naming the endpoint or the URI. */
  private error(e: unknown, op: string, key: string): StoreError {
    if (e instanceof StoreError) return e;
    const err = e as SdkError;
    const uri = this.uriOf(key);
    const code = err.code ?? err.errors?.[0]?.code ?? '';
    const name = err.name ?? err.Code ?? '';
    const status = err.$metadata?.httpStatusCode;
    const msg = err.message || name || String(e);
    if (name === 'AbortError') return new StoreError('Aborted', `${op} ${uri}: aborted`, false, { cause: e });
    // The SDK validates the CRC that the server stored at upload time against the bytes it reads.
    if (/checksum mismatch/i.test(msg)) return new StoreError('Corrupt', `${op} ${uri}: ${msg}`, false, { cause: e });
    if (NETWORK.has(code) || name === 'TimeoutError' || (status === undefined && /socket|connect/i.test(msg))) {
      return new StoreError(
        'Unavailable',
        `S3 endpoint ${this.endpointName} is unreachable (${code || name || msg}) during ${op} ${uri}`,
        true,
        { cause: e },
      );
    }
    if (name === 'NoSuchBucket') {
      return new StoreError('NotFound', `${op} ${uri}: bucket ${this.bucket} does not exist at ${this.endpointName}`, false, {
        cause: e,
      });
    }
    if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) {
      return new StoreError('NotFound', `${op}: no object at ${uri}`, false, { cause: e });
    }
    if (status === 401 || status === 403) {
      return new StoreError('Denied', `${op} ${uri}: ${name} from ${this.endpointName} (${msg})`, false, { cause: e });
    }
    const retryable = status === undefined || status >= 500 || status === 429 || status === 409 || name === 'SlowDown';
    return new StoreError(retryable ? 'Unavailable' : 'Failed', `${op} ${uri}: ${name} ${status ?? ''} ${msg}`.trim(), retryable, {
      cause: e,
    });
  }

  /** Creates the bucket if it is missing (dev stack and tests; production buckets exist). */
  async ensureBucket(): Promise<void> {
    try {
      await this.client.send(new CreateBucketCommand({ Bucket: this.bucket }));
    } catch (e) {
      const name = (e as SdkError).name;
      if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw this.error(e, 'create bucket', '');
    }
  }

  async put(key: string, src: PutSource, opts: PutOptions = {}): Promise<PutResult> {
    const Key = this.full(checkKey(key));
    let body: Uint8Array | Readable;
    let hasher: HashingStream | undefined;
    let source: Readable | undefined;
    if (src instanceof Uint8Array) {
      body = src;
    } else {
      source = 'file' in src ? createReadStream(src.file, { highWaterMark: 1 << 20 }) : src;
      hasher = new HashingStream();
      source.on('error', (e) => hasher!.destroy(e)); // a failing source fails the upload
      body = source.pipe(hasher);
    }
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key, Body: body, ContentType: opts.contentType },
      partSize: this.config.partSize ?? 16 << 20,
      queueSize: this.config.queueSize ?? 4,
      leavePartsOnError: false, // abort the multipart upload on failure: no orphaned parts
    });
    const onAbort = () => void upload.abort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      opts.signal?.throwIfAborted();
      await upload.done();
    } catch (e) {
      source?.destroy();
      const path = typeof src === 'object' && 'file' in src ? src.file : undefined;
      if (path && (e as NodeJS.ErrnoException).path === path) {
        throw new StoreError('NotFound', `put ${this.uriOf(key)}: cannot read source file ${path}`, false, { cause: e });
      }
      throw this.error(e, 'put', key);
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
    if (hasher) return { key, size: hasher.bytes, sha256: hasher.digest() };
    return { key, size: (src as Uint8Array).length, sha256: sha256Hex(src as Uint8Array) };
  }

  async putIfAbsent(key: string, bytes: Uint8Array): Promise<boolean> {
    try {
      // If-None-Match: * makes the server refuse (412) when the key exists, atomically.
      await this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: this.full(checkKey(key)), Body: bytes, IfNoneMatch: '*' }),
      );
      return true;
    } catch (e) {
      const err = e as SdkError;
      if (err.$metadata?.httpStatusCode === 412 || err.name === 'PreconditionFailed') return false;
      throw this.error(e, 'putIfAbsent', key);
    }
  }

  async getStream(key: string): Promise<Readable> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.full(checkKey(key)) }));
      // In Node the body is an IncomingMessage. Errors while reading it (a dropped connection, a
      // checksum mismatch found at the end) become StoreErrors like every other failure.
      const body = res.Body as Readable;
      const out = new PassThrough({ highWaterMark: 1 << 20 });
      body.on('error', (e) => out.destroy(this.error(e, 'get', key)));
      out.on('close', () => body.destroy());
      return body.pipe(out);
    } catch (e) {
      throw this.error(e, 'get', key);
    }
  }

  async get(key: string): Promise<Buffer> {
    const body = await this.getStream(key);
    try {
      const chunks: Buffer[] = [];
      for await (const c of body) chunks.push(c as Buffer);
      return Buffer.concat(chunks);
    } catch (e) {
      throw this.error(e, 'get', key);
    }
  }

  async getToFile(key: string, path: string): Promise<PutResult> {
    const dest = resolve(path);
    const tmp = `${dest}.aligner-tmp-${randomBytes(6).toString('hex')}`;
    const hash = createHash('sha256');
    let size = 0;
    let body: Readable | undefined;
    try {
      // The file first: a response body must be read as soon as it arrives, or an error it
      // emits meanwhile (a checksum mismatch) has no listener yet.
      await fsp.mkdir(dirname(dest), { recursive: true });
      const fh = await fsp.open(tmp, 'wx');
      try {
        body = await this.getStream(key);
        for await (const chunk of body) {
          hash.update(chunk as Buffer);
          size += (chunk as Buffer).length;
          await fh.write(chunk as Buffer);
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsp.rename(tmp, dest);
      return { key, size, sha256: hash.digest('hex') };
    } catch (e) {
      body?.destroy();
      await fsp.rm(tmp, { force: true });
      throw this.error(e, `get to ${dest}:`, key);
    }
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.full(checkKey(key)) }));
      return { key, size: res.ContentLength ?? 0, mtime: res.LastModified ?? new Date(0) };
    } catch (e) {
      const err = this.error(e, 'stat', key);
      if (err.code === 'NotFound' && !/bucket/.test(err.message)) return undefined;
      throw err;
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const Prefix = this.full(prefix);
    const strip = this.prefix ? this.prefix.length + 1 : 0;
    const out: ObjectInfo[] = [];
    let ContinuationToken: string | undefined;
    try {
      do {
        const res = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix, ContinuationToken }));
        for (const o of res.Contents ?? []) {
          out.push({ key: o.Key!.slice(strip), size: o.Size ?? 0, mtime: o.LastModified ?? new Date(0) });
        }
        ContinuationToken = res.IsTruncated ? res.NextContinuationToken : undefined;
      } while (ContinuationToken);
    } catch (e) {
      throw this.error(e, 'list', prefix);
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async probe(): Promise<void> {
    const key = `.aligner-probe-${randomBytes(4).toString('hex')}`;
    try {
      await this.put(key, Buffer.from('probe'));
      if ((await this.get(key)).toString() !== 'probe') throw new StoreError('Corrupt', `a probe object read back differently`, false);
      await this.delete([key]);
    } catch (e) {
      const err = e instanceof StoreError ? e : this.error(e, 'probe', key);
      throw new StoreError(err.code, `store ${this.uri} is not usable: ${err.message}`, err.retryable, { cause: e });
    }
  }

  async delete(keys: string[]): Promise<void> {
    // Batches run one after another, so callers can rely on the order (manifest first).
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      let res;
      try {
        res = await this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: batch.map((k) => ({ Key: this.full(checkKey(k)) })), Quiet: true },
          }),
        );
      } catch (e) {
        throw this.error(e, 'delete', batch[0]);
      }
      const failed = (res.Errors ?? []).filter((x) => x.Code !== 'NoSuchKey');
      if (failed.length > 0) {
        const f = failed[0];
        throw new StoreError('Failed', `delete s3://${this.bucket}/${f.Key}: ${f.Code} ${f.Message ?? ''}`.trim(), true);
      }
    }
  }
}
