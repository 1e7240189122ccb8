/**
 * The HTTP API (fastify): the run service's operations over JSON, behind a bearer token.
 *
 *   POST /runs {recipe, config, set?, runId?}     201 {runId, recipe}
 *   GET  /runs?limit=N                            200 {runs: [...]}, newest first
 *   GET  /runs/:id                                200 status: state, progress, result or failure
 *   GET  /runs/:id/metrics?from=&to=              200 {steps, validations, evaluations, lineage} from the metrics ledger
 *   GET  /runs/:id/rollouts?iteration=N           200 an online run's samples at an iteration (rollout ledger)
 *   GET  /runs/:id/checkpoints                    200 {checkpoints: [{step, uri, createdAt, bytes, manifestSha256, files}]}, newest first
 *   POST /runs/:id/pause | resume | cancel        202 {runId, requested}
 *   POST /runs/:id/terminate {reason?}            202 {runId, requested}
 *   POST /runs/:id/resume-failed {runId?}         201 {runId, parentRunId, resumeFrom, skipped}
 *   POST /runs/:id/export {step?, outDir}         200 {runId, step, checkpoint, outDir, files}
 *   GET  /recipes                                 200 {recipes: [{name, kind, summary}]}
 *   GET  /recipes/:name                           200 the recipe: roles, data formats, metrics, headline, config JSON schema, example YAML
 *   /pipelines and /schedules                     see pipeline-routes.ts
 *   GET  /                                        the dashboard (dashboard-routes.ts; its files need no token, its calls do)
 *
 * Tokens have a scope: `read` may GET, `operate` may also change things (403 otherwise). Configs
 * and exports must point under the allowed roots (infra/allowed-roots.ts; 400 naming the field
 * otherwise), and a body is at most 1 MiB (413).
 *
 * Errors are JSON `{error, message}`: 401 without a valid token, 400 for a bad body (naming each
 * failing field) or an invalid config (the ConfigError's message names the field), 404 for an
 * unknown run or checkpoint, 409 for an operation the run's state does not allow, 503 when the
 * Temporal server is unreachable (naming its address).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import path from 'node:path';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { errorKind, UsageError, type ErrorKind, type RunService } from '../runs.js';
import { z } from 'zod';
import { exampleConfigYaml } from '../../algorithms/recipes/example-config.js';
import { getRecipe, parseRecipeConfig, RECIPE_NAMES, RECIPES } from '../../algorithms/recipes/index.js';
import { AllowedRoots } from '../allowed-roots.js';
import { addDashboardRoutes, isDashboardFile } from './dashboard-routes.js';
import { addPipelineRoutes } from './pipeline-routes.js';
import { describeValidation, exportBody, listQuery, metricsQuery, recipeParams, resumeFailedBody, rolloutsQuery, runParams, startBody, terminateBody, type StartBody } from './schemas.js';

/** What a token may do: `read` sees runs, metrics, rollouts and pipelines; `operate` also starts, pauses, cancels, resumes, exports and schedules. */
export type TokenScope = 'read' | 'operate';

export interface ApiOptions {
  service: RunService;
  /** The bearer token of scope `operate` (ALIGN_API_TOKEN). */
  token: string;
  /** More tokens, each with its scope (ALIGN_API_READ_TOKEN is one of scope `read`). */
  tokens?: { token: string; scope: TokenScope }[];
  /** Where configs and exports may point (default: ALIGN_ALLOWED_ROOTS, else the working folder and the store). */
  allowedRoots?: AllowedRoots;
  /** Largest request body in bytes (default 1 MiB): beyond it, 413. */
  bodyLimit?: number;
  /** fastify's logger setting (false in tests). */
  logger?: boolean | Record<string, unknown>;
}

/** Default of ApiOptions.bodyLimit: a config is a few kilobytes; data travels by URI, never in a request. */
export const BODY_LIMIT = 1 << 20;

const STATUS: Record<ErrorKind, number> = { usage: 400, 'not-found': 404, conflict: 409, unavailable: 503, internal: 500 };

const digest = (s: string) => createHash('sha256').update(s).digest();

type IdRequest = FastifyRequest<{ Params: { id: string } }>;

