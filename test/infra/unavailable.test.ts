/**
 * Services that are down, or refuse us, give errors that say where and whether to retry:
 * an S3 endpoint on a closed port, a Temporal address on a closed port, bad S3 credentials,
 * a missing bucket.
 */
import { describe, expect, it } from 'vitest';
import { freePort } from '../../infra/services.js';
import { StoreError } from '../../store/artifact-store.js';
import { S3Store } from '../../store/s3-store.js';
import { connectTemporal, TemporalUnavailableError } from '../../infra/temporal.js';
import { testS3Config } from './stores.js';

describe('unreachable and refusing services', () => {
  it('an S3 endpoint that is down: Unavailable, retryable, naming the address', async () => {
    const endpoint = `http://127.0.0.1:${await freePort()}`; // nothing listens there
    const s = new S3Store('test', 'p', { ...testS3Config(), endpoint, maxAttempts: 2 });
    for (const op of [() => s.get('a'), () => s.put('a', Buffer.from('x')), () => s.list(''), () => s.putIfAbsent('a', Buffer.from('x'))]) {
      const err = await op().catch((e) => e);
      expect(err).toBeInstanceOf(StoreError);
      expect(err).toMatchObject({ code: 'Unavailable', retryable: true });
      expect(err.message).toContain(`S3 endpoint ${endpoint} is unreachable (ECONNREFUSED)`);
    }
  });

  it('a Temporal server that is down: TemporalUnavailableError naming the address, retryable', async () => {
    const address = `127.0.0.1:${await freePort()}`;
    const t0 = Date.now();
    const err = await connectTemporal(address, { timeoutMs: 1000 }).catch((e) => e);
    expect(err).toBeInstanceOf(TemporalUnavailableError);
    expect(err).toMatchObject({ address, retryable: true });
    expect(err.message).toContain(`cannot reach the Temporal server at ${address}`);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('the running Temporal server answers', async () => {
    const conn = await connectTemporal(process.env.TEMPORAL_ADDRESS!);
    await conn.close();
  });

  it('bad S3 credentials: Denied, not retryable', async () => {
    const s = new S3Store('test', 'p', { ...testS3Config(), secretAccessKey: 'wrong-secret' });
    await expect(s.get('a')).rejects.toMatchObject({ code: 'Denied', retryable: false });
  });

  it('a missing bucket: NotFound, not retryable, naming the bucket', async () => {
    const s = new S3Store('no-such-bucket', '', testS3Config());
    const err = await s.put('a', Buffer.from('x')).catch((e) => e);
    expect(err).toMatchObject({ code: 'NotFound', retryable: false });
    expect(err.message).toContain('bucket no-such-bucket does not exist');
  });
});
