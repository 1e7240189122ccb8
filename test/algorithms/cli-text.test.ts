/**
 * The CLI's numbers, times and text plots (infra/progress.ts). Lives under test/algorithms so that
 * the pure project runs it: test/infra is the integration project, whose setup starts servers.
 */
import { describe, expect, it } from 'vitest';
import { formatUsage } from '../../infra/cli/format.js';
import type { Progress } from '../../activities/types.js';
import { formatEta, formatNumber, lineChart, sparklineWithRange } from '../../infra/progress.js';

describe('CLI text', () => {
  it('numbers: decimals at or above 1, significant digits below it (a small loss never reads 0)', () => {
    expect(formatNumber(2.9381234)).toBe('2.9381');
    expect(formatNumber(123.456, 2)).toBe('123.46');
    expect(formatNumber(0.000012346)).toBe('0.00001235');
    expect(formatNumber(1.5e-9)).toBe('1.5e-9');
    expect(formatNumber(0)).toBe('0');
    expect(formatNumber(-0.25)).toBe('-0.25');
    expect(formatNumber(null)).toBe('-');
    expect(formatNumber(Number.NaN)).toBe('NaN');
  });

  it('ETA: hours and minutes, minutes and seconds, seconds; "-" while unknown', () => {
    expect(formatEta(3725)).toBe('1h 02m');
    expect(formatEta(185)).toBe('3m 05s');
    expect(formatEta(12.4)).toBe('12s');
    for (const unknown of ['INF', 'NULL', Number.NaN, Infinity, -1]) expect(formatEta(unknown)).toBe('-');
  });

  it('a sparkline says the range it is scaled to; a chart puts the high at the top and the low at the bottom', () => {
    expect(sparklineWithRange([0.001, 0.002, 0.003])).toBe('▁▅█ [0.001 … 0.003]');
    expect(sparklineWithRange([])).toBe('');
    const chart = lineChart([4, 3, 2, 1], { height: 4, xLabel: 'step 1 … 4' });
    expect(chart).toEqual([
      '  4 ┤•   ',
      '2.5 ┤ •  ',
      '    ┤  • ',
      '  1 ┤   •',
      '    └────',
      '     step 1 … 4',
    ]);
    // A jump of several rows is joined by a vertical stroke.
    expect(lineChart([1, 5], { height: 5 }).slice(0, 5).map((l) => l.slice(-2))).toEqual([' •', ' │', ' │', ' │', '• ']);
  });

  it('usage: device-hours, the biggest phases by share, tokens and the cost', () => {
    const usage = { wallSeconds: 90, deviceSeconds: 90, tokens: 12345, phases: { training: { wallSeconds: 72, deviceSeconds: 72 }, checkpointing: { wallSeconds: 18, deviceSeconds: 18 } } };
    const p = { usage, cost: { amount: 0.0625, currency: 'USD', perDeviceHour: 2.5 } } as unknown as Progress;
    expect(formatUsage(p)).toBe('0.025 device-hours (training 80%, checkpointing 20%), 12,345 tokens; cost 0.0625 USD at 2.5/device-hour');
    expect(formatUsage({ ...p, cost: null })).toBe('0.025 device-hours (training 80%, checkpointing 20%), 12,345 tokens');
  });
});
