/** Human-readable text for `align pipeline …` and `align schedule …`. */
import type { StageRecord } from '../../activities/pipeline/types.js';
import type { PipelineSummary, PipelineView } from '../pipelines.js';
import type { ScheduleSummaryView, ScheduleView } from '../schedules.js';
import { num } from './format.js';

const MARK: Record<StageRecord['state'], string> = { completed: '✔', running: '▶', pending: '·', failed: '✘' };

/** The stage tree: each stage's state, its child run, its lineage and its measured effect. */
export function formatPipeline(v: PipelineView): string {
  const r = v.record;
  const lines = [`pipeline ${v.pipelineId} (${v.pipeline ?? '?'}): ${v.state.toLowerCase()}${r && r.attempt > 0 ? `, attempt ${r.attempt + 1}` : ''}`];
  if (r) {
    lines.push(`  starts from  ${r.start.model}${r.schedule ? ` (schedule ${r.schedule}, round ${r.start.round})` : ''}`);
    for (const s of r.stages) {
      const took = v.seconds[s.name] !== undefined ? `  ${v.seconds[s.name].toFixed(1)} s` : '';
      lines.push(`  ${MARK[s.state]} ${s.name.padEnd(16)} ${`${s.kind} ${s.what}`.padEnd(24)} ${s.runId ?? '-'}${took}`);
      if (s.output?.summary) lines.push(`      ${s.output.summary}`);
      if (s.output?.model) lines.push(`      model  ${s.output.model}`);
      if (s.output?.data) lines.push(`      data   ${s.output.data}${s.output.records !== undefined ? ` (${s.output.records} records)` : ''}`);
      if (s.resumedFrom) lines.push(`      resumed from ${s.resumedFrom.runId} at step ${s.resumedFrom.step}`);
      if (s.failedRuns.length) lines.push(`      earlier failed runs: ${s.failedRuns.join(', ')}`);
      if (s.error) lines.push(`      error: ${s.error}`);
    }
    if (r.output) lines.push(`  output       ${r.output.model}`);
  }
  const p = v.current?.run?.progress;
  if (v.current && p) lines.push(`  now          ${v.current.stage}: ${p.status}, step ${p.step}/${p.maxSteps}${p.stage ? ` (${p.stage})` : ''}${p.lastLoss !== null ? `, loss ${num(p.lastLoss)}` : ''}`);
  if (v.failure) lines.push(`  failed       ${v.failure.message}`);
  if (v.state !== 'RUNNING' && v.state !== 'COMPLETED') lines.push(`  next         align pipeline resume ${v.pipelineId}`);
  return lines.join('\n');
}

export function formatPipelineList(list: readonly PipelineSummary[]): string {
  if (list.length === 0) return 'no pipelines yet; start one with: align pipeline run <pipeline> --config FILE';
  return list.map((p) => `${p.pipelineId.padEnd(44)} ${(p.pipeline ?? '?').padEnd(14)} ${p.state.toLowerCase().padEnd(10)} ${p.startTime}${p.schedule ? `  schedule ${p.schedule}` : ''}`).join('\n');
}

export function formatSchedule(s: ScheduleView): string {
  const lines = [
    `schedule ${s.name} (${s.pipeline ?? '?'}): ${s.spec}, ${s.paused ? 'PAUSED' : 'active'}, overlap ${s.overlap}${s.note ? ` — ${s.note}` : ''}`,
    `  rounds started ${s.actionsTaken}, skipped (overlap) ${s.skippedOverlap}; next ${s.paused ? '(paused)' : s.nextRuns[0] ?? '-'}`,
  ];
  for (const r of s.recent) lines.push(`  ${r.scheduledAt}  ${r.pipelineId}  ${(r.state ?? 'unknown').toLowerCase()}${r.failure ? `: ${r.failure}` : ''}`);
  if (s.completed.length) {
    lines.push('  lineage (completed rounds; each next round starts from the last model):');
    for (const c of s.completed) lines.push(`    round ${c.round}  ${c.pipelineId}  → ${c.model}`);
  } else lines.push('  lineage: no round has completed yet; the first starts from the config\'s model');
  return lines.join('\n');
}

export function formatScheduleList(list: readonly ScheduleSummaryView[]): string {
  if (list.length === 0) return 'no schedules; create one with: align schedule create NAME --pipeline rs --every 6h --config FILE';
  return list.map((s) => `${s.name.padEnd(24)} ${(s.pipeline ?? '?').padEnd(14)} ${s.spec.padEnd(28)} ${s.paused ? 'paused ' : 'active '} next ${s.nextRun ?? '-'}`).join('\n');
}
