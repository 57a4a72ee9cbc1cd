import type { Socket } from 'node:net';
import type { ServerContext } from './context.js';
import { OutputBuffer } from './output.js';
import { TextProtocol } from './protocol/text.js';

/** A get line may grow this long before the connection is dropped (memcached lets it grow unbounded). */
const MAX_PENDING_LINE = 16 * 1024 * 1024;
/** A leftover shorter than this is copied so that it does not pin the whole read buffer. */
const SMALL_LEFTOVER = 16 * 1024;

/**
 * One client socket: collects bytes until the protocol can use them, runs every
 * complete command in a read, and writes all of their replies at once.
 */
export class Connection {
  private readonly out = new OutputBuffer();
  private readonly protocol: TextProtocol;
  /** Bytes received but not consumed yet, in arrival order. */
  private parts: Buffer[] = [];
  private buffered = 0;
  /** How many buffered bytes the protocol needs before it can make progress (0: any). */
  private wanted = 0;
  private closed = false;

  constructor(
    private readonly socket: Socket,
    private readonly ctx: ServerContext,
  ) {
    this.protocol = new TextProtocol(ctx, this.out);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.socket.resume());
    socket.on('error', (error) => ctx.log.debug({ err: error, remote: socket.remoteAddress }, 'connection error'));
    socket.on('close', () => this.onClose());
    socket.on('end', () => this.socket.end());
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.ctx.counters.bytes_read += chunk.length;
    this.parts.push(chunk);
    this.buffered += chunk.length;
    if (this.buffered < this.wanted) return;

    const input = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.buffered);
    const consumed = this.protocol.execute(input, 0, input.length);
    const left = input.length - consumed;
    if (left === 0) {
      this.parts = [];
    } else {
      const rest = input.subarray(consumed);
      this.parts = [left < SMALL_LEFTOVER && input.length > 4 * SMALL_LEFTOVER ? Buffer.from(rest) : rest];
    }
    this.buffered = left;
    this.wanted = this.protocol.wanted > 0 ? this.protocol.wanted - consumed : 0;
    if (this.wanted === 0 && left > MAX_PENDING_LINE) this.protocol.closing = true;

    this.flush();
    if (this.protocol.closing) this.close();
  }

  /** Writes every reply that is ready, as one write (writev when there are several pieces). */
  private flush(): void {
    const pieces = this.out.take();
    if (pieces.length === 0) return;
    let written = 0;
    for (const piece of pieces) written += piece.length;
    this.ctx.counters.bytes_written += written;
    let flowing: boolean;
    if (pieces.length === 1) {
      flowing = this.socket.write(pieces[0]!);
    } else {
      this.socket.cork();
      for (const piece of pieces) this.socket.write(piece);
      this.socket.uncork();
      flowing = this.socket.writableLength === 0 || !this.socket.writableNeedDrain;
    }
    // A client that does not read its replies stops being read from until it catches up.
    if (!flowing) this.socket.pause();
  }

  /** Stops reading and closes once queued replies are written. */
  private close(): void {
    this.closed = true;
    this.parts = [];
    this.socket.end();
    this.socket.once('finish', () => this.socket.destroy());
  }

  private onClose(): void {
    this.closed = true;
    this.ctx.counters.curr_connections--;
  }
}