export function buildApi(o: ApiOptions): FastifyInstance {
  if (!o.token) throw new UsageError('the API needs a bearer token: set ALIGN_API_TOKEN or pass --token');
  const svc = o.service;
  const roots = o.allowedRoots ?? AllowedRoots.fromEnv(svc.storeUri);
  const app = Fastify({
    logger: o.logger ?? false,
    bodyLimit: o.bodyLimit ?? BODY_LIMIT,
    // Report every failing field, and reject unknown ones rather than dropping them silently.
    ajv: { customOptions: { allErrors: true, removeAdditional: false } },
  });

  const known = [{ token: o.token, scope: 'operate' as TokenScope }, ...(o.tokens ?? [])].filter((t) => t.token).map((t) => ({ digest: digest(t.token), scope: t.scope }));
  /** The scope of a presented token, or null. Every known token is compared (in constant time): timing says nothing about which matched. */
  const scopeOf = (presented: string): TokenScope | null => {
    const d = digest(presented);
    let found: TokenScope | null = null;
    for (const k of known) if (timingSafeEqual(d, k.digest) && found !== 'operate') found = k.scope;
    return found;
  };
  app.addHook('onRequest', async (req, reply) => {
    if (isDashboardFile(req.method, req.url)) return; // the page holds no data; its API calls carry the token
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    const scope = m ? scopeOf(m[1].trim()) : null;
    if (!scope) {
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer')
        .send({ error: 'Unauthorized', message: m ? 'invalid bearer token' : 'missing bearer token: send "Authorization: Bearer <token>"' });
    }
    // Reading is GET; everything else changes something and needs an operate token.
    if (scope === 'read' && req.method !== 'GET' && req.method !== 'HEAD') {
      return reply.code(403).send({ error: 'Forbidden', message: `this token may only read (scope read); ${req.method} ${req.url.split('?')[0]} needs a token of scope operate` });
    }
  });

  app.setErrorHandler((err: Error & { validation?: unknown[]; validationContext?: string; statusCode?: number; code?: string }, req, reply) => {
    if (err.validation) {
      const v = describeValidation(err.validation as Parameters<typeof describeValidation>[0], err.validationContext ?? 'body');
      return reply.code(400).send({ error: 'ValidationError', message: v.message, fields: v.fields });
    }
    // fastify's own client errors (malformed JSON, wrong content type, body too large).
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500 && err.code?.startsWith('FST_')) {
      return reply.code(err.statusCode).send({ error: err.name, message: err.message });
    }
    const kind = errorKind(err);
    if (kind === 'internal') req.log.error(err);
    return reply.code(STATUS[kind]).send({ error: err.name, message: err.message });
  });

  app.get('/recipes', async () => ({ recipes: RECIPE_NAMES.map((name) => ({ name, kind: RECIPES[name].kind, summary: RECIPES[name].summary })) }));

  app.get('/recipes/:name', { schema: { params: recipeParams } }, async (req: FastifyRequest<{ Params: { name: string } }>) => {
    const r = getRecipe(req.params.name);
    return {
      name: r.name, kind: r.kind, summary: r.summary, paper: r.paper, roles: r.roles, metrics: r.metrics,
      headline: r.headline(parseRecipeConfig(r.name, r.example)),
      ...(r.kind === 'offline' ? { dataFormats: r.dataFormats, precompute: r.precompute ? { name: r.precompute.name, description: r.precompute.description, role: r.precompute.role } : null } : {}),
      configSchema: z.toJSONSchema(r.schema, { io: 'input', unrepresentable: 'any' }),
      exampleYaml: exampleConfigYaml(r as never),
    };
  });

  app.post('/runs', { schema: { body: startBody } }, async (req: FastifyRequest<{ Body: StartBody }>, reply) => {
    const b = req.body;
    const r = await svc.startRun(b.recipe, b.config, b.set ?? [], { runId: b.runId, detach: true, allowedRoots: roots });
    return reply.code(201).header('location', `/runs/${r.runId}`).send({ runId: r.runId, recipe: r.recipe });
  });

  app.get('/runs', { schema: { querystring: listQuery } }, async (req: FastifyRequest<{ Querystring: { limit: number } }>) => ({
    runs: await svc.listRuns({ limit: req.query.limit }),
  }));

  app.get('/runs/:id', { schema: { params: runParams } }, async (req: IdRequest) => svc.getStatus(req.params.id));

  // An online run's samples at an iteration (default the newest), from the rollout ledger.
  app.get('/runs/:id/rollouts', { schema: { params: runParams, querystring: rolloutsQuery } }, async (req: FastifyRequest<{ Params: { id: string }; Querystring: { iteration?: number } }>) =>
    svc.rollouts(req.params.id, req.query.iteration));

  // Every step's, validation's and evaluation's metrics from the metrics ledger, across the run's lineage.
  app.get('/runs/:id/metrics', { schema: { params: runParams, querystring: metricsQuery } }, async (req: FastifyRequest<{ Params: { id: string }; Querystring: { from?: number; to?: number } }>) =>
    svc.metrics(req.params.id, req.query));

  app.get('/runs/:id/checkpoints', { schema: { params: runParams } }, async (req: IdRequest) => ({ checkpoints: await svc.checkpoints(req.params.id) }));

  for (const op of ['pause', 'resume', 'cancel'] as const) {
    app.post(`/runs/:id/${op}`, { schema: { params: runParams } }, async (req: IdRequest, reply: FastifyReply) => reply.code(202).send(await svc[op](req.params.id)));
  }

  app.post('/runs/:id/terminate', { schema: { params: runParams, body: terminateBody } }, async (req: FastifyRequest<{ Params: { id: string }; Body: { reason?: string } | null }>, reply) =>
    reply.code(202).send(await svc.terminate(req.params.id, req.body?.reason)),
  );

  app.post('/runs/:id/resume-failed', { schema: { params: runParams, body: resumeFailedBody } }, async (req: FastifyRequest<{ Params: { id: string }; Body: { runId?: string } | null }>, reply) => {
    const r = await svc.resumeFailed(req.params.id, { runId: req.body?.runId, detach: true });
    return reply.code(201).header('location', `/runs/${r.runId}`).send(r);
  });

  app.post('/runs/:id/export', { schema: { params: runParams, body: exportBody } }, async (req: FastifyRequest<{ Params: { id: string }; Body: { step?: number; outDir: string } }>) => {
    const { step, outDir } = req.body;
    // A relative path would depend on where the server was started.
    if (!path.isAbsolute(outDir)) throw new UsageError(`body.outDir must be an absolute path on the API server, got ${JSON.stringify(outDir)}`);
    roots.check('body.outDir', outDir);
    return svc.exportRun(req.params.id, { step, outDir });
  });

  addPipelineRoutes(app, svc, roots);
  addDashboardRoutes(app);

  return app;
}
