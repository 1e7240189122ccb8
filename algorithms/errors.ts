/**
 * Data and configuration errors: the run cannot succeed by retrying, so activities surface them
 * as non-retryable failures that name the cause (file and line, key, field).
 */
import { AlignerError } from '../kernels/errors.js';

/** Bad training data: the message names the file and the line. */
export class DataError extends AlignerError {
  constructor(message: string, readonly file: string | null = null, readonly line: number | null = null) {
    super(message);
  }
}

/** A config value out of range or of the wrong type: the message names the field. */
export class ConfigError extends AlignerError {}

/** A loss that became NaN or infinite: the message names the step. */
export class NonFiniteLossError extends AlignerError {}
