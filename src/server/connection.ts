import type { Socket } from 'node:net';
import type { ServerContext } from './context.js';
import { OUTPUT_HARD_CAP, OUTPUT_SOFT_CAP, OutputBuffer } from './output.js';
import { ValueReservation } from './partial-values.js';
import { replyBatch } from './reply-batch.js';
import { BinaryProtocol } from '../protocol/binary.js';
import type { Protocol } from '../protocol/protocol.js';
import type { CloseReason } from '../observe/log-stream.js';
import { SaslAuthenticator } from '../protocol/sasl.js';
import { TextProtocol } from '../protocol/text.js';
import { endpointText, writeMetadumpLine } from '../protocol/stats-text.js';
import type { CrawlerClient, ItemDump } from '../store/store.js';

/** A get line may grow this long before the connection is dropped (memcached lets it grow unbounded). */
const MAX_PENDING_LINE = 16 * 1024 * 1024;
/** Complete commands a client may pipeline ahead of its -R turns before reading from it pauses. */
const MAX_INPUT_BACKLOG = 4 * 1024 * 1024;
/** After its last reply is sent, how long a closing connection waits for the client to hang up. */
const LINGER_MS = 2000;
/** A leftover shorter than this is copied so that it does not pin the whole read buffer. */
const SMALL_LEFTOVER = 16 * 1024;

/**
 * One client socket: collects bytes until the protocol can use them, runs the
 * complete commands (at most -R of them before giving other connections a turn),
 * and writes all of their replies at once, together with the replies of the
 * other connections that ran in the same turn of the event loop (reply-batch.ts).
 */
export class Connection {
  private readonly out = new OutputBuffer();
  /** Room held in the server-wide budget for the data block this connection waits for. */
  private readonly reservation: ValueReservation;
  /** Chosen from the first byte received, as memcached does (0x80: binary). */
  private protocol: Protocol | null = null;
  /** Bytes received but not consumed yet, in arrival order. */
  private parts: Buffer[] = [];
  private buffered = 0;
  /** How many buffered bytes the protocol needs before it can make progress (0: any). */
  private wanted = 0;
  /** Commands are waiting for the client to read replies, or for their turn. */
  private waiting = false;
  /** The client sent FIN (shutdown(SHUT_WR)): once what it sent is run and answered, the connection closes. */
  private inputEnded = false;
  private closed = false;
  /** Running its commands now (what `stats conns` shows a client asking for it). */
  private executing = false;
  /** After `watch`: the socket carries log lines; nothing more is read from it. */
  private watching = false;
  /** Why it closed, for the log stream's conn_close line. */
  private closeReason: CloseReason = 'normal';
  /** Replies held until the disk has the writes they acknowledge (--sync always), in order. */
  private held: Promise<void> | null = null;
  /** The durability generation when the current batch began. */
  private generationAtBatch = 0;
  /** In replyBatch, to be flushed with the other replies of this turn of the event loop. */
  private flushDue = false;
  /** The text protocol, while `lru_crawler metadump` may stream to this connection. */
  private text: TextProtocol | null = null;
  /** A metadump waits for the client to read: called once the socket drains. */
  private dumpResume: (() => void) | null = null;
  /** Clock second of the last bytes received, for -o idle_timeout. */
  lastActive: number;
  readonly openedAt: number;

