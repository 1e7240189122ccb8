/**
 * infra/deploy: the compose file and the Kubernetes manifests, schema-checked (every service and
 * worker has what its process reads, GPU pools request nvidia.com/gpu, every command names a file
 * that exists), and their processes started for real: the compose services' worker commands and
 * the GPU pool's launcher, run here against the test's Temporal server with the environment the
 * files give them. `docker compose config` and a server-side `kubectl apply --dry-run` run where
 * those tools and a daemon or cluster exist, and are skipped with a message where not.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { defaultTemporalAddress } from '../../infra/temporal.js';
import { root } from '../e2e/helpers.js';

const DEPLOY = path.join(root, 'infra/deploy');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'aligner-deploy-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** What every Aligner process reads (infra/workers/main.ts, infra/api/main.ts, store/s3-store.ts). */
const PROCESS_ENV = ['TEMPORAL_ADDRESS', 'ALIGN_STORE_URI', 'ALIGN_QUEUES', 'ALIGN_S3_ACCESS_KEY', 'ALIGN_S3_SECRET_KEY'];

const service = z.object({
  image: z.string().min(1),
  command: z.array(z.string()).optional(),
  entrypoint: z.array(z.string()).optional(),
  environment: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
  depends_on: z.union([z.array(z.string()), z.record(z.string(), z.object({ condition: z.enum(['service_started', 'service_healthy', 'service_completed_successfully']) }))]).optional(),
  ports: z.array(z.string()).optional(),
  volumes: z.array(z.string()).optional(),
  ipc: z.string().optional(),
  pid: z.string().optional(),
  restart: z.string().optional(),
  stop_grace_period: z.string().optional(),
  deploy: z.object({ replicas: z.union([z.number(), z.string()]) }).optional(),
}).strict();
const composeFile = z.object({ name: z.string(), services: z.record(z.string(), service), volumes: z.record(z.string(), z.object({})).optional() }).passthrough();

const container = z.object({
  name: z.string(),
  image: z.string(),
  args: z.array(z.string()).optional(),
  command: z.array(z.string()).optional(),
  envFrom: z.array(z.object({ configMapRef: z.object({ name: z.string() }).optional(), secretRef: z.object({ name: z.string() }).optional() })).optional(),
  env: z.array(z.object({ name: z.string(), value: z.string().optional(), valueFrom: z.unknown().optional() })).optional(),
  resources: z.object({ requests: z.record(z.string(), z.union([z.string(), z.number()])), limits: z.record(z.string(), z.union([z.string(), z.number()])) }),
}).passthrough();
const workload = z.object({
  apiVersion: z.literal('apps/v1'),
  kind: z.enum(['Deployment', 'StatefulSet']),
  metadata: z.object({ name: z.string(), namespace: z.literal('aligner') }),
  spec: z.object({ replicas: z.number().int().positive(), template: z.object({ spec: z.object({ containers: z.array(container).min(1) }).passthrough() }) }).passthrough(),
});

const compose = () => composeFile.parse(parse(readFileSync(path.join(DEPLOY, 'compose.yaml'), 'utf8'), { merge: true }));
const manifests = () => readdirSync(path.join(DEPLOY, 'k8s')).flatMap((f) => parseAllDocuments(readFileSync(path.join(DEPLOY, 'k8s', f), 'utf8')).map((d) => d.toJSON() as Record<string, unknown>));
const configMapKeys = () => {
  const docs = manifests();
  const keys = (kind: string) => docs.filter((d) => d.kind === kind).flatMap((d) => Object.keys({ ...(d.data as object), ...(d.stringData as object) }));
  return new Set([...keys('ConfigMap'), ...keys('Secret')]);
};
/** The first argument that names a file of the project (a .ts entry point or a script). */
const scriptOf = (args: readonly string[]) => args.find((a) => /\.(ts|sh)$/.test(a));

