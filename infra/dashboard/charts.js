// Line charts with uPlot (loaded as a global by index.html). Each chart's container records how
// many points it drew (data-points) and its series (data-series), which the browser test reads.
import { el, num } from './dom.js';

/** Steps and iterations are whole numbers: no tick at step 1.5. */
const STEP_INCREMENTS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6];

const COLORS = ['#0b5cad', '#d1242f', '#1a7f37', '#8250df', '#bf8700', '#1b7c83', '#cf222e', '#57606a'];

/**
 * A chart of `series` (each {label, values}) over `xs`; values may be null where a series has no
 * point. `log` puts the y axis on a log scale (a learning-rate schedule, a loss over decades).
 */
export function lineChart(title, xs, series, { xLabel = 'step', log = false } = {}) {
  const box = el('div', { class: 'chart', 'data-title': title, 'data-points': xs.length, 'data-series': series.map((s) => s.label).join(',') });
  const positive = series.every((s) => s.values.every((v) => v === null || v > 0));
  const opts = {
    title,
    width: 420,
    height: 220,
    scales: { x: { time: false }, y: log && positive ? { distr: 3 } : {} },
    // Tick labels with significant digits: a learning rate of 1e-3 → 9e-4 must not read 0.001, 0.001.
    axes: [{ label: xLabel, incrs: STEP_INCREMENTS }, { size: 64, values: (_u, ticks) => ticks.map(num) }],
    series: [{ label: xLabel }, ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true, points: { show: xs.length < 40 } }))],
    legend: { live: true },
    cursor: { points: { show: false } },
  };
  // Drawn once the box is in the page, at its width.
  requestAnimationFrame(() => {
    opts.width = Math.max(300, box.clientWidth - 12);
    box.chart = new globalThis.uPlot(opts, [xs, ...series.map((s) => s.values)], box);
  });
  return box;
}

/** Charts of a metrics history: the training curves, per-step recipe metrics, per-phase time, validations and evaluations. */
export function historyCharts(history) {
  const charts = [];
  const steps = history.steps;
  if (steps.length > 0) {
    const xs = steps.map((s) => s.step);
    charts.push(lineChart('training loss', xs, [{ label: 'loss', values: steps.map((s) => s.loss) }]));
    charts.push(lineChart('learning rate', xs, [{ label: 'lr', values: steps.map((s) => s.lr) }]));
    charts.push(lineChart('grad norm', xs, [{ label: 'grad norm', values: steps.map((s) => s.gradNorm) }]));
    const keys = [...new Set(steps.flatMap((s) => Object.keys(s.metrics ?? {})))].sort();
    const phases = keys.filter((k) => k.endsWith('Seconds'));
    for (const k of keys.filter((k) => !k.endsWith('Seconds'))) {
      charts.push(lineChart(k, xs, [{ label: k, values: steps.map((s) => s.metrics?.[k] ?? null) }]));
    }
    if (phases.length > 0) {
      charts.push(lineChart('time per phase (s)', xs, phases.map((k) => ({ label: k.replace(/Seconds$/, ''), values: steps.map((s) => s.metrics?.[k] ?? null) }))));
    }
  }
  const vals = history.validations;
  if (vals.length > 0) {
    const xs = vals.map((v) => v.step);
    charts.push(lineChart('validation loss', xs, [{ label: 'validation loss', values: vals.map((v) => v.loss) }]));
    for (const k of [...new Set(vals.flatMap((v) => Object.keys(v.metrics ?? {})))].sort()) {
      charts.push(lineChart(`validation ${k}`, xs, [{ label: k, values: vals.map((v) => v.metrics?.[k] ?? null) }]));
    }
  }
  const evals = history.evaluations;
  if (evals.length > 0) {
    const xs = evals.map((e) => e.step);
    for (const k of [...new Set(evals.flatMap((e) => Object.keys(e.metrics ?? {})))].sort()) {
      charts.push(lineChart(`held-out ${k}`, xs, [{ label: k, values: evals.map((e) => e.metrics?.[k] ?? null) }], { xLabel: 'iteration' }));
    }
  }
  return charts;
}
