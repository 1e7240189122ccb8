/**
 * The live view of an attached run: a progress bar on stderr (step/maxSteps, loss, tokens/s, ETA,
 * last validation, paused), or with --json one line of JSON on stdout per change. It also keeps
 * every step's loss it has seen (the progress query returns only recent steps), for the summary's
 * loss curve.
 */
import cliProgress from 'cli-progress';
import type { RunView } from '../runs.js';
import { BAR_DEFAULTS } from '../progress.js';
import { num } from './format.js';

export class LiveProgress {
  private bar: cliProgress.SingleBar | undefined;
  private readonly losses = new Map<number, number>();
  private lastEvent = '';

  constructor(private readonly json: boolean) {}

  update(v: RunView): void {
    const p = v.progress;
    if (p) for (const s of p.recent) this.losses.set(s.step, s.loss);
    if (this.json) return this.emit(v);
    if (!p) return;
    const val = p.lastValidation;
    const payload = {
      loss: num(p.lastLoss),
      tps: p.tokensPerSecond === null ? '-' : Math.round(p.tokensPerSecond).toString(),
      val: val ? (val.headline && val.headline.metric !== 'loss' ? `${val.headline.metric} ${num(val.headline.value, 3)}` : num(val.loss)) : '-',
      note: v.state !== 'RUNNING' ? ` | ${v.state.toLowerCase()}` : p.waiting ? ` | ${p.waiting}` : p.status !== 'training' ? ` | ${p.status}` : p.stage ? ` | ${p.stage}` : '',
    };
    if (!this.bar) {
      this.bar = new cliProgress.SingleBar(
        {
          ...BAR_DEFAULTS,
          format: `${p.recipe} {bar} {value}/{total} | loss {loss} | {tps} tok/s | ETA {eta_formatted} | val {val}{note}`,
          noTTYOutput: !process.stderr.isTTY, // logs still get a line every few seconds
          notTTYSchedule: 2000,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(p.maxSteps, p.step, payload);
    } else {
      this.bar.update(p.step, payload);
    }
  }

  /** One JSON line whenever the step or the state changes. */
  private emit(v: RunView): void {
    const p = v.progress;
    const key = `${v.state}/${p?.status}/${p?.step}`;
    if (key === this.lastEvent) return;
    this.lastEvent = key;
    console.log(JSON.stringify({
      event: 'progress', runId: v.runId, state: v.state, status: p?.status ?? null, step: p?.step ?? null, maxSteps: p?.maxSteps ?? null,
      loss: p?.lastLoss ?? null, tokensPerSecond: p?.tokensPerSecond ?? null, validation: p?.lastValidation ?? null,
    }));
  }

  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }

  /** Every loss seen, in step order. */
  lossSeries(): number[] {
    return [...this.losses].sort((a, b) => a[0] - b[0]).map(([, l]) => l);
  }
}
