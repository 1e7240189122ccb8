/**
 * Pipelines and schedules over HTTP (the same services as `align pipeline` and `align schedule`):
 *
 *   POST   /pipelines {pipeline, config, set?, pipelineId?}   201 {pipelineId, pipeline, stages}
 *   GET    /pipelines?limit=N                                 200 {pipelines: [...]}, newest first
 *   GET    /pipelines/:id                                     200 the stage tree: state, record (stages, child runs, outputs, lineage), current stage
 *   POST   /pipelines/:id/resume                              202 {pipelineId, attempt, skipped, resumes}
 *   POST   /schedules {name, pipeline, every? | cron?, config, set?, overlap?, paused?}   201 {name, pipeline, spec, nextRuns}
 *   GET    /schedules                                         200 {schedules: [...]}
 *   GET    /schedules/:name                                   200 spec, paused, recent rounds (failed ones with why), lineage
 *   POST   /schedules/:name/pause | unpause | trigger         202
 *   DELETE /schedules/:name                                   200 {name, deleted}
 *
 * Errors as the run routes: 400 bad input (an invalid cron expression names it), 404 unknown, 409 state.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { PIPELINE_NAMES } from '../../algorithms/pipelines/index.js';
import type { AllowedRoots } from '../allowed-roots.js';
import { PipelineService } from '../pipelines.js';
import type { RunService } from '../runs.js';
import { OVERLAP_POLICIES, ScheduleService } from '../schedules.js';
import type { OverlapName } from '../schedules.js';
import { listQuery, runParams } from './schemas.js';

const name = { type: 'string', minLength: 1, maxLength: 128, description: 'letters, digits, ".", "_", "-"' } as const;
const sets = { type: 'array', items: { type: 'string', pattern: '^[^=]+=' } } as const;

const pipelineBody = {
  type: 'object', required: ['pipeline', 'config'], additionalProperties: false,
  properties: { pipeline: { type: 'string', enum: [...PIPELINE_NAMES] }, config: { type: 'object' }, set: sets, pipelineId: name },
} as const;

const scheduleBody = {
  type: 'object', required: ['name', 'pipeline', 'config'], additionalProperties: false,
  properties: {
    name, pipeline: { type: 'string', enum: [...PIPELINE_NAMES] }, config: { type: 'object' }, set: sets,
    every: { type: 'string', minLength: 1 }, cron: { type: 'string', minLength: 1 },
    overlap: { type: 'string', enum: [...OVERLAP_POLICIES] }, paused: { type: 'boolean' },
  },
} as const;

const scheduleParams = { type: 'object', required: ['name'], properties: { name } } as const;
const noteBody = { type: ['object', 'null'], additionalProperties: false, properties: { note: { type: 'string', maxLength: 1000 }, overlap: { type: 'string', enum: [...OVERLAP_POLICIES] } } } as const;

type Named = FastifyRequest<{ Params: { name: string }; Body: { note?: string; overlap?: OverlapName } | null }>;

export function addPipelineRoutes(app: FastifyInstance, runs: RunService, allowedRoots: AllowedRoots): void {
  const pipelines = new PipelineService(runs);
  const schedules = new ScheduleService(runs);

  app.post('/pipelines', { schema: { body: pipelineBody } }, async (req: FastifyRequest<{ Body: { pipeline: string; config: Record<string, unknown>; set?: string[]; pipelineId?: string } }>, reply) => {
    const b = req.body;
    const r = await pipelines.start(b.pipeline, b.config, b.set ?? [], { pipelineId: b.pipelineId, allowedRoots });
    return reply.code(201).header('location', `/pipelines/${r.pipelineId}`).send(r);
  });
  app.get('/pipelines', { schema: { querystring: listQuery } }, async (req: FastifyRequest<{ Querystring: { limit: number } }>) => ({ pipelines: await pipelines.list({ limit: req.query.limit }) }));
  app.get('/pipelines/:id', { schema: { params: runParams } }, async (req: FastifyRequest<{ Params: { id: string } }>) => pipelines.status(req.params.id));
  app.post('/pipelines/:id/resume', { schema: { params: runParams } }, async (req: FastifyRequest<{ Params: { id: string } }>, reply) => reply.code(202).send(await pipelines.resume(req.params.id)));

  app.post('/schedules', { schema: { body: scheduleBody } }, async (req: FastifyRequest<{ Body: { name: string; pipeline: string; config: Record<string, unknown>; set?: string[]; every?: string; cron?: string; overlap?: OverlapName; paused?: boolean } }>, reply) => {
    const b = req.body;
    const r = await schedules.create(b.name, { pipeline: b.pipeline, config: b.config, sets: b.set ?? [], every: b.every, cron: b.cron, overlap: b.overlap, paused: b.paused, allowedRoots });
    return reply.code(201).header('location', `/schedules/${r.name}`).send(r);
  });
  app.get('/schedules', async () => ({ schedules: await schedules.list() }));
  app.get('/schedules/:name', { schema: { params: scheduleParams } }, async (req: Named) => schedules.describe(req.params.name));
  app.post('/schedules/:name/pause', { schema: { params: scheduleParams, body: noteBody } }, async (req: Named, reply: FastifyReply) => reply.code(202).send(await schedules.pause(req.params.name, req.body?.note)));
  app.post('/schedules/:name/unpause', { schema: { params: scheduleParams, body: noteBody } }, async (req: Named, reply: FastifyReply) => reply.code(202).send(await schedules.unpause(req.params.name, req.body?.note)));
  app.post('/schedules/:name/trigger', { schema: { params: scheduleParams, body: noteBody } }, async (req: Named, reply: FastifyReply) => reply.code(202).send(await schedules.trigger(req.params.name, req.body?.overlap)));
  app.delete('/schedules/:name', { schema: { params: scheduleParams } }, async (req: Named) => schedules.delete(req.params.name));
}
