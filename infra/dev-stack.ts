/**
 * The dev stack: a Temporal dev server (SQLite file under the state folder) and, when S3 is
 * wanted, versitygw serving a folder of the state folder as an S3 endpoint. Used by
 * `npm run stack`, the vitest global setup and the demo.
 *
 * State folder layout: temporal.{pid,log,db}, s3.{pid,log}, s3-data/<bucket>/ (the objects as
 * plain files), s3-meta/ (versitygw's metadata, kept in a sidecar folder so that filesystems
 * without extended attributes work too), s3-credentials.json, and stack.json (what is running).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { portInUse, runningPid, startService, stopService } from './services.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const INSTALL_HINT = 'bash infra/tools.sh   (also run by: npm run setup)';

export class MissingToolError extends Error {
  override name = 'MissingToolError';
}

/**
 * versitygw, built on first use (setup builds it only for the tests: its Go build is minutes of
 * a first run, and a filesystem store does not need it).
 */
export function ensureVersitygw(): string {
  try {
    return toolPath('versitygw');
  } catch (e) {
    if (!(e instanceof MissingToolError) || process.env.ALIGN_VERSITYGW_BIN) throw e;
    const r = spawnSync('bash', [join(ROOT, 'infra/tools.sh'), '--s3'], { stdio: 'inherit' });
    if (r.status !== 0) throw new MissingToolError(`building versitygw failed (exit ${r.status}); see .tools/logs/versitygw-install.log, or retry with: bash infra/tools.sh --s3`);
    return toolPath('versitygw');
  }
}

/** The installed binary (see infra/tools.sh); ALIGN_TEMPORAL_BIN / ALIGN_VERSITYGW_BIN override. */
export function toolPath(tool: 'temporal' | 'versitygw'): string {
  const override = process.env[tool === 'temporal' ? 'ALIGN_TEMPORAL_BIN' : 'ALIGN_VERSITYGW_BIN'];
  const candidates = override
    ? [override]
    : tool === 'temporal'
      ? [join(ROOT, '.tools/temporal-venv/bin/temporal'), join(ROOT, '.tools/bin/temporal')]
      : [join(ROOT, '.tools/bin/versitygw')];
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    const hint = tool === 'versitygw' ? 'bash infra/tools.sh --s3   (also run by: npm test)' : INSTALL_HINT;
    throw new MissingToolError(`${tool} is not installed (looked for ${candidates.join(', ')}). Install it with: ${hint}`);
  }
  return found;
}

export interface TemporalInfo {
  address: string;
  namespace: string;
  uiUrl?: string;
  pid: number;
  logFile: string;
}

export interface S3Info {
  endpoint: string;
  region: string;
  bucket: string;
  accessKey: string;
  secretKey: string;
  /** Where the bucket's objects lie as plain files. */
  dataDir: string;
  pid: number;
  logFile: string;
}

export interface StackInfo {
  stateDir: string;
  temporal: TemporalInfo;
  s3?: S3Info;
}

export interface StackOptions {
  stateDir: string;
  ip?: string;
  temporalPort?: number;
  /** Web UI port (default temporalPort + 1000); ignored when headless. */
  uiPort?: number;
  headless?: boolean;
  /** Start versitygw too. */
  s3?: boolean;
  s3Port?: number;
  bucket?: string;
  /** Fixed credentials; otherwise generated once and kept in s3-credentials.json. */
  accessKey?: string;
  secretKey?: string;
  /** Keep the servers running after this process exits (default true). */
  detached?: boolean;
  /** Extra `temporal server start-dev` arguments (search attributes, dynamic config). */
  temporalArgs?: string[];
}

/** Healthy = the frontend answers gRPC and the namespace is registered (workers need it). */
async function temporalHealthy(ip: string, port: number, namespace: string): Promise<boolean> {
  if (!(await portInUse(ip, port))) return false; // cheap check first: gRPC waits out its deadline
  try {
    // Imported here: `stack status`/`stop` never need the gRPC client or the AWS SDK (~1 s to load).
    const { connectTemporal } = await import('./temporal.js');
    const conn = await connectTemporal(`${ip}:${port}`, { timeoutMs: 2_000 });
    try {
      await conn.workflowService.describeNamespace({ namespace });
      return true;
    } finally {
      await conn.close();
    }
  } catch {
    return false;
  }
}

export async function startTemporal(o: StackOptions & { temporalPort: number }): Promise<TemporalInfo> {
  const ip = o.ip ?? '127.0.0.1';
  const namespace = 'default';
  const bin = toolPath('temporal');
  const uiPort = o.uiPort ?? o.temporalPort + 1000;
  const args = ['server', 'start-dev', '--ip', ip, '--port', String(o.temporalPort)];
  args.push('--db-filename', join(o.stateDir, 'temporal.db'), '--namespace', namespace, '--log-level', 'warn');
  args.push(...(o.headless ? ['--headless'] : ['--ui-port', String(uiPort), '--ui-ip', ip]), ...(o.temporalArgs ?? []));
  const svc = await startService({
    name: 'temporal',
    bin,
    args,
    dir: o.stateDir,
    address: `${ip}:${o.temporalPort}`,
    listen: { host: ip, port: o.temporalPort },
    detached: o.detached,
    probe: () => temporalHealthy(ip, o.temporalPort, namespace),
  });
  return {
    address: svc.address,
    namespace,
    uiUrl: o.headless ? undefined : `http://${ip}:${uiPort}`,
    pid: svc.pid,
    logFile: svc.logFile,
  };
}

