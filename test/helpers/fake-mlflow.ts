/**
 * An HTTP server answering the part of MLflow's REST API (2.0) the tracking sink uses, keeping
 * what it was sent, for tests: experiments get-by-name / create, runs search / create, log-batch.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeMlflow {
  uri: string;
  experiments: { id: string; name: string }[];
  runs: { id: string; experimentId: string; tags: Record<string, string>; params: Record<string, string>; metrics: { key: string; value: number | string; step: number; timestamp: number }[] }[];
  /** Authorization headers received, in order. */
  auth: (string | undefined)[];
  close(): Promise<void>;
}

export async function startFakeMlflow(): Promise<FakeMlflow> {
  const f: Omit<FakeMlflow, 'uri' | 'close'> = { experiments: [], runs: [], auth: [] };
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      f.auth.push(req.headers.authorization);
      const url = new URL(req.url ?? '/', 'http://x');
      const route = url.pathname.replace('/api/2.0/mlflow/', '');
      const json = body ? JSON.parse(body) : {};
      const send = (code: number, out: unknown) => res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(out));
      if (route === 'experiments/get-by-name') {
        const e = f.experiments.find((x) => x.name === url.searchParams.get('experiment_name'));
        return e ? send(200, { experiment: { experiment_id: e.id, name: e.name } }) : send(404, { error_code: 'RESOURCE_DOES_NOT_EXIST' });
      }
      if (route === 'experiments/create') {
        const e = { id: String(f.experiments.length + 1), name: json.name };
        f.experiments.push(e);
        return send(200, { experiment_id: e.id });
      }
      if (route === 'runs/search') {
        const m = /tags\."aligner\.run" = '([^']*)'/.exec(json.filter ?? '');
        const hits = f.runs.filter((r) => json.experiment_ids.includes(r.experimentId) && (!m || r.tags['aligner.run'] === m[1]));
        return send(200, hits.length ? { runs: hits.slice(0, json.max_results ?? 1000).map((r) => ({ info: { run_id: r.id } })) } : {});
      }
      if (route === 'runs/create') {
        const r = { id: `r${f.runs.length + 1}`, experimentId: json.experiment_id, tags: Object.fromEntries(json.tags.map((t: { key: string; value: string }) => [t.key, t.value])), params: {}, metrics: [] };
        f.runs.push(r);
        return send(200, { run: { info: { run_id: r.id } } });
      }
      if (route === 'runs/log-batch') {
        const r = f.runs.find((x) => x.id === json.run_id);
        if (!r) return send(404, { error_code: 'RESOURCE_DOES_NOT_EXIST' });
        for (const p of json.params ?? []) r.params[p.key] = p.value;
        r.metrics.push(...(json.metrics ?? []));
        return send(200, {});
      }
      send(404, { error_code: 'ENDPOINT_NOT_FOUND' });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { ...f, uri: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
