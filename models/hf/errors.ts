/**
 * Typed errors of the checkpoint layer (safetensors files and Hugging Face model folders).
 * They are data errors: an activity that catches one should fail non-retryably, because reading
 * the same corrupt or mismatched file again cannot succeed. Every message names the file or
 * folder, so a failed workflow says which artifact to look at.
 */
import { AlignerError } from '../../kernels/errors.js';

/** A checkpoint file or folder that is missing, truncated, malformed, or does not fit the model. */
export class CheckpointError extends AlignerError {
  /** The file or folder the error is about, when there is one. */
  readonly path: string | undefined;

  constructor(message: string, path?: string) {
    super(message);
    this.path = path;
  }
}
