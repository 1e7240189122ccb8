/**
 * The stores every store test runs against: the filesystem store in a temp folder, and the real
 * versitygw started by test/global-setup.ts (each test in its own key prefix).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';
import type { ArtifactStore } from '../../store/artifact-store.js';
import { FsStore } from '../../store/fs-store.js';
import { S3Store, type S3Config } from '../../store/s3-store.js';

export interface StoreCase {
  name: 'fs' | 's3';
  /** A fresh, empty store. */
  make(cfg?: S3Config): ArtifactStore;
  /** Flips one byte of the object's bytes on disk, behind the store's back (bit rot). */
  corrupt(store: ArtifactStore, key: string, offset?: number): void;
}

export function testS3Config(): S3Config {
  const s3 = inject('stack').s3!;
  return { endpoint: s3.endpoint, region: s3.region, accessKeyId: s3.accessKey, secretAccessKey: s3.secretKey };
}

function flipByte(path: string, offset: number): void {
  const fd = openSync(path, 'r+');
  try {
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, offset);
    b[0] ^= 0xff;
    writeSync(fd, b, 0, 1, offset);
  } finally {
    closeSync(fd);
  }
}

export const STORE_CASES: StoreCase[] = [
  {
    name: 'fs',
    make: () => new FsStore(mkdtempSync(join(tmpdir(), 'aligner-fs-store-'))),
    corrupt: (store, key, offset = 0) => flipByte(join((store as FsStore).root, key), offset),
  },
  {
    name: 's3',
    make: (cfg = {}) => new S3Store(inject('stack').s3!.bucket, `t-${randomBytes(5).toString('hex')}`, { ...testS3Config(), ...cfg }),
    // versitygw's posix backend keeps each object as a plain file: <data>/<bucket>/<key>.
    corrupt: (store, key, offset = 0) => {
      const s = store as S3Store;
      flipByte(join(inject('stack').s3!.dataDir, s.prefix, key), offset);
    },
  },
];
