/**
 * `--every` and `--cron` for `align schedule create` (infra/schedule-spec.ts). Lives under
 * test/algorithms so that the pure project runs it: test/infra is the integration project, whose
 * setup starts a Temporal server this file does not need.
 */
import { describe, expect, it } from 'vitest';
import { thrownMessage } from '../helpers/errors.js';
import { AlignerError } from '../../kernels/errors.js';
import {
  ScheduleSpecError,
  checkCron,
  describeSpec,
  formatEvery,
  parseEvery,
  scheduleSpec,
  temporalSpec,
} from '../../infra/schedule-spec.js';

function message(fn: () => unknown): string {
  const text = thrownMessage(fn, ScheduleSpecError);
  expect(ScheduleSpecError.prototype).toBeInstanceOf(AlignerError);
  return text;
}

describe('parseEvery', () => {
  it('reads single and compound durations', () => {
    expect(parseEvery('30s')).toEqual({ ms: 30_000, text: '30s' });
    expect(parseEvery('90m')).toEqual({ ms: 5_400_000, text: '1h30m' });
    expect(parseEvery('6h')).toEqual({ ms: 21_600_000, text: '6h' });
    expect(parseEvery('1d')).toEqual({ ms: 86_400_000, text: '1d' });
    expect(parseEvery('1h30m')).toEqual({ ms: 5_400_000, text: '1h30m' });
    expect(parseEvery(' 1d12h ')).toEqual({ ms: 129_600_000, text: '1d12h' });
    expect(parseEvery('36h')).toEqual({ ms: 129_600_000, text: '1d12h' });
    expect(parseEvery('1s')).toEqual({ ms: 1_000, text: '1s' });
    expect(parseEvery('0h45s')).toEqual({ ms: 45_000, text: '45s' });
  });

  it('asks for the unit of a bare number', () => {
    expect(message(() => parseEvery('6'))).toBe('invalid interval "6": say the unit: 6h, 90m, 30s');
    expect(message(() => parseEvery('1h30'))).toBe('invalid interval "1h30": "30" has no unit: say 6h, 90m or 30s');
  });

  it('refuses other units, decimals, disorder, repeats and intervals under 1s', () => {
    expect(message(() => parseEvery(''))).toBe('invalid interval "": give a duration such as 6h, 90m or 30s');
    expect(message(() => parseEvery('2w'))).toBe('invalid interval "2w": unknown unit "w": use d, h, m or s');
    expect(message(() => parseEvery('500ms'))).toBe('invalid interval "500ms": unknown unit "ms": use d, h, m or s');
    expect(message(() => parseEvery('6H'))).toBe('invalid interval "6H": unknown unit "H": use d, h, m or s');
    expect(message(() => parseEvery('1.5h'))).toBe('invalid interval "1.5h": use whole numbers, e.g. 1h30m rather than 1.5h');
    expect(message(() => parseEvery('30m1h'))).toBe('invalid interval "30m1h": give each unit once, largest first, e.g. 1d12h or 1h30m');
    expect(message(() => parseEvery('1h1h'))).toBe('invalid interval "1h1h": give each unit once, largest first, e.g. 1d12h or 1h30m');
    expect(message(() => parseEvery('1h 30m'))).toBe('invalid interval "1h 30m": expected whole numbers with units d, h, m, s, largest first, e.g. 1h30m');
    expect(message(() => parseEvery('-5m'))).toBe('invalid interval "-5m": expected whole numbers with units d, h, m, s, largest first, e.g. 1h30m');
    expect(message(() => parseEvery('0s'))).toBe('invalid interval "0s": the shortest interval is 1s');
  });

  it('formats milliseconds largest unit first', () => {
    expect(formatEvery(93_784_000)).toBe('1d2h3m4s');
    expect(formatEvery(1_500)).toBe('1s500ms');
    expect(message(() => formatEvery(0))).toBe('invalid interval 0 ms: expected a positive whole number of milliseconds');
  });
});

