/**
 * Connecting to a Temporal server with an error that says where it tried. The SDK's own message
 * for a server that is down ("Failed to connect before the deadline") names no address.
 */
import { Connection } from '@temporalio/client';

/** The Temporal server could not be reached. Retryable: the server may come back. */
export class TemporalUnavailableError extends Error {
  override name = 'TemporalUnavailableError';
  readonly retryable = true;
  constructor(
    readonly address: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface ConnectOptions {
  /** How long to wait for the server to answer (default 5 s). */
  timeoutMs?: number;
}

/** The address tests and tools use: TEMPORAL_ADDRESS, else the dev stack's default port. */
export function defaultTemporalAddress(): string {
  return process.env.TEMPORAL_ADDRESS || '127.0.0.1:7233';
}

/**
 * A client Connection to `address` (host:port), verified with one round trip. Throws a
 * TemporalUnavailableError naming the address when the server does not answer in time.
 */
export async function connectTemporal(address = defaultTemporalAddress(), opts: ConnectOptions = {}): Promise<Connection> {
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const conn = Connection.lazy({ address, connectTimeout: timeoutMs });
  try {
    await conn.ensureConnected();
    return conn;
  } catch (e) {
    await conn.close().catch(() => {}); // otherwise gRPC keeps reconnecting in the background
    throw new TemporalUnavailableError(
      address,
      `cannot reach the Temporal server at ${address} within ${timeoutMs / 1000} s ` +
        `(${(e as Error).message}); is it running? Start one with: npm run stack`,
      { cause: e },
    );
  }
}
