/**
 * `npm run stack -- [start|stop|status|env] [options]`: the local dev stack (Temporal dev server,
 * optionally versitygw as S3) as background processes with pid and log files in a state folder.
 */
import { relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { readStack, stackEnv, startStack, stopStack, type StackInfo } from './dev-stack.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

const HELP = `Usage: npm run stack -- [start|stop|status|env] [options]

  start (default)  start the Temporal dev server (and versitygw with --s3); when they already
                   run, only report their addresses
  stop             stop them (SIGTERM, then SIGKILL after --grace seconds)
  status           show what runs and where (exit code 1 when Temporal is not running)
  env              print export lines for clients:  eval "$(npm run -s stack -- env)"

Options:
  --state DIR      state folder: SQLite file, S3 objects, pid and log files (default .state,
                   env ALIGN_STATE_DIR)
  --ip ADDR        listen address (default 127.0.0.1)
  --port N         Temporal gRPC port (default 7233)
  --ui-port N      Temporal Web UI port (default port + 1000)
  --headless       no Web UI
  --s3             also start versitygw, an S3 endpoint (or env ALIGN_STACK_S3=1)
  --s3-port N      S3 port (default 7070)
  --bucket NAME    bucket to create (default env ALIGN_S3_BUCKET, else "aligner")
  --grace S        seconds to wait after SIGTERM on stop (default 10)
  -h, --help       this text

S3 credentials are ALIGN_S3_ACCESS_KEY / ALIGN_S3_SECRET_KEY when both are set, else generated
once and kept in <state>/s3-credentials.json. The binaries come from .tools/ (bash infra/tools.sh).`;

function port(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`--${name} must be a port number, got ${v}`);
  return n;
}

function report(info: Partial<StackInfo>): void {
  const rel = (p: string) => relative(process.cwd(), p) || '.';
  if (info.temporal) {
    const t = info.temporal;
    console.log(`stack: Temporal  ${t.address}  (namespace ${t.namespace}, pid ${t.pid}, log ${rel(t.logFile)})`);
    if (t.uiUrl) console.log(`stack: Web UI    ${t.uiUrl}`);
  } else {
    console.log('stack: Temporal  not running');
  }
  if (info.s3) {
    const s = info.s3;
    console.log(`stack: S3        ${s.endpoint}  bucket ${s.bucket}  (pid ${s.pid}, objects in ${rel(s.dataDir)}, log ${rel(s.logFile)})`);
  }
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      state: { type: 'string' },
      ip: { type: 'string' },
      port: { type: 'string' },
      'ui-port': { type: 'string' },
      headless: { type: 'boolean' },
      s3: { type: 'boolean' },
      's3-port': { type: 'string' },
      bucket: { type: 'string' },
      grace: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const cmd = positionals[0] ?? 'start';
  if (positionals.length > 1 || !['start', 'stop', 'status', 'env'].includes(cmd)) {
    throw new Error(`unknown command ${positionals.join(' ')} (see --help)`);
  }
  const stateDir = resolve(ROOT, values.state ?? process.env.ALIGN_STATE_DIR ?? '.state');
  if (cmd === 'stop') {
    const grace = Number(values.grace ?? 10);
    if (!(grace >= 0)) throw new Error(`--grace must be a number of seconds, got ${values.grace}`);
    const res = await stopStack(stateDir, grace * 1000);
    for (const [name, what] of Object.entries(res)) console.log(`stack: ${name.padEnd(8)} ${what}`);
    return 0;
  }
  if (cmd === 'status' || cmd === 'env') {
    const info = readStack(stateDir);
    if (cmd === 'env') {
      for (const [k, v] of Object.entries(stackEnv(info))) console.log(`export ${k}=${JSON.stringify(v)}`);
    } else report(info);
    return info.temporal ? 0 : 1;
  }
  const before = readStack(stateDir);
  const wantS3 = values.s3 || process.env.ALIGN_STACK_S3 === '1';
  const keys = process.env.ALIGN_S3_ACCESS_KEY && process.env.ALIGN_S3_SECRET_KEY;
  const info = await startStack({
    stateDir,
    ip: values.ip,
    temporalPort: port(values.port, 'port'),
    uiPort: port(values['ui-port'], 'ui-port'),
    headless: values.headless,
    s3: wantS3,
    s3Port: port(values['s3-port'], 's3-port'),
    bucket: values.bucket ?? (process.env.ALIGN_S3_BUCKET || undefined),
    accessKey: keys ? process.env.ALIGN_S3_ACCESS_KEY : undefined,
    secretKey: keys ? process.env.ALIGN_S3_SECRET_KEY : undefined,
  });
  if (before.temporal && (!wantS3 || before.s3)) console.log('stack: already running');
  report(info);
  console.log(`stack: clients:  eval "$(npm run -s stack -- env${values.state ? ` --state ${values.state}` : ''})"`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: Error) => {
    console.error(`stack: ERROR: ${e.message}`);
    process.exit(1);
  },
);
