/** What a connection needs from a wire protocol (text or binary). */
export interface Protocol {
  /** Bytes from the start of the last execute() buffer needed before it can go on (0: unknown). */
  wanted: number;
  /** The connection must close once queued replies are written. */
  closing: boolean;
  /** execute() stopped with complete commands left (-R, or replies piling up). */
  yielded: boolean;
  /** The connection closes because of what the client sent (the log stream's reason=error). */
  closedOnError: boolean;
  /** Set by `watch`: the log kinds (LogKind bits) the connection now receives instead of replies. */
  watchKinds: number;
  /** The connection's number, as `stats conns` and the log stream show it. */
  connectionId: number;
  /** Runs the complete commands in buf[start, end); returns the offset of the first byte not consumed. */
  execute(buf: Buffer, start: number, end: number): number;
}
