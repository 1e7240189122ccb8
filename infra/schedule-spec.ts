/**
 * The two ways `align schedule create` says when to run: `--every 6h` (a Temporal interval) or
 * `--cron "0 *\/6 * * *"` (a Temporal cron expression). Both are checked here, before anything
 * reaches the server, so that a typo is a usage error that names the field and the value instead
 * of a schedule that never fires or fires every minute.
 *
 * What Temporal itself accepts (server `service/worker/scheduler/calendar.go`, `parseCronString`):
 * 5 fields (minute hour day-of-month month day-of-week), 6 fields where the sixth is the YEAR, 7
 * fields (second … year), the macros @yearly @annually @monthly @weekly @daily @midnight @hourly,
 * `@every <duration>`, and a `TZ=`/`CRON_TZ=` prefix. Values may be `*`, lists, ranges, `x/step`
 * and `a-b/step`; month names and day names match by prefix; day-of-week 7 is Sunday as well as 0.
 *
 * We accept only the 5-field form and the macros. A 6-field expression is refused rather than
 * passed on because the common 6-field convention (robfig/cron with seconds, Quartz) puts
 * SECONDS first, which Temporal would silently read as minute…year: `0 *\/5 * * * *`, meant as
 * "every 5 minutes", would run at minute 0 of every fifth hour. Intervals go through `--every`,
 * time zones through the schedule's own setting, so `@every` and `TZ=` are refused with that hint.
 *
 * Unlike Vixie cron, Temporal matches a time only when day-of-month AND day-of-week both match
 * (Vixie cron fires when either does, if both are restricted): `0 0 1 * MON` means "Mondays that
 * are the 1st". We pass such expressions on unchanged; `describeSpec` does not rephrase them.
 */
import { AlignerError } from '../kernels/errors.js';

/** A bad `--every` or `--cron` value: the message names the field and the value, and says what to write. */
export class ScheduleSpecError extends AlignerError {}

export interface Every {
  /** The interval in milliseconds (a whole number of seconds, at least 1 s). */
  ms: number;
  /** The canonical spelling, largest units first: "90m" becomes "1h30m". */
  text: string;
}

export type ScheduleSpec = ({ kind: 'every' } & Every) | { kind: 'cron'; expr: string };

const UNIT_MS: Record<string, number> = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1_000 };
const UNIT_ORDER = ['d', 'h', 'm', 's'];

/** Parse `30s`, `90m`, `6h`, `1d`, `1h30m`, `1d12h`: whole numbers, units d h m s, largest first. */
export function parseEvery(text: string): Every {
  const raw = text.trim();
  const bad = (why: string): never => {
    throw new ScheduleSpecError(`invalid interval "${text}": ${why}`);
  };
  if (raw === '') bad('give a duration such as 6h, 90m or 30s');
  if (/^\d+(\.\d+)?$/.test(raw)) bad('say the unit: 6h, 90m, 30s');
  const tokens = [...raw.matchAll(/(\d+(?:\.\d+)?)([a-zA-Z]*)/g)];
  if (tokens.map((t) => t[0]).join('') !== raw) {
    bad('expected whole numbers with units d, h, m, s, largest first, e.g. 1h30m');
  }
  let ms = 0;
  let last = -1;
  for (const [, num, unit] of tokens) {
    if (num.includes('.')) bad('use whole numbers, e.g. 1h30m rather than 1.5h');
    if (unit === '') bad(`"${num}" has no unit: say 6h, 90m or 30s`);
    const order = UNIT_ORDER.indexOf(unit);
    // M (month?) and ms are easy to mean and easy to misread: only the four units are accepted.
    if (order < 0) bad(`unknown unit "${unit}": use d, h, m or s`);
    if (order <= last) bad('give each unit once, largest first, e.g. 1d12h or 1h30m');
    last = order;
    ms += Number(num) * UNIT_MS[unit];
  }
  if (!Number.isSafeInteger(ms)) bad('too long');
  if (ms < 1_000) bad('the shortest interval is 1s');
  return { ms, text: formatEvery(ms) };
}

/** Milliseconds as `1d12h`, `1h30m`, `45s` (a remainder below one second as `ms`). */
export function formatEvery(ms: number): string {
  if (!Number.isSafeInteger(ms) || ms <= 0) throw new ScheduleSpecError(`invalid interval ${ms} ms: expected a positive whole number of milliseconds`);
  let rest = ms;
  let out = '';
  for (const unit of UNIT_ORDER) {
    const n = Math.floor(rest / UNIT_MS[unit]);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * UNIT_MS[unit];
  }
  return rest > 0 ? `${out}${rest}ms` : out;
}

const MACROS = ['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly'];
const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const DAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

interface CronField {
  name: string;
  min: number;
  max: number;
  /** Names for the values min, min+1, …; matched case-insensitively, written back in upper case. */
  names?: readonly string[];
  namesHint?: string;
}

const FIELDS: readonly CronField[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day-of-month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: MONTHS, namesHint: 'a month name (JAN-DEC)' },
  // 7 is Sunday too, as in Temporal and Vixie cron.
  { name: 'day-of-week', min: 0, max: 7, names: DAYS, namesHint: 'a day name (SUN-SAT)' },
];

