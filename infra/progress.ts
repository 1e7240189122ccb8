/** Terminal progress bars and small text plots shared by the CLI-facing scripts. */
import cliProgress from 'cli-progress';

export function progressBar(label: string, total: number): cliProgress.SingleBar {
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} {bar} {value}/{total} | loss {loss} | {tps} tok/s | ETA {eta_formatted}`,
      hideCursor: true,
      noTTYOutput: !process.stdout.isTTY, // CI logs still get periodic lines
      notTTYSchedule: 5000,
      etaBuffer: 20,
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
  const cols = Math.min(width, values.length);
  const means = Array.from({ length: cols }, (_, c) => {
    const from = Math.floor((c * values.length) / cols), to = Math.floor(((c + 1) * values.length) / cols);
    const slice = values.slice(from, Math.max(to, from + 1));
    return slice.reduce((a, b) => a + b, 0) / slice.length;
  });
  const lo = Math.min(...means), hi = Math.max(...means);
  return means.map((v) => BARS[hi === lo ? 0 : Math.round(((v - lo) / (hi - lo)) * (BARS.length - 1))]).join('');
}
