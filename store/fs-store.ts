/**
 * The filesystem ArtifactStore: the embedded default. Objects are plain files under a root
 * folder, so a checkpoint can be inspected (and loaded by other tools) where it lies.
 *
 * Writes go to a temp file next to the target, are fsynced, then renamed into place: a crash or
 * an abort never leaves a partial object under the real name. Temp files end in
 * `.aligner-tmp-<hex>` and are invisible to `list`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants, createReadStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  checkKey,
  StoreError,
  type ArtifactStore,
  type ObjectInfo,
  type PutOptions,
  type PutResult,
  type PutSource,
} from './artifact-store.js';

const TMP = /\.aligner-tmp-[0-9a-f]+$/;
/** statfs(2) magic numbers of filesystems that only look like folders. */
const VIRTUAL_FILESYSTEMS = new Map([[0x9fa0, 'procfs (/proc)'], [0x62656572, 'sysfs (/sys)'], [0x64626720, 'debugfs'], [0x27e0eb, 'cgroupfs'], [0x63677270, 'cgroup2fs']]);
const tmpName = (path: string) => `${path}.aligner-tmp-${randomBytes(6).toString('hex')}`;
const RETRYABLE = new Set(['EIO', 'EMFILE', 'ENFILE', 'EAGAIN', 'EBUSY', 'ETIMEDOUT']);

/** Maps a Node fs error to a StoreError that names the URI. */
function fsError(e: unknown, op: string, uri: string): StoreError {
  if (e instanceof StoreError) return e;
  const code = (e as NodeJS.ErrnoException).code ?? '';
  if (code === 'ENOENT' || code === 'EISDIR' || code === 'ENOTDIR') {
    return new StoreError('NotFound', `${op}: no object at ${uri}`, false, { cause: e });
  }
  if (code === 'EROFS') return new StoreError('Denied', `${op} ${uri}: the filesystem is read-only (EROFS)`, false, { cause: e });
  if (code === 'EACCES' || code === 'EPERM') {
    return new StoreError('Denied', `${op} ${uri}: permission denied (${code})`, false, { cause: e });
  }
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    // Retrying would redo the work and fail the same way: say so once, with what was needed.
    const need = (e as { neededBytes?: number }).neededBytes;
    return new StoreError('NoSpace', `${op} ${uri}: no space left on the device (${code})${need !== undefined ? ` with ${need} bytes to write` : ''}; free space there or use another store (--store / ALIGN_STORE_URI)`, false, { cause: e });
  }
  if ((e as Error).name === 'AbortError') return new StoreError('Aborted', `${op} ${uri}: aborted`, false, { cause: e });
  const retryable = RETRYABLE.has(code);
  return new StoreError(retryable ? 'Unavailable' : 'Failed', `${op} ${uri}: ${(e as Error).message}`, retryable, {
    cause: e,
  });
}

/** Writes all of `chunk` at `position`, however many calls the kernel takes (write(2) may write less). */
async function writeFully(fh: fsp.FileHandle, chunk: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < chunk.length;) {
    const { bytesWritten } = await fh.write(chunk, done, chunk.length - done, position + done);
    if (bytesWritten <= 0) throw Object.assign(new Error(`wrote ${position + done} bytes, then the device took no more`), { code: 'ENOSPC' });
    done += bytesWritten;
  }
}

/** sha256 of a file as it is on disk. */
async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Writes all chunks to `tmp`, hashing them, fsyncs, then checks that the file on disk has every
 * byte and the same sha256 before anyone may rename it into place: a full disk, a short write or
 * a device that drops data is an error here, never an object that claims to be complete.
 */
async function writeTemp(tmp: string, chunks: AsyncIterable<Uint8Array> | Uint8Array[], signal?: AbortSignal, expectedBytes?: number) {
  const fh = await fsp.open(tmp, 'wx');
  const hash = createHash('sha256');
  let size = 0;
  try {
    for await (const chunk of chunks) {
      signal?.throwIfAborted();
      hash.update(chunk);
      await writeFully(fh, chunk, size);
      size += chunk.length;
    }
    signal?.throwIfAborted();
    await fh.sync(); // the data must be on disk before the rename makes it visible
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOSPC') Object.assign(e as object, { neededBytes: expectedBytes ?? size });
    throw e;
  } finally {
    await fh.close();
  }
  const sha256 = hash.digest('hex');
  const onDisk = (await fsp.stat(tmp)).size;
  if (onDisk !== size) throw Object.assign(new Error(`${tmp}: ${onDisk} of ${size} bytes reached the disk`), { code: 'EIO' });
  if ((await hashFile(tmp)) !== sha256) throw Object.assign(new Error(`${tmp}: the bytes on disk differ from the bytes written (sha256)`), { code: 'EIO' });
  return { size, sha256 };
}

