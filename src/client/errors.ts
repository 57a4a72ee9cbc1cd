/**
 * What a request can fail with. Callers tell them apart by class: a ServerError is
 * the server's own answer (the connection is fine), the others mean the server could
 * not be reached or did not answer in time, and count towards ejecting it.
 */

/** The server answered ERROR, CLIENT_ERROR or SERVER_ERROR. */
export class ServerError extends Error {
  override readonly name = 'ServerError';
  constructor(
    /** The reply line as the server sent it, e.g. `SERVER_ERROR object too large for cache`. */
    readonly line: string,
    readonly server: string,
  ) {
    super(`${server}: ${line}`);
  }
}

/** The connection could not be opened, or broke while requests were in flight on it. */
export class ConnectionError extends Error {
  override readonly name = 'ConnectionError';
  constructor(message: string, readonly server: string, options?: { cause?: unknown }) {
    super(`${server}: ${message}`, options);
  }
}

/** No reply within the request's timeout; the connection it was on is closed. */
export class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
  constructor(readonly server: string, readonly timeoutMs: number) {
    super(`${server}: no reply within ${timeoutMs} ms`);
  }
}

/** Every server is ejected (or the client was closed), so the key has nowhere to go. */
export class NoServerError extends Error {
  override readonly name = 'NoServerError';
}

/** Something the client refuses to send: a bad key, an option out of range. */
export class RequestError extends Error {
  override readonly name = 'RequestError';
}

/** A failure that says the server is unhealthy, as twemproxy counts towards server_failure_limit. */
export function isServerFailure(error: unknown): boolean {
  return error instanceof ConnectionError || error instanceof TimeoutError;
}