describe('infra/deploy files', () => {
  it('compose: every service checks out, every Aligner process gets the environment it reads, and its entry point exists', () => {
    const c = compose();
    expect(Object.keys(c.services).sort()).toEqual(['api', 'bucket', 'compute', 'control', 's3', 'temporal']);
    for (const name of ['control', 'compute', 'api', 'bucket']) {
      const s = c.services[name];
      for (const v of PROCESS_ENV) expect(Object.keys(s.environment ?? {}), `${name} ${v}`).toContain(v);
      const script = scriptOf(s.command ?? []);
      expect(script, name).toBeDefined();
      expect(existsSync(path.join(root, script!)), script).toBe(true);
    }
    expect(c.services.compute.ipc).toBe('host'); // a gang's ranks meet over shared memory
    expect(c.services.compute.pid).toBe('host'); // and see each other's processes
    expect(Object.keys(c.services.compute.environment ?? {})).toEqual(expect.arrayContaining(['ALIGN_WORKER_HOST', 'ALIGN_GANG_DIR']));
    expect(c.services.compute.deploy?.replicas).toBeDefined();
  });

  it('kubernetes: workloads check out, GPU workers request nvidia.com/gpu and share /dev/shm, and every process gets its environment', () => {
    const docs = manifests();
    const workloads = docs.filter((d) => d.kind === 'Deployment' || d.kind === 'StatefulSet').map((d) => workload.parse(d));
    expect(workloads.map((w) => w.metadata.name).sort()).toEqual(['aligner-api', 'aligner-control', 'aligner-gpu-workers']);
    const provided = configMapKeys();
    for (const v of PROCESS_ENV) expect([...provided], v).toContain(v);
    const gpu = workloads.find((w) => w.metadata.name === 'aligner-gpu-workers')!;
    const c = gpu.spec.template.spec.containers[0];
    expect(Number(c.resources.limits['nvidia.com/gpu'])).toBeGreaterThan(0);
    expect(c.resources.requests['nvidia.com/gpu']).toBe(c.resources.limits['nvidia.com/gpu']);
    const perHost = c.env?.find((e) => e.name === 'ALIGN_WORKERS_PER_HOST')?.value;
    expect(Number(perHost)).toBe(Number(c.resources.limits['nvidia.com/gpu'])); // one worker per GPU
    expect(JSON.stringify(gpu.spec.template.spec)).toContain('"mountPath":"/dev/shm"');
    for (const w of workloads) {
      const args = [...(w.spec.template.spec.containers[0].command ?? []), ...(w.spec.template.spec.containers[0].args ?? [])];
      expect(existsSync(path.join(root, scriptOf(args)!)), w.metadata.name).toBe(true);
    }
  });

  it('docker compose config accepts the file (where docker compose and its daemon exist)', (ctx) => {
    const probe = spawnSync('docker', ['compose', 'version'], { encoding: 'utf8' });
    if (probe.status !== 0) {
      console.info('skipped: docker compose is not installed here');
      return ctx.skip();
    }
    const r = spawnSync('docker', ['compose', '-f', path.join(DEPLOY, 'compose.yaml'), 'config', '--quiet'], { encoding: 'utf8', env: { ...process.env, ALIGN_S3_ACCESS_KEY: 'k', ALIGN_S3_SECRET_KEY: 's', ALIGN_API_TOKEN: 't' } });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('kubectl accepts the manifests server-side (where a cluster is configured)', (ctx) => {
    const probe = spawnSync('kubectl', ['cluster-info'], { encoding: 'utf8', timeout: 10_000 });
    if (probe.status !== 0) {
      console.info('skipped: kubectl has no reachable cluster here');
      return ctx.skip();
    }
    const r = spawnSync('kubectl', ['apply', '--dry-run=server', '-f', path.join(DEPLOY, 'k8s')], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
  });
});

/** Starts a command with the environment a deploy file gives it, pointed at this test's servers; resolves once `count` workers report started. */
function startAs(cmd: string, args: string[], env: Record<string, string>, count: number): Promise<ChildProcess> {
  const child = spawn(cmd, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  return new Promise((resolve, reject) => {
    let out = '', started = 0;
    const timer = setTimeout(() => reject(new Error(`${args.join(' ')} did not start: ${out}`)), 90_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d;
      started = (out.match(/"worker-started"/g) ?? []).length;
      if (started >= count) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.stderr!.on('data', (d: Buffer) => (out += d));
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}: ${out}`)));
  });
}

const stop = (c: ChildProcess) => {
  try {
    process.kill(-c.pid!, 'SIGTERM');
  } catch {
    // already gone
  }
};

describe('infra/deploy processes, started for real', () => {
  // The files' addresses are service names (temporal:7233, s3:7070); here they are this test's servers.
  const local = (env: Record<string, string | number> | undefined) => ({
    ...Object.fromEntries(Object.entries(env ?? {}).map(([k, v]) => [k, String(v)])),
    TEMPORAL_ADDRESS: defaultTemporalAddress(),
    ALIGN_STORE_URI: `file://${path.join(tmp, 'store')}`,
    ALIGN_QUEUES: 'align-control-deploy,align-cpu-deploy',
    ALIGN_NUM_THREADS: '1',
  });

  it('the compose control and compute services start as their files say', async () => {
    const c = compose();
    const tsx = path.join(root, 'node_modules/.bin/tsx');
    const procs: ChildProcess[] = [];
    try {
      for (const name of ['control', 'compute']) procs.push(await startAs(tsx, c.services[name].command!, local(c.services[name].environment), 1));
    } finally {
      procs.forEach(stop);
    }
  });

  it('the GPU pool\'s launcher starts one compute worker per GPU it is given', async () => {
    const [gpu] = manifests().filter((d) => (d.metadata as { name: string }).name === 'aligner-gpu-workers').map((d) => workload.parse(d));
    const c = gpu.spec.template.spec.containers[0];
    const env = Object.fromEntries((c.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]));
    // Two workers here (this machine has no GPUs to give eight).
    const launcher = await startAs('bash', c.command!.slice(1), { ...local(env), ALIGN_WORKERS_PER_HOST: '2', ALIGN_GPU_LIST: '0,1', ALIGN_WORKER_HOST: 'deploy-test' }, 2);
    stop(launcher);
  });
});
