/**
 * `align`, the command-line client of Aligner runs (bin/align runs this file with tsx):
 *
 *   align run sft --config sft.yaml --set trainer.lr=3e-4
 *
 * Errors are one line on stderr, never a stack trace (ALIGN_DEBUG=1 adds it), and the exit code
 * says whose problem it is: 2 bad input, 3 the Temporal server is unreachable, 1 anything else
 * (or a run that failed while we followed it). See `align --help`.
 */
import { CommanderError } from 'commander';
import { errorKind, type ErrorKind } from '../runs.js';
import { buildProgram, type CliContext } from './program.js';

const EXIT: Record<ErrorKind, number> = { usage: 2, 'not-found': 2, conflict: 2, unavailable: 3, internal: 1 };

/** Multi-line messages (a ConfigError lists one field per line) as one line. */
export function oneLine(msg: string): string {
  return msg
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .reduce((acc, l) => (acc === '' ? l : `${acc}${acc.endsWith(':') ? ' ' : '; '}${l}`), '');
}

export async function main(argv: string[]): Promise<number> {
  const ctx: CliContext = { exitCode: 0, json: argv.includes('--json') };
  try {
    await buildProgram(ctx).parseAsync(argv);
    return ctx.exitCode;
  } catch (e) {
    // commander has printed its message already; --help and --version end here with 0.
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    const kind = errorKind(e);
    const err = e instanceof Error ? e : new Error(String(e));
    const message = oneLine(err.message);
    if (ctx.json) console.error(JSON.stringify({ error: { kind, type: err.name, message } }));
    else console.error(`align: ${kind === 'internal' ? `unexpected ${err.name}: ` : 'error: '}${message}`);
    if (process.env.ALIGN_DEBUG) console.error(err.stack);
    return EXIT[kind];
  } finally {
    await ctx.service?.close();
  }
}

process.exitCode = await main(process.argv);
// Anything left open (a gRPC channel closing) must not keep a finished command alive.
setTimeout(() => process.exit(), 2000).unref();
