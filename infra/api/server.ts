/**
 * The HTTP API (fastify): the run service's operations over JSON, behind a bearer token.
 *
 *   POST /runs {recipe, config, set?, runId?}     201 {runId, recipe}
 *   GET  /runs?limit=N                            200 {runs: [...]}, newest first
 *   GET  /runs/:id                                200 status: state, progress, result or failure
 *   GET  /runs/:id/metrics?from=&to=              200 {steps, validations, evaluations, lineage} from the metrics ledger
 *   GET  /runs/:id/rollouts?iteration=N           200 an online run's samples at an iteration (rollout ledger)
 *   POST /runs/:id/pause | resume | cancel        202 {runId, requested}
 *   POST /runs/:id/terminate {reason?}            202 {runId, requested}
 *   POST /runs/:id/resume-failed {runId?}         201 {runId, parentRunId, resumeFrom, skipped}
 *   POST /runs/:id/export {step?, outDir}         200 {runId, step, checkpoint, outDir, files}
 *   GET  /recipes                                 200 {recipes: [{name, kind, summary}]}
 *   GET  /recipes/:name                           200 the recipe: roles, data formats, metrics, headline, config JSON schema, example YAML
 *   /pipelines and /schedules                     see pipeline-routes.ts
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
import { addPipelineRoutes } from './pipeline-routes.js';
import { describeValidation, exportBody, listQuery, metricsQuery, recipeParams, resumeFailedBody, rolloutsQuery, runParams, startBody, terminateBody, type StartBody } from './schemas.js';

export interface ApiOptions {
  service: RunService;
  /** The bearer token every request must carry. */
  token: string;
  /** fastify's logger setting (false in tests). */
  logger?: boolean | Record<string, unknown>;
}

const STATUS: Record<ErrorKind, number> = { usage: 400, 'not-found': 404, conflict: 409, unavailable: 503, internal: 500 };

const digest = (s: string) => createHash('sha256').update(s).digest();

type IdRequest = FastifyRequest<{ Params: { id: string } }>;

export function buildApi(o: ApiOptions): FastifyInstance {
  if (!o.token) throw new UsageError('the API needs a bearer token: set ALIGN_API_TOKEN or pass --token');
  const svc = o.service;
  const app = Fastify({
    logger: o.logger ?? false,
    // Report every failing field, and reject unknown ones rather than dropping them silently.
    ajv: { customOptions: { allErrors: true, removeAdditional: false } },
  });

  const expected = digest(o.token);
  app.addHook('onRequest', async (req, reply) => {
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    // Compare digests in constant time: the token's length and prefix leak nothing.
    if (!m || !timingSafeEqual(digest(m[1].trim()), expected)) {
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer')
        .send({ error: 'Unauthorized', message: m ? 'invalid bearer token' : 'missing bearer token: send "Authorization: Bearer <token>"' });
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
    const r = await svc.startRun(b.recipe, b.config, b.set ?? [], { runId: b.runId, detach: true });
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
    return svc.exportRun(req.params.id, { step, outDir });
  });

  addPipelineRoutes(app, svc);

  return app;
}
