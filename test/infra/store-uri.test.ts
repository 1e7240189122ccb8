/** Store URIs and keys: parsing, round trips, and what is refused. No servers needed. */
import { describe, expect, it } from 'vitest';
import { checkKey, openStore, parseStoreUri, StoreError } from '../../store/index.js';
import { FsStore } from '../../store/fs-store.js';
import { S3Store } from '../../store/s3-store.js';

describe('store URIs', () => {
  it('parses file://, plain paths and s3://bucket/prefix', () => {
    expect(parseStoreUri('file:///data/runs')).toEqual({ kind: 'file', root: '/data/runs' });
    expect(parseStoreUri('file:///data/my%20runs/')).toEqual({ kind: 'file', root: '/data/my runs' });
    expect(parseStoreUri('./artifacts')).toEqual({ kind: 'file', root: './artifacts' });
    expect(parseStoreUri('s3://ckpt')).toEqual({ kind: 's3', bucket: 'ckpt', prefix: '' });
    expect(parseStoreUri('s3://ckpt/team/a/')).toEqual({ kind: 's3', bucket: 'ckpt', prefix: 'team/a' });
  });

  it('refuses what it cannot serve, as non-retryable Invalid errors', () => {
    for (const bad of ['gs://b/x', 'file://relative/x', 's3://Bad_Bucket/x', 's3://b/../x', 'http://h/x']) {
      expect(() => parseStoreUri(bad), bad).toThrow(StoreError);
    }
    for (const bad of ['', '/a', 'a/../b', 'a//b', 'a\\b', './a']) expect(() => checkKey(bad), bad).toThrow(/invalid store key/);
    expect(checkKey('runs/r1/', true)).toBe('runs/r1/');
    expect(checkKey('', true)).toBe('');
  });

  it('opens the right store; uriOf and keyOf are inverse', () => {
    const fs = openStore('/tmp/aligner-uri-test/x y');
    expect(fs).toBeInstanceOf(FsStore);
    expect(fs.uri).toBe('file:///tmp/aligner-uri-test/x%20y');
    expect(fs.uriOf('runs/a b/1/')).toBe('file:///tmp/aligner-uri-test/x%20y/runs/a%20b/1/');
    expect(fs.keyOf(fs.uriOf('runs/a b/1/'))).toBe('runs/a b/1/');
    expect(() => fs.keyOf('file:///etc/passwd')).toThrow(/is not inside/);

    const s3 = openStore('s3://ckpt/team', { endpoint: 'http://127.0.0.1:1' });
    expect(s3).toBeInstanceOf(S3Store);
    expect(s3.uriOf('runs/r/1/model.safetensors')).toBe('s3://ckpt/team/runs/r/1/model.safetensors');
    expect(s3.keyOf('s3://ckpt/team/runs/r/')).toBe('runs/r/');
    expect(() => s3.keyOf('s3://other/team/runs/r/')).toThrow(/is not inside/);
  });
});
