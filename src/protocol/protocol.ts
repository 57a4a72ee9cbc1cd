/** What a connection needs from a wire protocol (text or binary). */
export interface Protocol {
  /** Bytes from the start of the last execute() buffer needed before it can go on (0: unknown). */
  wanted: number;
  /** The connection must close once queued replies are written. */
  closing: boolean;
  /** execute() stopped with complete commands left (-R, or replies piling up). */
  yielded: boolean;
  /**
   * Bytes of a refused data block still to be dropped as they arrive. As in
   * memcached (conn_swallow), the refusal is answered once they are dropped.
   */
  readonly swallowing: number;
  /** The connection closes because of what the client sent (the log stream's reason=error). */
  closedOnError: boolean;
  /** Set by `watch`: the log kinds (LogKind bits) the connection now receives instead of replies. */
  watchKinds: number;
  /** The connection's number, as `stats conns` and the log stream show it. */
  connectionId: number;
  /** Runs the complete commands in buf[start, end); returns the offset of the first byte not consumed. */
  execute(buf: Buffer, start: number, end: number): number;
}
