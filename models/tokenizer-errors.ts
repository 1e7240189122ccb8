/**
 * Typed errors of the tokenizer and chat layer. They are data/config errors: an activity that
 * catches one should fail non-retryably, because running it again cannot fix the file or record.
 */
import { AlignerError } from '../kernels/errors.js';

/** A tokenizer folder or file that is missing, unreadable or malformed; an unknown token or id. */
export class TokenizerError extends AlignerError {}

/** A chat template that fails to render, or that renders a conversation inconsistently. */
export class ChatTemplateError extends AlignerError {}

/** A dataset record that is neither a NeMo-Aligner `conversations` record nor TRL `messages`. */
export class ConversationFormatError extends AlignerError {}

/** A prompt that does not fit in `maxLength` tokens (prompts are never truncated). */
export class PromptTooLongError extends AlignerError {}
