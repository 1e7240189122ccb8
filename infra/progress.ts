/** Terminal progress bars, numbers and small text plots shared by the CLI-facing scripts. */
import cliProgress from 'cli-progress';

/** Seconds as `1h 02m`, `3m 05s` or `12s`; `-` while unknown (before the first step, or no progress). */
export function formatEta(seconds: unknown): string {
  const t = Number(seconds);
  if (!Number.isFinite(t) || t < 0) return '-';
  const s = Math.round(t);
  if (s >= 3600) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

/** cli-progress options every bar here shares: our time format (cli-progress prints "NFs" for an unknown ETA). */
export const BAR_DEFAULTS = { hideCursor: true, etaBuffer: 20, formatTime: (t: number) => formatEta(t) } satisfies cliProgress.Options;

export function progressBar(label: string, total: number): cliProgress.SingleBar {
  const bar = new cliProgress.SingleBar(
    {
      ...BAR_DEFAULTS,
      format: `${label} {bar} {value}/{total} | loss {loss} | {tps} tok/s | ETA {eta_formatted}`,
      noTTYOutput: !process.stdout.isTTY, // CI logs still get periodic lines
      notTTYSchedule: 5000,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { loss: '-', tps: '-' });
  return bar;
}

const BARS = '▁▂▃▄▅▆▇█';

/** A one-line plot of a series, resampled to `width` columns (mean per column). */
export function sparkline(values: readonly number[], width = 60): string {
  if (values.length === 0) return '';
  const means = resample(values, width);
  const lo = Math.min(...means), hi = Math.max(...means);
  return means.map((v) => BARS[hi === lo ? 0 : Math.round(((v - lo) / (hi - lo)) * (BARS.length - 1))]).join('');
}

/**
 * A number for people: `digits` decimals at or above 1 (trailing zeros dropped), `digits`
 * significant digits below it, so that a small loss reads 0.0001234 and never 0.
 */
export function formatNumber(x: number | null | undefined, digits = 4): string {
  if (x === null || x === undefined) return '-';
  if (!Number.isFinite(x)) return String(x);
  return Math.abs(x) >= 1 || x === 0 ? String(Number(x.toFixed(digits))) : String(Number(x.toPrecision(digits)));
}

/** Mean per column: `values` resampled to at most `width` points. */
function resample(values: readonly number[], width: number): number[] {
  const cols = Math.min(width, values.length);
  return Array.from({ length: cols }, (_, c) => {
    const from = Math.floor((c * values.length) / cols), to = Math.floor(((c + 1) * values.length) / cols);
    const slice = values.slice(from, Math.max(to, from + 1));
    return slice.reduce((a, b) => a + b, 0) / slice.length;
  });
}

/** A sparkline followed by the range it is scaled to, so that a flat series is not read as noise. */
export function sparklineWithRange(values: readonly number[], width = 60): string {
  if (values.length === 0) return '';
  const means = resample(values, width);
  return `${sparkline(values, width)} [${formatNumber(Math.min(...means))} … ${formatNumber(Math.max(...means))}]`;
}

/**
 * A multi-line plot of a series: `height` rows, at most `width` columns (mean per column), the
 * y axis labelled at the top, middle and bottom; `xLabel` names the x range under it.
 */
export function lineChart(values: readonly number[], o: { height?: number; width?: number; xLabel?: string } = {}): string[] {
  if (values.length === 0) return [];
  const height = o.height ?? 8;
  const means = resample(values, o.width ?? 60);
  const lo = Math.min(...means), hi = Math.max(...means);
  const rowOf = (v: number) => (hi === lo ? 0 : Math.round(((v - lo) / (hi - lo)) * (height - 1)));
  const grid = Array.from({ length: height }, () => Array<string>(means.length).fill(' '));
  means.forEach((v, c) => {
    const r = rowOf(v);
    const prev = c > 0 ? rowOf(means[c - 1]) : r;
    // Join a step from the previous column with a vertical stroke.
    for (let k = Math.min(r, prev) + 1; k < Math.max(r, prev); k++) grid[k][c] = '│';
    grid[r][c] = '•';
  });
  const labels = [formatNumber(hi), formatNumber((hi + lo) / 2), formatNumber(lo)];
  const w = Math.max(...labels.map((l) => l.length));
  const lines = grid.reverse().map((row, i) => {
    const label = i === 0 ? labels[0] : i === height - 1 ? labels[2] : i === Math.floor((height - 1) / 2) ? labels[1] : '';
    return `${label.padStart(w)} ┤${row.join('')}`;
  });
  lines.push(`${' '.repeat(w)} └${'─'.repeat(means.length)}`);
  if (o.xLabel) lines.push(`${' '.repeat(w + 2)}${o.xLabel}`);
  return lines;
}
