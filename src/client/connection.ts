/**
 * One TCP connection to one server, with any number of requests pipelined on it:
 * requests are written as they come (those issued in the same tick go out in one
 * write) and replies are matched to them in order.
 *
 * A timeout or a broken stream closes the connection and fails every request on it,
 * as twemproxy and libmemcached do: once a reply is late, the replies after it can no
 * longer be matched to their requests.
 */
import { connect, type Socket } from 'node:net';
import { ConnectionError, ServerError, TimeoutError } from './errors.js';
import { Fifo } from './fifo.js';
import { ProtocolError, ReplyReader, ReplyState, type ReplyKind } from './reply-reader.js';

export interface Endpoint {
  readonly host: string;
  readonly port: number;
  /** How errors name the server: "host:port". */
  readonly address: string;
}

export interface ConnectionEvents {
  /** The connection could not be opened, or broke with requests in flight. Called at most once. */
  onFailure(error: Error): void;
  /** A complete reply arrived: the server is healthy. */
  onReply(): void;
  /** The connection is closed for good (after onFailure, if that was called). */
  onClose(): void;
}

/**
 * Runs check after the event loop has polled for I/O once more. Timers run before
 * the poll, so a timer that fires after the process was busy for a while would
 * otherwise judge a connect or a reply that is already waiting in the socket.
 */
function afterPendingIo(check: () => void): void {
  setImmediate(check);
}

/** Requests issued in one tick up to this many bytes go out as one buffer. */
const COALESCE_LIMIT = 256 * 1024;

interface Pending {
  readonly state: ReplyState;
  readonly deadline: number;
  readonly timeoutMs: number;
  resolve(state: ReplyState): void;
  reject(error: Error): void;
}

export class Connection {
  private readonly socket: Socket;
  private readonly pending = new Fifo<Pending>();
  private readonly reader = new ReplyReader();
  private outbox: Buffer[] = [];
  private flushScheduled = false;
  private connected = false;
  private closing = false;
  private connectTimer: NodeJS.Timeout | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private deadlineTimerAt = Infinity;
  closed = false;

  constructor(
    private readonly endpoint: Endpoint,
    connectTimeoutMs: number,
    private readonly events: ConnectionEvents,
  ) {
    this.socket = connect({ host: endpoint.host, port: endpoint.port });
    this.socket.setNoDelay(true);
    this.connectTimer = setTimeout(
      () =>
        afterPendingIo(() => {
          if (!this.connected) this.fail(new ConnectionError(`connect timed out after ${connectTimeoutMs} ms`, endpoint.address));
        }),
      connectTimeoutMs,
    );
    this.socket.once('connect', () => {
      clearTimeout(this.connectTimer);
      this.connected = true;
    });
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (error) => this.fail(new ConnectionError(error.message, endpoint.address, { cause: error })));
    this.socket.on('close', () => this.fail(new ConnectionError('connection closed', endpoint.address)));
  }

  /** Requests written and not yet answered. */
  get inFlight(): number {
    return this.pending.length;
  }

  /**
   * Queues a request; resolves with its parsed reply, or rejects with a ServerError
   * when the server answered ERROR, CLIENT_ERROR or SERVER_ERROR.
   */
  send(bytes: Buffer, kind: ReplyKind, timeoutMs: number): Promise<ReplyState> {
    if (this.closed || this.closing) return Promise.reject(new ConnectionError('connection closed', this.endpoint.address));
    return new Promise<ReplyState>((resolve, reject) => {
      const deadline = Date.now() + timeoutMs;
      this.pending.push({ state: new ReplyState(kind), deadline, timeoutMs, resolve, reject });
      this.outbox.push(bytes);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        queueMicrotask(() => this.flush());
      }
      if (deadline < this.deadlineTimerAt) this.armDeadlineTimer(deadline);
    });
  }

  /** Ends the connection once the requests on it are answered. */
  close(): void {
    if (this.closed || this.closing) return;
    this.closing = true;
    if (this.pending.length === 0) this.socket.end();
  }

  /** Closes at once, failing whatever is in flight. */
  destroy(): void {
    this.fail(new ConnectionError('connection closed by the client', this.endpoint.address), false);
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.closed) return;
    const out = this.outbox;
    this.outbox = [];
    if (out.length === 1) {
      this.socket.write(out[0]!);
      return;
    }
    // Small requests are copied into one write (one syscall, one write request);
    // large values keep their own buffers.
    let total = 0;
    for (const bytes of out) total += bytes.length;
    if (total <= COALESCE_LIMIT) {
      this.socket.write(Buffer.concat(out, total));
      return;
    }
    this.socket.cork();
    for (const bytes of out) this.socket.write(bytes);
    this.socket.uncork();
  }

  private onData(chunk: Buffer): void {
    this.reader.push(chunk);
    if (!this.reader.ready) return;
    for (let head = this.pending.peek(); head !== undefined; head = this.pending.peek()) {
      let complete: boolean;
      try {
        complete = this.reader.read(head.state);
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        this.fail(new ConnectionError(`protocol error: ${error.message}`, this.endpoint.address));
        return;
      }
      if (!complete) return;
      this.pending.shift();
      this.events.onReply();
      const errorLine = head.state.errorLine;
      if (errorLine === undefined) head.resolve(head.state);
      else head.reject(new ServerError(errorLine, this.endpoint.address));
    }
    if (!this.reader.empty) {
      this.fail(new ConnectionError('reply with no request waiting for it', this.endpoint.address));
      return;
    }
    if (this.closing) this.socket.end();
  }

  private armDeadlineTimer(at: number): void {
    clearTimeout(this.deadlineTimer);
    this.deadlineTimerAt = at;
    this.deadlineTimer = setTimeout(() => afterPendingIo(() => this.onDeadline()), Math.max(0, at - Date.now()));
  }

  /** Fires at the earliest deadline seen; the requests that met theirs are gone by then. */
  private onDeadline(): void {
    this.deadlineTimerAt = Infinity;
    const now = Date.now();
    let next = Infinity;
    for (const request of this.pending) {
      if (request.deadline <= now) {
        const timeout = new TimeoutError(this.endpoint.address, request.timeoutMs);
        this.fail(new ConnectionError(`closed after a request timed out (${request.timeoutMs} ms)`, this.endpoint.address), true, { request, timeout });
        return;
      }
      if (request.deadline < next) next = request.deadline;
    }
    if (next !== Infinity) this.armDeadlineTimer(next);
  }

  /**
   * Closes the connection and fails what is in flight (a request that timed out gets
   * its TimeoutError, the others the connection error); counts as a server failure
   * when it should.
   */
  private fail(error: Error, countsAsFailure = true, late?: { request: Pending; timeout: TimeoutError }): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.connectTimer);
    clearTimeout(this.deadlineTimer);
    this.socket.destroy();
    const stranded = this.pending.drain();
    // A server that closes an idle connection is not failing; one that drops requests, or
    // cannot be reached, is (twemproxy counts one failure per broken server connection).
    const failed = stranded.length > 0 || (!this.connected && !this.closing);
    if (failed && countsAsFailure) this.events.onFailure(late?.timeout ?? error);
    for (const request of stranded) request.reject(request === late?.request ? late.timeout : error);
    this.events.onClose();
  }
}
