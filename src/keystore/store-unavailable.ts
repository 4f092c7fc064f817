/**
 * The store could not be reached, or lost its connection mid-operation: the
 * operation did not happen (or, for a commit cut off, happened entirely or
 * not at all), and trying again later may succeed. Answered as 503 KMS.0104
 * (gRPC/Connect: Unavailable), never as an internal error.
 *
 * The message names what failed (e.g. "connect ECONNREFUSED 127.0.0.1:5432")
 * but never the connection URL, which may hold a password.
 */
export class StoreUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(`the key store is unavailable: ${message}`, options);
    this.name = "StoreUnavailableError";
  }
}