  constructor(
    private readonly socket: Socket,
    private readonly ctx: ServerContext,
    readonly id: number,
  ) {
    this.lastActive = ctx.clock.now;
    this.openedAt = ctx.clock.now;
    this.reservation = new ValueReservation(ctx.partialValues);
    socket.setNoDelay(true);
    // A client that shuts down its sending side still reads: Node must not end ours for it (see onEnd).
    // Set here rather than on the listeners, so that a TLS socket that ends before its handshake closes at once.
    socket.allowHalfOpen = true;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.onDrain());
    socket.on('error', (error) => ctx.log.debug({ err: error, remote: socket.remoteAddress }, 'connection error'));
    socket.on('close', () => this.onClose());
    socket.on('end', () => this.onEnd());
    if (ctx.logStream.connEvents) ctx.logStream.connNew(this.remoteHost, socket.remotePort ?? 0, this.transport, id);
  }

  /** memcached's transport names in the log stream. */
  private get transport(): 'local' | 'tcp' {
    return this.socket.remotePort === undefined ? 'local' : 'tcp';
  }

  private get remoteHost(): string {
    return this.socket.remoteAddress ?? '';
  }

  /** "addr:port" of the client, or the socket path for a unix socket. */
  get peer(): string {
    const socket = this.socket;
    if (socket.remoteAddress === undefined) return socket.localAddress ?? 'unix';
    return `${socket.remoteAddress}:${socket.remotePort}`;
  }

  /** The client's address as `stats conns` shows it. */
  get addr(): string {
    const socket = this.socket;
    if (socket.remotePort === undefined) return endpointText('unix', this.ctx.config.unixSocket ?? undefined, undefined);
    return endpointText('tcp', socket.remoteAddress, socket.remotePort);
  }

  /** The address the client connected to, as `stats conns` shows it. */
  get listenAddr(): string {
    const socket = this.socket;
    if (socket.localPort === undefined) return endpointText('unix', this.ctx.config.unixSocket ?? undefined, undefined);
    return endpointText('tcp', socket.localAddress, socket.localPort);
  }

  /** Bytes received and not yet consumed. */
  get readBytes(): number {
    return this.buffered;
  }

  /** Bytes of replies not yet written to the client. */
  get unsentBytes(): number {
    return this.socket.writableLength + this.out.pendingBytes;
  }

  /** Nothing buffered and nothing being written: what idle_timeout may close. */
  get isIdle(): boolean {
    // A watcher sends nothing by design: it belongs to the log stream, not to idle_timeout; a metadump is a reply under way.
    return this.buffered === 0 && this.socket.writableLength === 0 && !this.watching && !(this.text?.dumping ?? false);
  }

  /** memcached's connection state names, for `stats conns`. */
  get state(): string {
    if (this.executing) return 'conn_parse_cmd';
    if (this.socket.writableLength > 0) return 'conn_mwrite';
    if (this.buffered > 0) return 'conn_nread';
    return 'conn_waiting';
  }

  destroy(reason: CloseReason = 'shutdown'): void {
    this.closeReason = reason;
    this.closed = true;
    this.socket.destroy();
  }

  /** Reads nothing more, writes what is queued, then closes (graceful shutdown). */
  finish(): void {
    this.closeReason = 'shutdown';
    if (!this.closed) this.close();
  }

  private onData(chunk: Buffer): void {
    if (this.closed || this.watching) return;
    this.ctx.counters.bytes_read += chunk.length;
    this.lastActive = this.ctx.clock.now;
    this.parts.push(chunk);
    this.buffered += chunk.length;
    this.protocol ??= this.chooseProtocol(chunk[0]!);
    if (this.waiting || this.buffered < this.wanted) return;
    this.run();
  }

  private chooseProtocol(firstByte: number): Protocol {
    const { config, saslPasswords } = this.ctx;
    const binary = config.protocol === 'binary' || (config.protocol === 'auto' && firstByte === 0x80);
    const protocol = binary
      ? new BinaryProtocol(this.ctx, this.out, saslPasswords === null ? null : new SaslAuthenticator(saslPasswords), config.reqsPerEvent, this.reservation)
      : new TextProtocol(this.ctx, this.out, config.reqsPerEvent, this.reservation);
    protocol.connectionId = this.id;
    if (protocol instanceof TextProtocol) {
      protocol.metadumpClient = new MetadumpStream(this, this.out);
      this.text = protocol;
    }
    return protocol;
  }

  /** Runs what the buffered input allows, writes the replies, and decides what comes next. */
  private run(): void {
    this.waiting = false;
    const protocol = this.protocol;
    if (this.closed) return;
    if (this.buffered === 0 || protocol === null) {
      if (this.inputEnded) this.close();
      return;
    }
    const input = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.buffered);
    // Replies held back from an earlier run (see below) belong to the batch that began then.
    if (this.out.isEmpty) this.generationAtBatch = this.ctx.durability?.generation ?? 0;
    this.executing = true;
    const consumed = protocol.execute(input, 0, input.length);
    this.executing = false;
    const left = input.length - consumed;
    if (left === 0) {
      this.parts = [];
    } else {
      const rest = input.subarray(consumed);
      this.parts = [left < SMALL_LEFTOVER && input.length > 4 * SMALL_LEFTOVER ? Buffer.from(rest) : rest];
    }
    this.buffered = left;
    this.wanted = protocol.wanted > 0 ? protocol.wanted - consumed : 0;
    // Only an unterminated line is too long: a yield (-R) leaves complete commands behind.
    if (this.wanted === 0 && left > MAX_PENDING_LINE && !protocol.yielded) protocol.closing = true;

    // memcached answers a refused data block only once it has swallowed it: a client
    // that never sends the rest gets no reply, as from memcached.
    if (protocol.swallowing === 0 && !this.flushDue && !this.out.isEmpty) {
      this.flushDue = true;
      replyBatch.add(this);
    }
    if (protocol.closing) {
      if (protocol.closedOnError) this.closeReason = 'error';
      this.close();
      return;
    }
    if (this.text !== null && this.text.dumping) {
      // `lru_crawler metadump`: the crawler writes from now on; commands after it wait for its END,
      // and nothing more is read meanwhile (memcached takes the connection off its event loop).
      this.flush();
      this.waiting = true;
      this.socket.pause();
      return;
    }
    if (protocol.watchKinds !== 0) {
      // `watch`: OK is written; from now on the socket carries log lines and input is ignored.
      this.flush();
      this.watching = true;
      this.parts = [];
      this.buffered = 0;
      this.ctx.logStream.add(this.socket, protocol.watchKinds);
      // Reading on (and dropping) is how a watcher's hang-up is noticed.
      this.socket.resume();
      return;
    }
    if (this.unsentBytes > OUTPUT_HARD_CAP) {
      this.ctx.log.debug({ peer: this.peer }, 'closing a connection that does not read its replies');
      this.destroy('error');
      return;
    }
    if (this.unsentBytes > OUTPUT_SOFT_CAP) {
      // The client is behind: stop reading and running its commands until it drains.
      this.waiting = true;
      this.socket.pause();
    } else if (protocol.yielded) {
      // -R: commands are left over; let other connections run first, and stop
      // reading from a client that pipelines far ahead until it is caught up.
      this.waiting = true;
      this.ctx.counters.conn_yields++;
      if (left > MAX_INPUT_BACKLOG) this.socket.pause();
      else if (this.socket.isPaused()) this.socket.resume();
      setImmediate(() => this.run());
    } else if (this.socket.isPaused()) {
      this.socket.resume();
    }
    // Every complete command the client sent before its FIN has run; an unfinished one never will.
    if (this.inputEnded && !this.waiting) this.close();
  }

  /**
   * The client will send nothing more, but may still read (a half-close, as
   * `nc -N` does): its commands still waiting for their turn run first, and
   * close() writes every reply owed, those waiting for the disk too, before the
   * server closes its side.
   */
  private onEnd(): void {
    this.inputEnded = true;
    if (!this.waiting && !this.closed) this.close();
  }

  private onDrain(): void {
    const resume = this.dumpResume;
    if (resume !== null) {
      this.dumpResume = null;
      resume();
      return;
    }
    if (!this.waiting || this.closed) return;
    this.socket.resume();
    this.run();
  }

  /**
   * Writes every reply that is ready. Under --sync always, a batch that wrote to
   * the store is answered only once the disk has it; one promise covers the whole
   * batch, and later batches queue behind it so replies stay in order.
   */
  flush(): void {
    this.flushDue = false;
    // Destroyed while its replies waited for the batch: nobody reads them.
    if (this.socket.destroyed) return;
    const pieces = this.out.take();
    if (pieces.length === 0) return;
    const durability = this.ctx.durability;
    const mustWait = durability !== null && durability.mustWait && durability.generation !== this.generationAtBatch;
    if (!mustWait && this.held === null) {
      this.write(pieces);
      // All of it went to the kernel at once (the usual case): the chunk can take the next batch.
      if (this.socket.writableLength === 0) this.out.reuseChunk();
      return;
    }
    const before = this.held ?? Promise.resolve();
    const chain: Promise<void> = Promise.all([before, mustWait ? durability.durable() : true]).then(([, durable]) => {
      // A write of this batch may not be on disk: no reply may claim it is, so the client sees the connection fail.
      if (!durable) this.socket.destroy();
      if (!this.socket.destroyed) this.write(pieces);
      if (this.held === chain) this.held = null;
    });
    this.held = chain;
  }

  private write(pieces: Buffer[]): void {
    let written = 0;
    for (const piece of pieces) written += piece.length;
    this.ctx.counters.bytes_written += written;
    if (pieces.length === 1) {
      this.socket.write(pieces[0]!);
      return;
    }
    this.socket.cork();
    for (const piece of pieces) this.socket.write(piece);
    this.socket.uncork();
  }

  /** A metadump's batch is written: false (the crawler waits for `resume`) while the client is behind. */
  dumpFlushed(resume: () => void): boolean {
    this.flush();
    if (this.socket.writableLength <= OUTPUT_SOFT_CAP) return true;
    this.dumpResume = resume;
    return false;
  }

  /** The client of a metadump has gone (the crawler stops). */
  get dumpGone(): boolean {
    return this.closed || this.socket.destroyed;
  }

  /** A metadump's END is queued: send it, and run the commands that came after the metadump. */
  dumpEnded(): void {
    this.dumpResume = null;
    if (this.text !== null) this.text.dumping = false;
    if (this.closed) return;
    this.flush();
    this.socket.resume();
    this.run();
  }

  /** Stops reading and closes once queued replies (held ones too) are written. */
  private close(): void {
    this.flush();
    this.closed = true;
    this.parts = [];
    this.reservation.release();
    const end = (): void => {
      // Keep reading (and dropping) what the client still sends: closing with unread
      // input makes the kernel reset the connection and drop replies still in flight.
      this.socket.resume();
      this.socket.end();
      this.socket.once('finish', () => setTimeout(() => this.socket.destroy(), LINGER_MS).unref());
    };
    if (this.held === null) end();
    else void this.held.then(end);
  }

  private onClose(): void {
    this.closed = true;
    // A metadump waiting for this client to read hears that it has gone, and stops.
    const resume = this.dumpResume;
    this.dumpResume = null;
    if (resume !== null) resume();
    this.reservation.release();
    this.ctx.counters.curr_connections--;
    const log = this.ctx.logStream;
    if (log.connEvents) log.connClose(this.remoteHost, this.socket.remotePort ?? 0, this.transport, this.closeReason, this.id);
  }
}

const METADUMP_END = Buffer.from('END\r\n', 'latin1');

/** The crawler's way to a connection that asked for `lru_crawler metadump`. */
class MetadumpStream implements CrawlerClient {
  constructor(
    private readonly connection: Connection,
    private readonly out: OutputBuffer,
  ) {}

  item(item: ItemDump): void {
    writeMetadumpLine(this.out, item);
  }

  flush(resume: () => void): boolean {
    return this.connection.dumpFlushed(resume);
  }

  get gone(): boolean {
    return this.connection.dumpGone;
  }

  end(): void {
    if (!this.connection.dumpGone) this.out.bytes(METADUMP_END);
    this.connection.dumpEnded();
  }
}
