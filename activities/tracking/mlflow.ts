/**
 * An MLflow-compatible tracking sink over its REST API (2.0): the experiment is found by name or
 * created, the run is found by its `aligner.run` tag or created (so a worker that picks the run up
 * later logs to the same MLflow run), and metrics go in batches of at most 1000
 * (runs/log-batch's limit). Every request has a deadline: a tracker must not hold a chunk.
 */
import type { Scalar } from './tensorboard.js';

const BATCH = 1000;
const REQUEST_MS = 10_000;

export class TrackerError extends Error {
  override name = 'TrackerError';
}

/** Authorization from the environment MLflow's own clients read. */
function authHeader(env = process.env): Record<string, string> {
  if (env.MLFLOW_TRACKING_TOKEN) return { authorization: `Bearer ${env.MLFLOW_TRACKING_TOKEN}` };
  if (env.MLFLOW_TRACKING_USERNAME) return { authorization: `Basic ${Buffer.from(`${env.MLFLOW_TRACKING_USERNAME}:${env.MLFLOW_TRACKING_PASSWORD ?? ''}`).toString('base64')}` };
  return {};
}

export class MlflowSink {
  /** MLflow run ids by our run id, so that only a run's first chunk searches for it. */
  private readonly runIds = new Map<string, Promise<string>>();

  constructor(readonly uri: string, readonly experiment: string) {}

  private async call<T>(method: 'GET' | 'POST', route: string, body?: unknown): Promise<T> {
    const url = `${this.uri.replace(/\/$/, '')}/api/2.0/mlflow/${route}`;
    let res: Response;
    try {
      res = await fetch(url, {
        method, headers: { 'content-type': 'application/json', ...authHeader() },
        body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(REQUEST_MS),
      });
    } catch (e) {
      throw new TrackerError(`MLflow at ${this.uri} is unreachable (${method} ${route}: ${(e as Error).message})`);
    }
    const text = await res.text();
    if (!res.ok) throw new TrackerError(`MLflow at ${this.uri}: ${method} ${route} answered ${res.status} ${text.slice(0, 200)}`);
    return (text ? JSON.parse(text) : {}) as T;
  }

  private async experimentId(): Promise<string> {
    try {
      const found = await this.call<{ experiment: { experiment_id: string } }>('GET', `experiments/get-by-name?experiment_name=${encodeURIComponent(this.experiment)}`);
      return found.experiment.experiment_id;
    } catch (e) {
      if (!(e instanceof TrackerError) || !/ 404 /.test(e.message)) throw e;
      return (await this.call<{ experiment_id: string }>('POST', 'experiments/create', { name: this.experiment })).experiment_id;
    }
  }

  private async mlflowRun(runId: string, params: Record<string, string>): Promise<string> {
    const experimentId = await this.experimentId();
    const found = await this.call<{ runs?: { info: { run_id: string } }[] }>('POST', 'runs/search', {
      experiment_ids: [experimentId], filter: `tags."aligner.run" = '${runId.replace(/'/g, '')}'`, max_results: 1,
    });
    if (found.runs?.length) return found.runs[0].info.run_id;
    const created = await this.call<{ run: { info: { run_id: string } } }>('POST', 'runs/create', {
      experiment_id: experimentId, run_name: runId, start_time: Date.now(), tags: [{ key: 'aligner.run', value: runId }, { key: 'mlflow.runName', value: runId }],
    });
    const id = created.run.info.run_id;
    const p = Object.entries(params).map(([key, value]) => ({ key, value: value.slice(0, 6000) }));
    for (let i = 0; i < p.length; i += 100) await this.call('POST', 'runs/log-batch', { run_id: id, params: p.slice(i, i + 100) });
    return id;
  }

  /** Sends `scalars` of our run `runId` (its `params` are logged once, when the MLflow run is created). */
  async log(runId: string, scalars: readonly Scalar[], params: Record<string, string> = {}): Promise<void> {
    if (!this.runIds.has(runId)) {
      const p = this.mlflowRun(runId, params);
      this.runIds.set(runId, p);
      p.catch(() => this.runIds.delete(runId)); // asked again with the next chunk
    }
    const id = await this.runIds.get(runId)!;
    const timestamp = Date.now();
    // MLflow's metric values are finite doubles or NaN; ±Infinity is refused, so it is sent as NaN.
    const metrics = scalars.map((s) => ({ key: s.tag, value: Number.isFinite(s.value) ? s.value : 'NaN', timestamp, step: s.step }));
    for (let i = 0; i < metrics.length; i += BATCH) await this.call('POST', 'runs/log-batch', { run_id: id, metrics: metrics.slice(i, i + BATCH) });
  }
}
