/**
 * Failure classification for Temporal: bad data, bad config, corrupt checkpoints, shape errors
 * and NaN losses cannot be fixed by retrying, so they become non-retryable ApplicationFailures
 * that keep their type name and message; everything else (a lost worker, a transient store
 * error) stays retryable.
 */
import { ApplicationFailure, CancelledFailure } from '@temporalio/activity';

const NON_RETRYABLE = new Set([
  'DataError', 'ConfigError', 'NonFiniteLossError', 'CheckpointError', 'CheckpointCorruptError',
  'ShapeError', 'DTypeError', 'IndexError', 'TokenizerError', 'ChatTemplateError', 'ConversationFormatError', 'PromptTooLongError',
  'NotARewardModelError', 'ExportError', 'RecordCodecError', 'TokenDatasetCorruptError',
]);

export function classify(err: unknown): unknown {
  // A cancellation the workflow asked for is reported as one.
  if (err instanceof ApplicationFailure || err instanceof CancelledFailure || !(err instanceof Error)) return err;
  const retryable = (err as { retryable?: boolean }).retryable;
  if (NON_RETRYABLE.has(err.name) || retryable === false) {
    return ApplicationFailure.create({ message: err.message, type: err.name, nonRetryable: true, cause: err });
  }
  return ApplicationFailure.create({ message: err.message, type: err.name, nonRetryable: false, cause: err });
}

/** Wrap every function of an activities object with `classify`. */
export function classified<T extends Record<string, (...args: never[]) => Promise<unknown>>>(acts: T): T {
  return Object.fromEntries(Object.entries(acts).map(([name, fn]) => [name, async (...args: never[]) => {
    try {
      return await fn(...args);
    } catch (err) {
      throw classify(err);
    }
  }])) as T;
}
