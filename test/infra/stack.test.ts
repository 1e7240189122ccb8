/**
 * The dev stack for real: `npm run stack` start / status / start again / stop (headless, with S3)
 * in its own state folder and ports, and the error a server that cannot start gives.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { MissingToolError, startTemporal, toolPath } from '../../infra/dev-stack.js';
import { alive, freePort, runningPid } from '../../infra/services.js';
import { connectTemporal } from '../../infra/temporal.js';
import { S3Store } from '../../store/s3-store.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const state = mkdtempSync(join(tmpdir(), 'aligner-stack-test-'));
afterAll(async () => {
  await stack('stop').catch(() => {}); // never leave servers behind, even when a test failed
  rmSync(state, { recursive: true, force: true });
});

/**
 * Runs infra/stack.ts as `npm run stack` does after its setup step (the setup is not repeated
 * here: it could rebuild or reinstall under the running tests). Resolves with stdout and code.
 */
async function stack(...args: string[]): Promise<{ out: string; code: number }> {
  try {
    // Without the test run's own ALIGN_S3_* (bucket, keys): the stack's defaults are under test.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ALIGN_S3_')));
    const { stdout } = await promisify(execFile)(join(ROOT, 'node_modules/.bin/tsx'), ['infra/stack.ts', ...args, '--state', state], {
      cwd: ROOT,
      env,
    });
    return { out: stdout, code: 0 };
  } catch (e) {
    const err = e as { stdout: string; stderr: string; code: number };
    return { out: err.stdout + err.stderr, code: err.code };
  }
}

describe('npm run stack', () => {
  it('starts Temporal and S3, reports them, is a no-op when running, and stops them', async () => {
    const [port, s3Port] = [await freePort(), await freePort()];
    const started = await stack('start', '--headless', '--s3', '--port', String(port), '--s3-port', String(s3Port));
    expect(started.code, started.out).toBe(0);
    expect(started.out).toContain(`stack: Temporal  127.0.0.1:${port}`);
    expect(started.out).toContain(`stack: S3        http://127.0.0.1:${s3Port}  bucket aligner`);
    const pids = { temporal: runningPid(state, 'temporal')!, s3: runningPid(state, 's3')! };
    expect(pids.temporal).toBeGreaterThan(0);

    const again = await stack('start', '--s3'); // different defaults, same running servers
    expect(again.out).toContain('stack: already running');
    expect(again.out).toContain(`127.0.0.1:${port}`);
    expect(runningPid(state, 'temporal')).toBe(pids.temporal);

    const status = await stack('status');
    expect(status).toMatchObject({ code: 0 });
    expect(status.out).toContain(`pid ${pids.temporal}`);
    const env = Object.fromEntries(
      (await stack('env')).out.trim().split('\n').map((l) => {
        const [k, v] = l.replace(/^export /, '').split('=');
        return [k, JSON.parse(v)];
      }),
    );
    expect(env.TEMPORAL_ADDRESS).toBe(`127.0.0.1:${port}`);
    await (await connectTemporal(env.TEMPORAL_ADDRESS)).close();
    const s3 = new S3Store(env.ALIGN_S3_BUCKET, '', {
      endpoint: env.ALIGN_S3_ENDPOINT,
      accessKeyId: env.ALIGN_S3_ACCESS_KEY,
      secretAccessKey: env.ALIGN_S3_SECRET_KEY,
    });
    await s3.put('hello.txt', Buffer.from('hi'));
    expect(existsSync(join(state, 's3-data/aligner/hello.txt'))).toBe(true);

    const stopped = await stack('stop');
    expect(stopped.out).toMatch(/temporal +stopped/);
    expect(stopped.out).toMatch(/s3 +stopped/);
    expect(alive(pids.temporal)).toBe(false);
    expect(alive(pids.s3)).toBe(false);
    expect(await stack('status')).toMatchObject({ code: 1 });
  });

  it('a server that cannot start names the binary, the address and the last lines of its log', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aligner-bad-'));
    const port = await freePort();
    try {
      const bad = { stateDir: dir, temporalPort: port, headless: true, detached: false, temporalArgs: ['--dynamic-config-value', 'not json'] };
      const err = await startTemporal(bad).catch((e) => e);
      expect(err.name).toBe('ServiceStartError');
      expect(err.message).toContain(`temporal (${toolPath('temporal')}) failed to start on 127.0.0.1:${port}: exited with code 1`);
      expect(err.message).toMatch(/last lines of .*temporal\.log ---\n.*invalid dynamic config values/s);
      expect(runningPid(dir, 'temporal')).toBeUndefined();

      // A port that another server holds (the test run's own) is refused before starting.
      const busy = Number(process.env.TEMPORAL_ADDRESS!.split(':')[1]);
      const err2 = await startTemporal({ ...bad, temporalPort: busy, temporalArgs: [] }).catch((e) => e);
      expect(err2.message).toContain(`cannot start on 127.0.0.1:${busy}: port ${busy} is already in use`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a missing binary says how to install it', () => {
    const saved = process.env.ALIGN_TEMPORAL_BIN;
    process.env.ALIGN_TEMPORAL_BIN = '/nonexistent/temporal';
    try {
      expect(() => toolPath('temporal')).toThrow(MissingToolError);
      expect(() => toolPath('temporal')).toThrow('Install it with: bash infra/tools.sh');
    } finally {
      if (saved === undefined) delete process.env.ALIGN_TEMPORAL_BIN;
      else process.env.ALIGN_TEMPORAL_BIN = saved;
    }
  });
});
