/**
 * Background services with a pid file and a log file: start one, wait until it is healthy, find
 * it again from another process, stop it. Used by the dev stack (`npm run stack`), the test
 * global setup and the demo; it knows nothing about Temporal or S3 (see dev-stack.ts).
 *
 * Layout in the service's folder: `<name>.pid` (the pid and the binary path, so a pid reused by
 * an unrelated process is not mistaken for ours) and `<name>.log` (stdout and stderr, appended).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ServiceSpec {
  /** Short name: the pid and log files are `<dir>/<name>.pid` and `<dir>/<name>.log`. */
  name: string;
  bin: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  dir: string;
  /** What clients connect to; named in every error. */
  address: string;
  /**
   * The TCP port the service will listen on. It is checked first: if something already answers
   * there, the health probe would talk to that instead and report a start that did not happen.
   */
  listen?: { host: string; port: number };
  /** One health probe: resolves true when the service answers. Must not throw. */
  probe: () => Promise<boolean>;
  /** How long to wait for the first healthy probe (default 60 s: a loaded 2-core CI machine). */
  timeoutMs?: number;
  /**
   * Keep running after this process exits (default true, for `npm run stack start`). The test
   * setup passes false: the child is then killed when this process exits, even on a crash.
   */
  detached?: boolean;
}

export interface RunningService {
  name: string;
  pid: number;
  address: string;
  logFile: string;
}

/** A service that exited or never became healthy; the message names the binary, address and log. */
export class ServiceStartError extends Error {
  override name = 'ServiceStartError';
}

export const pidFile = (dir: string, name: string) => join(dir, `${name}.pid`);
export const logFile = (dir: string, name: string) => join(dir, `${name}.log`);

/** The last `n` lines of a file ('' when it does not exist). */
export function tailFile(file: string, n = 20): string {
  if (!existsSync(file)) return '';
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
  return lines.slice(-n).join('\n');
}

/** True while the process runs (a zombie, exited but not reaped, counts as gone). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A zombie (exited, not yet reaped: PID 1 in some containers never reaps) still answers kill 0.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc (macOS): trust kill 0
  }
}

/** The pid of the running service recorded in `<dir>/<name>.pid`, or undefined. */
export function runningPid(dir: string, name: string): number | undefined {
  const file = pidFile(dir, name);
  if (!existsSync(file)) return undefined;
  const [pidText, bin] = readFileSync(file, 'utf8').split('\n');
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return undefined;
  // On Linux, make sure the pid still runs our binary (pids are reused after a reboot or crash).
  const cmdline = `/proc/${pid}/cmdline`;
  if (bin && existsSync(cmdline) && !readFileSync(cmdline, 'utf8').split('\0')[0].endsWith(bin.split('/').pop()!)) {
    return undefined;
  }
  return pid;
}

/** Polls `probe` every 100–500 ms until it is true; stops early when `failed()` says why. */
export async function waitHealthy(
  probe: () => Promise<boolean>,
  timeoutMs: number,
  failed: () => string | undefined = () => undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 100; ; delay = Math.min(delay * 1.5, 500)) {
    const why = failed();
    if (why) throw new Error(why);
    if (await probe()) return;
    if (Date.now() > deadline) throw new Error(`not healthy after ${(timeoutMs / 1000).toFixed(0)} s`);
    await sleep(delay);
  }
}

/**
 * Starts the service and waits until its probe succeeds. If it exits or times out, it is killed
 * and a ServiceStartError names the binary, the address and the last lines of its log.
 */
export async function startService(spec: ServiceSpec): Promise<RunningService> {
  if (spec.listen && (await portInUse(spec.listen.host, spec.listen.port))) {
    throw new ServiceStartError(
      `${spec.name} (${spec.bin}) cannot start on ${spec.address}: port ${spec.listen.port} is already in use by another process`,
    );
  }
  mkdirSync(spec.dir, { recursive: true });
  const log = logFile(spec.dir, spec.name);
  const fd = openSync(log, 'a');
  const detached = spec.detached ?? true;
  let exited: string | undefined;
  const child = (() => {
    try {
      return spawn(spec.bin, spec.args, { env: spec.env ?? process.env, stdio: ['ignore', fd, fd], detached });
    } finally {
      closeSync(fd); // the child holds its own copy
    }
  })();
  child.on('error', (e) => (exited = e.message));
  child.on('exit', (code, signal) => (exited = `exited with ${signal ?? `code ${code}`}`));
  if (detached) child.unref();
  else process.once('exit', () => child.kill('SIGKILL')); // synchronous, so it runs even on a crash
  const fail = (why: string) =>
    new ServiceStartError(
      `${spec.name} (${spec.bin}) failed to start on ${spec.address}: ${why}\n` +
        `--- last lines of ${log} ---\n${tailFile(log) || '(empty)'}`,
    );
  if (child.pid === undefined) {
    await sleep(10); // the 'error' event carries the reason (ENOENT, EACCES)
    throw fail(exited ?? 'spawn failed');
  }
  writeFileSync(pidFile(spec.dir, spec.name), `${child.pid}\n${spec.bin}\n`);
  try {
    await waitHealthy(spec.probe, spec.timeoutMs ?? 60_000, () => exited);
  } catch (e) {
    child.kill('SIGKILL');
    rmSync(pidFile(spec.dir, spec.name), { force: true });
    throw fail((e as Error).message);
  }
  return { name: spec.name, pid: child.pid, address: spec.address, logFile: log };
}

/**
 * Stops the service recorded in `<dir>/<name>.pid`: SIGTERM, then SIGKILL after `graceMs`.
 * Returns what happened; the pid file is removed in every case.
 */
export async function stopService(
  dir: string,
  name: string,
  graceMs = 10_000,
): Promise<'stopped' | 'killed' | 'not-running'> {
  const pid = runningPid(dir, name);
  rmSync(pidFile(dir, name), { force: true });
  if (pid === undefined) return 'not-running';
  const signal = (s: NodeJS.Signals) => {
    try {
      process.kill(pid, s);
    } catch {
      /* already gone */
    }
  };
  signal('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!alive(pid)) return 'stopped';
    await sleep(50);
  }
  signal('SIGKILL');
  for (let i = 0; i < 100 && alive(pid); i++) await sleep(20);
  return 'killed';
}

/** True when something accepts TCP connections on host:port. */
export function portInUse(host: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const sock = connect({ host, port });
    sock.setTimeout(1000);
    const end = (open: boolean) => {
      sock.destroy();
      done(open);
    };
    sock.once('connect', () => end(true)).once('error', () => end(false)).once('timeout', () => end(false));
  });
}

/** A TCP port that was free on `host` a moment ago (the OS picks it). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}