/**
 * Validate a 5-field cron expression or a macro; returns it normalised (single spaces, numbers
 * without leading zeros, names and macros in their canonical case).
 */
export function checkCron(expr: string): string {
  const bad = (why: string): never => {
    throw new ScheduleSpecError(`invalid cron expression "${expr}": ${why}`);
  };
  const trimmed = expr.trim();
  if (trimmed === '') bad('it is empty; give 5 fields (minute hour day-of-month month day-of-week), e.g. "0 */6 * * *"');
  if (/^(CRON_)?TZ=/i.test(trimmed)) bad('time-zone prefixes are not accepted here; set the schedule\'s time zone instead (the default is UTC)');
  if (trimmed.startsWith('@')) {
    const macro = trimmed.toLowerCase();
    if (macro === '@every' || macro.startsWith('@every ')) bad('for a fixed interval use --every (e.g. --every 6h) instead of @every');
    if (!MACROS.includes(macro)) bad(`unknown macro; use one of ${MACROS.join(' ')}`);
    return macro;
  }
  const parts = trimmed.split(/\s+/);
  if (parts.length === 6) {
    bad('6 fields given; give 5 (minute hour day-of-month month day-of-week). Temporal reads a sixth field as the year, not as seconds');
  }
  if (parts.length !== 5) bad(`${parts.length} field${parts.length === 1 ? '' : 's'} given; give 5 (minute hour day-of-month month day-of-week)`);
  return parts.map((p, i) => checkField(p, FIELDS[i], bad)).join(' ');
}

function checkField(text: string, f: CronField, bad: (why: string) => never): string {
  const items = text.split(',');
  return items
    .map((item) => {
      if (item === '') bad(`${f.name} "${text}" has an empty list item`);
      const slash = item.split('/');
      if (slash.length > 2) bad(`${f.name} "${item}" has more than one "/"`);
      const [base, stepText] = slash;
      let step = '';
      if (stepText !== undefined) {
        if (!/^\d+$/.test(stepText)) bad(`${f.name} step "${stepText}" is not a whole number`);
        const n = Number(stepText);
        // A step as wide as the field picks a single value: `*/90` minutes is a wish for --every 90m.
        const span = f.max - f.min;
        if (n < 1 || n > span) {
          bad(`${f.name} step ${n} is out of range 1-${span}${f.name === 'minute' || f.name === 'hour' ? ' (for a longer period use --every, e.g. --every 90m)' : ''}`);
        }
        step = `/${n}`;
      }
      if (base === '*') return `*${step}`;
      if (base === '') bad(`${f.name} "${item}" has nothing before "/"`);
      const dash = base.split('-');
      if (dash.length > 2) bad(`${f.name} "${base}" has more than one "-"`);
      if (dash.length === 2) {
        if (dash[0] === '' || dash[1] === '') bad(`${f.name} range "${base}" is missing an end`);
        const [a, b] = dash.map((v) => parseValue(v, f, bad));
        if (b.value < a.value) bad(`${f.name} range "${base}" ends before it starts`);
        return `${a.text}-${b.text}${step}`;
      }
      return `${parseValue(base, f, bad).text}${step}`;
    })
    .join(',');
}

function parseValue(text: string, f: CronField, bad: (why: string) => never): { value: number; text: string } {
  if (/^\d+$/.test(text)) {
    const value = Number(text);
    if (value < f.min || value > f.max) bad(`${f.name} ${value} is out of range ${f.min}-${f.max}`);
    return { value, text: String(value) };
  }
  if (f.names) {
    const i = f.names.indexOf(text.toUpperCase());
    if (i >= 0) return { value: f.min + i, text: f.names[i] };
  }
  if (text === '?') bad(`${f.name} "?" is not supported; use *`);
  return bad(`${f.name} "${text}" is not a number${f.namesHint ? ` or ${f.namesHint}` : ''}`);
}

/** Exactly one of `--every` and `--cron`, checked. */
export function scheduleSpec(opts: { every?: string; cron?: string }): ScheduleSpec {
  const hasEvery = opts.every !== undefined;
  const hasCron = opts.cron !== undefined;
  if (hasEvery === hasCron) {
    throw new ScheduleSpecError(hasEvery ? 'give --every or --cron, not both' : 'say when to run: --every 6h or --cron "0 */6 * * *"');
  }
  return hasEvery ? { kind: 'every', ...parseEvery(opts.every!) } : { kind: 'cron', expr: checkCron(opts.cron!) };
}

/** One line for listings: "every 6h", "cron 0 *\/6 * * *". */
export function describeSpec(spec: ScheduleSpec): string {
  return spec.kind === 'every' ? `every ${spec.text}` : `cron ${spec.expr}`;
}

/** The matching part of a Temporal `ScheduleSpec` (client `schedule.create({ spec })`); intervals in ms. */
export function temporalSpec(spec: ScheduleSpec): { intervals: { every: number }[] } | { cronExpressions: string[] } {
  return spec.kind === 'every' ? { intervals: [{ every: spec.ms }] } : { cronExpressions: [spec.expr] };
}