describe('checkCron', () => {
  it('accepts the five fields with lists, ranges, steps and names, normalised', () => {
    expect(checkCron('0 */6 * * *')).toBe('0 */6 * * *');
    expect(checkCron('  */15   9-17 * * mon-fri ')).toBe('*/15 9-17 * * MON-FRI');
    expect(checkCron('0,30 1-5/2 1,15 jan,Jul sun')).toBe('0,30 1-5/2 1,15 JAN,JUL SUN');
    expect(checkCron('05 07 * DEC 7')).toBe('5 7 * DEC 7');
    expect(checkCron('5/10 0 31 * *')).toBe('5/10 0 31 * *');
    expect(checkCron('59 23 31 12 0-6')).toBe('59 23 31 12 0-6');
    expect(checkCron('0 0 1 JAN-MAR/1 *')).toBe('0 0 1 JAN-MAR/1 *');
  });

  it('accepts the macros Temporal expands', () => {
    for (const m of ['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly']) {
      expect(checkCron(m)).toBe(m);
    }
    expect(checkCron(' @Daily ')).toBe('@daily');
  });

  it('names the field and the value out of range', () => {
    expect(message(() => checkCron('61 * * * *'))).toBe('invalid cron expression "61 * * * *": minute 61 is out of range 0-59');
    expect(message(() => checkCron('0 24 * * *'))).toBe('invalid cron expression "0 24 * * *": hour 24 is out of range 0-23');
    expect(message(() => checkCron('0 0 0 * *'))).toBe('invalid cron expression "0 0 0 * *": day-of-month 0 is out of range 1-31');
    expect(message(() => checkCron('0 0 * 13 *'))).toBe('invalid cron expression "0 0 * 13 *": month 13 is out of range 1-12');
    expect(message(() => checkCron('0 0 * * 8'))).toBe('invalid cron expression "0 0 * * 8": day-of-week 8 is out of range 0-7');
    expect(message(() => checkCron('0 0 * * 1-9'))).toBe('invalid cron expression "0 0 * * 1-9": day-of-week 9 is out of range 0-7');
  });

  it('refuses malformed values, ranges and steps', () => {
    const m = (e: string) => message(() => checkCron(e)).replace(`invalid cron expression "${e}": `, '');
    expect(m('0 0 * * FOO')).toBe('day-of-week "FOO" is not a number or a day name (SUN-SAT)');
    expect(m('0 0 * JANUARY *')).toBe('month "JANUARY" is not a number or a month name (JAN-DEC)');
    expect(m('0 MON * * *')).toBe('hour "MON" is not a number');
    expect(m('0 0 ? * MON')).toBe('day-of-month "?" is not supported; use *');
    expect(m('0 0 L * *')).toBe('day-of-month "L" is not a number');
    expect(m('0 0 * * MON#2')).toBe('day-of-week "MON#2" is not a number or a day name (SUN-SAT)');
    expect(m('5-1 * * * *')).toBe('minute range "5-1" ends before it starts');
    expect(m('1- * * * *')).toBe('minute range "1-" is missing an end');
    expect(m('1-2-3 * * * *')).toBe('minute "1-2-3" has more than one "-"');
    expect(m('*/0 * * * *')).toBe('minute step 0 is out of range 1-59 (for a longer period use --every, e.g. --every 90m)');
    expect(m('*/90 * * * *')).toBe('minute step 90 is out of range 1-59 (for a longer period use --every, e.g. --every 90m)');
    expect(m('0 0 */40 * *')).toBe('day-of-month step 40 is out of range 1-30');
    expect(m('*/x * * * *')).toBe('minute step "x" is not a whole number');
    expect(m('*/2/3 * * * *')).toBe('minute "*/2/3" has more than one "/"');
    expect(m('/5 * * * *')).toBe('minute "/5" has nothing before "/"');
    expect(m('1,,2 * * * *')).toBe('minute "1,,2" has an empty list item');
    expect(m('+5 * * * *')).toBe('minute "+5" is not a number');
  });

  it('refuses the wrong number of fields, saying why six fields are not seconds', () => {
    expect(message(() => checkCron('0 */5 * * * *'))).toBe(
      'invalid cron expression "0 */5 * * * *": 6 fields given; give 5 (minute hour day-of-month month day-of-week). Temporal reads a sixth field as the year, not as seconds',
    );
    expect(message(() => checkCron('* * * *'))).toBe('invalid cron expression "* * * *": 4 fields given; give 5 (minute hour day-of-month month day-of-week)');
    expect(message(() => checkCron('0 0 0 * * * 2030'))).toBe('invalid cron expression "0 0 0 * * * 2030": 7 fields given; give 5 (minute hour day-of-month month day-of-week)');
    expect(message(() => checkCron(''))).toBe('invalid cron expression "": it is empty; give 5 fields (minute hour day-of-month month day-of-week), e.g. "0 */6 * * *"');
  });

  it('sends @every, unknown macros and time-zone prefixes elsewhere', () => {
    expect(message(() => checkCron('@every 1h'))).toBe('invalid cron expression "@every 1h": for a fixed interval use --every (e.g. --every 6h) instead of @every');
    expect(message(() => checkCron('@reboot'))).toBe(
      'invalid cron expression "@reboot": unknown macro; use one of @yearly @annually @monthly @weekly @daily @midnight @hourly',
    );
    expect(message(() => checkCron('CRON_TZ=Europe/Paris 0 9 * * *'))).toBe(
      'invalid cron expression "CRON_TZ=Europe/Paris 0 9 * * *": time-zone prefixes are not accepted here; set the schedule\'s time zone instead (the default is UTC)',
    );
  });
});

describe('scheduleSpec, describeSpec, temporalSpec', () => {
  it('builds either kind and describes it in one line', () => {
    const every = scheduleSpec({ every: '360m' });
    expect(every).toEqual({ kind: 'every', ms: 21_600_000, text: '6h' });
    expect(describeSpec(every)).toBe('every 6h');
    expect(temporalSpec(every)).toEqual({ intervals: [{ every: 21_600_000 }] });

    const cron = scheduleSpec({ cron: '0  */6 * * *' });
    expect(cron).toEqual({ kind: 'cron', expr: '0 */6 * * *' });
    expect(describeSpec(cron)).toBe('cron 0 */6 * * *');
    expect(temporalSpec(cron)).toEqual({ cronExpressions: ['0 */6 * * *'] });
  });

  it('wants exactly one of the two', () => {
    expect(message(() => scheduleSpec({}))).toBe('say when to run: --every 6h or --cron "0 */6 * * *"');
    expect(message(() => scheduleSpec({ every: '6h', cron: '@daily' }))).toBe('give --every or --cron, not both');
  });
});
