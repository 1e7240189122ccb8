/** `align metrics`: a run's history from the metrics ledger, as charts and summaries, or CSV. */
import type { MetricsHistory, StepRow } from '../../store/metrics-ledger.js';
import { formatNumber as num, lineChart, sparklineWithRange } from '../progress.js';

/** Online iterations' metrics worth a curve, in this order, where the run has them. */
const ONLINE_CURVES = ['reward', 'kl', 'entropy', 'responseLength', 'clipFraction', 'valueLoss'];

const series = (steps: readonly StepRow[], pick: (s: StepRow) => number | undefined): number[] =>
  steps.map(pick).filter((x): x is number => x !== undefined && Number.isFinite(x));

export function formatMetrics(runId: string, h: MetricsHistory): string {
  const steps = h.steps;
  if (steps.length === 0 && h.validations.length === 0) return `run ${runId}: nothing in the metrics ledger yet (it is written as each chunk checkpoints)`;
  const lines: string[] = [];
  const lineage = h.lineage.length > 1 ? ` (continued across ${h.lineage.map((l) => `${l.runId} ${l.fromStep}→${l.toStep}`).join(', ')})` : '';
  lines.push(`run ${runId}: ${steps.length} steps in the metrics ledger${lineage}`);
  const row = (k: string, v: string) => lines.push(`  ${k.padEnd(15)}${v}`);
  if (steps.length) {
    const loss = series(steps, (s) => s.loss);
    row('loss', `${num(loss[0])} → ${num(loss.at(-1))}`);
    lines.push(...lineChart(loss, { height: 8, width: 60, xLabel: `step ${steps[0].step} … ${steps.at(-1)!.step}` }).map((l) => `    ${l}`));
    row('learning rate', sparklineWithRange(series(steps, (s) => s.lr), 60));
    row('grad norm', sparklineWithRange(series(steps, (s) => s.gradNorm), 60));
    for (const k of ONLINE_CURVES) {
      const v = series(steps, (s) => s.metrics[k]);
      if (v.length > 1) row(k, `${num(v[0])} → ${num(v.at(-1))}   ${sparklineWithRange(v, 50)}`);
    }
    const tokens = steps.reduce((a, s) => a + s.tokens, 0);
    row('tokens', tokens.toLocaleString('en-US'));
  }
  if (h.validations.length) {
    const head = h.validations.at(-1)!.headline;
    const value = (v: MetricsHistory['validations'][number]) => (head && head.metric !== 'loss' ? v.metrics[head.metric] ?? v.headline?.value : v.loss);
    const name = head && head.metric !== 'loss' ? head.metric : 'validation loss';
    const vs = h.validations.map(value).filter((x): x is number => x !== undefined);
    row(name, `${h.validations.map((v) => `${num(value(v))} (step ${v.step})`).join(' → ')}${vs.length > 2 ? `   ${sparklineWithRange(vs, 40)}` : ''}`);
  }
  if (h.evaluations.length) {
    row('held-out', h.evaluations.map((e) => `${num(e.metrics.evalReward)} (step ${e.step})`).join(' → '));
  }
  return lines.join('\n');
}

/** Steps as CSV: step, loss, lr, gradNorm, tokens, then every metric any step has (empty where a step lacks it). */
export function metricsCsv(h: MetricsHistory): string {
  const keys = [...new Set(h.steps.flatMap((s) => Object.keys(s.metrics)))].sort();
  const header = ['step', 'loss', 'lr', 'gradNorm', 'tokens', ...keys];
  const rows = h.steps.map((s) => [s.step, s.loss, s.lr, s.gradNorm, s.tokens, ...keys.map((k) => s.metrics[k] ?? '')].join(','));
  return [header.join(','), ...rows].join('\n');
}
