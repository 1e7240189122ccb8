/**
 * `npm run api -- [--port 8787] [--host 127.0.0.1] [--token T]`: the HTTP API server.
 * The token comes from --token or ALIGN_API_TOKEN (prefer the variable: arguments show in `ps`).
 * It starts even when the Temporal server is down; requests then get 503 naming its address.
 */
import { parseArgs } from 'node:util';
import { defaultTemporalAddress } from '../temporal.js';
import { defaultStoreUri, parseQueues, RunService } from '../runs.js';
import { AllowedRoots } from '../allowed-roots.js';
import { buildApi } from './server.js';

const HELP = `npm run api -- [options]

Serves the run operations (start, list, status, pause, resume, cancel, terminate, resume-failed,
export) over HTTP with bearer-token auth. See infra/api/server.ts for the routes.

  --port N         listen port (default 8787)
  --host ADDR      listen address (default 127.0.0.1; 0.0.0.0 exposes it to the network)
  --token T        bearer token clients must send (default: $ALIGN_API_TOKEN; one is required)
  --address H:P    Temporal server (default: $TEMPORAL_ADDRESS, else 127.0.0.1:7233)
  --namespace NS   Temporal namespace (default: default)
  --queues C,W     task queues of an isolated worker fleet (default: $ALIGN_QUEUES, else align-control,align-cpu)
  --store URI      artifact store of the workers (default: $ALIGN_STORE_URI, else .state/store)
  -h, --help       this text

Environment:
  ALIGN_API_TOKEN       the token of scope operate (start, pause, resume, cancel, export, schedule)
  ALIGN_API_READ_TOKEN  optionally, a token of scope read (GET only: runs, metrics, rollouts, pipelines)
  ALIGN_ALLOWED_ROOTS   folders and s3:// prefixes configs and exports may point into, comma-separated
                        (default: the working folder and the store); anything else is a 400

Example:
  ALIGN_API_TOKEN=$(openssl rand -hex 16) npm run api -- --port 8787
  curl -H "Authorization: Bearer $ALIGN_API_TOKEN" http://127.0.0.1:8787/runs`;

function fail(message: string): never {
  console.error(`align-api: error: ${message}`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      port: { type: 'string', default: '8787' },
      host: { type: 'string', default: '127.0.0.1' },
      token: { type: 'string' },
      address: { type: 'string' },
      namespace: { type: 'string' },
      queues: { type: 'string' },
      store: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }));
} catch (e) {
  fail((e as Error).message);
}
if (values.help) {
  console.log(HELP);
  process.exit(0);
}
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port must be a port number, got ${values.port}`);
const token = values.token ?? process.env.ALIGN_API_TOKEN ?? '';
if (!token) fail('no bearer token: set ALIGN_API_TOKEN or pass --token');

let service: RunService;
try {
  service = new RunService({
    // 503 within about 4 s when the server is down or gone: connecting and each operation's calls.
    connectTimeoutMs: 3_500,
    address: values.address ?? defaultTemporalAddress(), namespace: values.namespace, storeUri: values.store ?? defaultStoreUri(),
    queues: parseQueues(values.queues ?? process.env.ALIGN_QUEUES),
  });
} catch (e) {
  fail((e as Error).message);
}
const readToken = process.env.ALIGN_API_READ_TOKEN;
let allowedRoots: AllowedRoots;
try {
  allowedRoots = AllowedRoots.fromEnv(service.storeUri);
} catch (e) {
  fail((e as Error).message);
}
const app = buildApi({
  service, token, tokens: readToken ? [{ token: readToken, scope: 'read' }] : [], allowedRoots, logger: { level: process.env.ALIGN_API_LOG ?? 'info' },
});
try {
  const url = await app.listen({ port, host: values.host });
  console.log(JSON.stringify({ event: 'api-started', url, temporal: service.address, store: service.opts.storeUri, allowedRoots: allowedRoots.roots }));
} catch (e) {
  fail(`cannot listen on ${values.host}:${port}: ${(e as Error).message}`);
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    void app.close().then(() => service.close());
  });
}