function s3Credentials(o: StackOptions): { accessKey: string; secretKey: string } {
  if (o.accessKey && o.secretKey) return { accessKey: o.accessKey, secretKey: o.secretKey };
  const file = join(o.stateDir, 's3-credentials.json');
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8'));
  const creds = { accessKey: `aligner-${randomBytes(6).toString('hex')}`, secretKey: randomBytes(24).toString('base64url') };
  writeFileSync(file, JSON.stringify(creds, null, 2) + '\n', { mode: 0o600 });
  return creds;
}

export async function startS3(o: StackOptions & { s3Port: number }): Promise<S3Info> {
  const ip = o.ip ?? '127.0.0.1';
  const bin = ensureVersitygw();
  const { accessKey, secretKey } = s3Credentials(o);
  const dataDir = join(o.stateDir, 's3-data');
  const metaDir = join(o.stateDir, 's3-meta');
  mkdirSync(dataDir, { recursive: true });
  mkdirSync(metaDir, { recursive: true });
  const endpoint = `http://${ip}:${o.s3Port}`;
  const region = 'us-east-1';
  const svc = await startService({
    name: 's3',
    bin,
    // Credentials go through the environment, not argv, so `ps` does not show them.
    args: ['--port', `${ip}:${o.s3Port}`, '--region', region, '--health', '/health', '--quiet', 'posix', '--sidecar', metaDir, dataDir],
    env: { ...process.env, ROOT_ACCESS_KEY: accessKey, ROOT_SECRET_KEY: secretKey },
    dir: o.stateDir,
    address: endpoint,
    listen: { host: ip, port: o.s3Port },
    detached: o.detached,
    probe: async () => {
      try {
        return (await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) })).ok;
      } catch {
        return false;
      }
    },
  });
  const bucket = o.bucket ?? 'aligner';
  const { S3Store } = await import('../store/s3-store.js');
  const store = new S3Store(bucket, '', { endpoint, region, accessKeyId: accessKey, secretAccessKey: secretKey });
  await store.ensureBucket();
  store.client.destroy();
  return { endpoint, region, bucket, accessKey, secretKey, dataDir: join(dataDir, bucket), pid: svc.pid, logFile: svc.logFile };
}

const stackFile = (stateDir: string) => join(stateDir, 'stack.json');

/** What stack.json records, keeping only the services that are still running. */
export function readStack(stateDir: string): Partial<StackInfo> {
  const dir = resolve(stateDir);
  let info: Partial<StackInfo> = {};
  try {
    info = JSON.parse(readFileSync(stackFile(dir), 'utf8'));
  } catch {
    /* no stack started here */
  }
  return {
    stateDir: dir,
    temporal: info.temporal && runningPid(dir, 'temporal') ? info.temporal : undefined,
    s3: info.s3 && runningPid(dir, 's3') ? info.s3 : undefined,
  };
}

/**
 * Starts what is not running yet (both at once), and returns the addresses of everything.
 * A service already running is left alone and reported as it is. If one fails to start, the
 * ones this call started are stopped again and the error is thrown.
 */
export async function startStack(opts: StackOptions): Promise<StackInfo> {
  const o = { ...opts, stateDir: resolve(opts.stateDir) };
  toolPath('temporal'); // a missing binary fails before anything starts
  if (o.s3) ensureVersitygw();
  mkdirSync(o.stateDir, { recursive: true });
  const running = readStack(o.stateDir);
  const jobs: [string, Promise<unknown>][] = [];
  // A pid file without a stack.json entry is a service we cannot describe: restart it.
  if (!running.temporal) await stopService(o.stateDir, 'temporal');
  if (o.s3 && !running.s3) await stopService(o.stateDir, 's3');
  const temporal = running.temporal
    ? Promise.resolve(running.temporal)
    : startTemporal({ ...o, temporalPort: o.temporalPort ?? 7233 });
  if (!running.temporal) jobs.push(['temporal', temporal]);
  const s3 = !o.s3 || running.s3 ? Promise.resolve(running.s3) : startS3({ ...o, s3Port: o.s3Port ?? 7070 });
  if (o.s3 && !running.s3) jobs.push(['s3', s3]);
  const results = await Promise.allSettled(jobs.map(([, p]) => p));
  const failures = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
  if (failures.length > 0) {
    for (const [i, [name]] of jobs.entries()) if (results[i].status === 'fulfilled') await stopService(o.stateDir, name);
    throw failures.length === 1 ? failures[0] : new Error(failures.map((f) => f.message).join('\n\n'));
  }
  const info: StackInfo = { stateDir: o.stateDir, temporal: await temporal, s3: (await s3) ?? running.s3 };
  writeFileSync(stackFile(o.stateDir), JSON.stringify(info, null, 2) + '\n', { mode: 0o600 });
  return info;
}

/** Stops every service of the stack (SIGTERM, then SIGKILL after `graceMs`). */
export async function stopStack(stateDir: string, graceMs = 10_000): Promise<Record<string, string>> {
  const dir = resolve(stateDir);
  const [temporal, s3] = await Promise.all([stopService(dir, 'temporal', graceMs), stopService(dir, 's3', graceMs)]);
  return { temporal, s3 };
}

/** The environment variables clients read (TEMPORAL_ADDRESS, ALIGN_S3_*). */
export function stackEnv(info: Partial<StackInfo>): Record<string, string> {
  const env: Record<string, string> = {};
  if (info.temporal) env.TEMPORAL_ADDRESS = info.temporal.address;
  if (info.s3) {
    Object.assign(env, {
      ALIGN_S3_ENDPOINT: info.s3.endpoint,
      ALIGN_S3_REGION: info.s3.region,
      ALIGN_S3_ACCESS_KEY: info.s3.accessKey,
      ALIGN_S3_SECRET_KEY: info.s3.secretKey,
      ALIGN_S3_BUCKET: info.s3.bucket,
    });
  }
  return env;
}