function sourceChunks(src: PutSource): AsyncIterable<Uint8Array> | Uint8Array[] {
  if (src instanceof Uint8Array) return [src];
  if ('file' in src) return createReadStream(src.file, { highWaterMark: 1 << 20 });
  return src;
}

/** How many bytes a source holds, when that is known before reading it. */
async function sourceBytes(src: PutSource): Promise<number | undefined> {
  if (src instanceof Uint8Array) return src.length;
  if ('file' in src) return (await fsp.stat(src.file).catch(() => undefined))?.size;
  return undefined;
}

export class FsStore implements ArtifactStore {
  readonly root: string;
  readonly uri: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.uri = pathToFileURL(this.root).href.replace(/\/$/, '');
  }

  private path(key: string): string {
    return join(this.root, checkKey(key));
  }

  uriOf(key: string): string {
    checkKey(key, true);
    return key === '' ? this.uri : `${this.uri}/${key.split('/').map(encodeURIComponent).join('/')}`;
  }

  keyOf(uri: string): string {
    const rel = uri.startsWith('file:') ? relative(this.root, fileURLToPath(uri)) : '..';
    if (rel.startsWith('..') || rel.startsWith(sep)) throw new StoreError('Invalid', `${uri} is not inside ${this.uri}`, false);
    return rel.split(sep).join('/') + (uri.endsWith('/') && rel ? '/' : '');
  }

  async put(key: string, src: PutSource, opts: PutOptions = {}): Promise<PutResult> {
    const path = this.path(key);
    const tmp = tmpName(path);
    try {
      await fsp.mkdir(dirname(path), { recursive: true });
      const res = await writeTemp(tmp, sourceChunks(src), opts.signal, await sourceBytes(src));
      await fsp.rename(tmp, path);
      return { key, ...res };
    } catch (e) {
      if (!(src instanceof Uint8Array) && !('file' in src)) src.destroy();
      await fsp.rm(tmp, { force: true });
      if (typeof src === 'object' && 'file' in src && (e as NodeJS.ErrnoException).path === src.file) {
        throw new StoreError('NotFound', `put ${this.uriOf(key)}: cannot read source file ${src.file}`, false, { cause: e });
      }
      throw fsError(e, 'put', this.uriOf(key));
    }
  }

  async putIfAbsent(key: string, bytes: Uint8Array): Promise<boolean> {
    const path = this.path(key);
    const tmp = tmpName(path);
    try {
      await fsp.mkdir(dirname(path), { recursive: true });
      await writeTemp(tmp, [bytes], undefined, bytes.length);
      // link() fails with EEXIST when the target exists, and otherwise makes the complete file
      // visible at once (an `open(wx)` + write would expose a partial file to readers).
      await fsp.link(tmp, path);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw fsError(e, 'putIfAbsent', this.uriOf(key));
    } finally {
      await fsp.rm(tmp, { force: true });
    }
  }

  async get(key: string): Promise<Buffer> {
    try {
      return await fsp.readFile(this.path(key));
    } catch (e) {
      throw fsError(e, 'get', this.uriOf(key));
    }
  }

  async getStream(key: string): Promise<Readable> {
    try {
      const fh = await fsp.open(this.path(key), 'r'); // opening first reports a missing key here
      if ((await fh.stat()).isDirectory()) {
        await fh.close();
        throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
      }
      return fh.createReadStream({ highWaterMark: 1 << 20 });
    } catch (e) {
      throw fsError(e, 'get', this.uriOf(key));
    }
  }

  async getToFile(key: string, path: string): Promise<PutResult> {
    const src = await this.getStream(key);
    const tmp = tmpName(resolve(path));
    try {
      await fsp.mkdir(dirname(resolve(path)), { recursive: true });
      const res = await writeTemp(tmp, src);
      await fsp.rename(tmp, path);
      return { key, ...res };
    } catch (e) {
      src.destroy();
      await fsp.rm(tmp, { force: true });
      throw fsError(e, `get ${this.uriOf(key)} to`, path);
    }
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    try {
      const st = await fsp.stat(this.path(key));
      return st.isFile() ? { key, size: st.size, mtime: st.mtime } : undefined;
    } catch (e) {
      const err = fsError(e, 'stat', this.uriOf(key));
      if (err.code === 'NotFound') return undefined;
      throw err;
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    checkKey(prefix, true);
    const base = prefix.slice(0, prefix.lastIndexOf('/') + 1); // the folder holding the prefix
    const out: ObjectInfo[] = [];
    const walk = async (dirKey: string): Promise<void> => {
      let entries;
      try {
        entries = await fsp.readdir(join(this.root, dirKey), { withFileTypes: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return;
        throw fsError(e, 'list', this.uriOf(dirKey));
      }
      for (const ent of entries) {
        const key = dirKey + ent.name;
        if (!key.startsWith(prefix) && !prefix.startsWith(key + '/')) continue;
        if (ent.isDirectory()) await walk(key + '/');
        else if (ent.isFile() && !TMP.test(ent.name) && key.startsWith(prefix)) {
          const st = await fsp.stat(join(this.root, key)).catch(() => undefined); // may vanish meanwhile
          if (st) out.push({ key, size: st.size, mtime: st.mtime });
        }
      }
    };
    await walk(base);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async probe(): Promise<void> {
    // The nearest folder that exists: mkdir -p under /proc or /sys spins or fails obscurely, so look first.
    let existing = this.root;
    while (!(await fsp.stat(existing).catch(() => null))) {
      const up = dirname(existing);
      if (up === existing) break;
      existing = up;
    }
    const st = await fsp.stat(existing);
    if (!st.isDirectory()) throw new StoreError('Invalid', `store ${this.uri}: ${existing} is a file, not a folder`, false);
    const fs = await fsp.statfs(existing);
    const virtual = VIRTUAL_FILESYSTEMS.get(Number(fs.type));
    if (virtual) throw new StoreError('Invalid', `store ${this.uri}: ${existing} is on ${virtual}, a virtual filesystem that cannot hold files; choose a folder on a disk (--store / ALIGN_STORE_URI)`, false);
    // Writability first: a recursive mkdir on a read-only filesystem reports a misleading ENOENT.
    await fsp.access(existing, fsConstants.W_OK).catch((e: unknown) => {
      throw new StoreError(fsError(e, 'probe', this.uri).code, `store ${this.uri} is not usable: ${existing} is not writable (${(e as NodeJS.ErrnoException).code === 'EROFS' ? 'the filesystem is read-only (EROFS)' : (e as NodeJS.ErrnoException).code})`, false, { cause: e });
    });
    const key = `.aligner-probe-${randomBytes(4).toString('hex')}`;
    try {
      await fsp.mkdir(this.root, { recursive: true });
      await this.put(key, Buffer.from('probe'));
      if ((await this.get(key)).toString() !== 'probe') throw new StoreError('Corrupt', `store ${this.uri}: a probe object read back differently`, false);
    } catch (e) {
      if (e instanceof StoreError) throw new StoreError(e.code, `store ${this.uri} is not usable: ${e.message}`, e.retryable, { cause: e });
      throw fsError(e, 'probe', this.uri);
    } finally {
      await fsp.rm(join(this.root, key), { force: true });
    }
  }

  async delete(keys: string[]): Promise<void> {
    for (const key of keys) {
      const path = this.path(key);
      try {
        await fsp.rm(path, { force: true });
      } catch (e) {
        throw fsError(e, 'delete', this.uriOf(key));
      }
      // Remove folders left empty (a pruned checkpoint leaves none behind), up to the root.
      for (let dir = dirname(path); dir.startsWith(this.root + sep); dir = dirname(dir)) {
        try {
          await fsp.rmdir(dir);
        } catch {
          break; // not empty (or already gone): stop climbing
        }
      }
    }
  }
}
