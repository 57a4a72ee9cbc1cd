/**
 * Collects the replies produced from one read into as few Buffers as possible,
 * so a whole batch goes out in one socket write.
 *
 * Small pieces are copied into a shared chunk; values of LARGE_VALUE bytes or
 * more are queued by reference (stored values are immutable, so this is safe).
 * Replies held for durability (--sync always) wait in the connection, not here.
 */
const CHUNK_SIZE = 64 * 1024;
/**
 * Replies a client has not read yet. Past the soft cap a connection stops
 * running commands and reading until its socket drains; past the hard cap (one
 * reply too big to hold back while the client does not read) it is closed.
 */
export const OUTPUT_SOFT_CAP = 4 * 1024 * 1024;
export const OUTPUT_HARD_CAP = 256 * 1024 * 1024;
const LARGE_VALUE = 8 * 1024;

export class OutputBuffer {
  private chunk: Buffer = Buffer.allocUnsafeSlow(CHUNK_SIZE);
  /** Start of the bytes in chunk not yet handed out. */
  private start = 0;
  private pos = 0;
  private readonly queue: Buffer[] = [];
  /** Bytes queued and not yet taken. */
  private queuedBytes = 0;

  /**
   * When set, receives each response as soon as it ends (UDP frames every
   * response on its own, as memcached does); streams leave it unset and batch.
   */
  constructor(private readonly onResponse: ((pieces: Buffer[], keepEmpty: boolean) => void) | null = null) {}

  /**
   * Marks the end of one response. keepEmpty: the response exists even with no
   * bytes (the missed first key of a multi-get, which memcached frames empty).
   */
  endResponse(keepEmpty = false): void {
    if (this.onResponse !== null) this.onResponse(this.take(), keepEmpty);
  }

  get isEmpty(): boolean {
    return this.pos === this.start && this.queue.length === 0;
  }

  /** How many bytes of replies are waiting to be taken. */
  get pendingBytes(): number {
    return this.queuedBytes + this.pos - this.start;
  }

  /** Copies a short literal (a reply line or part of one). */
  bytes(src: Buffer): void {
    this.ensure(src.length);
    this.pos += src.copy(this.chunk, this.pos);
  }

  /** Copies src[start, end), e.g. a key straight from the request. */
  slice(src: Buffer, start: number, end: number): void {
    this.ensure(end - start);
    this.pos += src.copy(this.chunk, this.pos, start, end);
  }

  /** Writes an ASCII string: numbers and fixed words, never values. */
  ascii(text: string): void {
    this.ensure(text.length);
    this.pos += this.chunk.write(text, this.pos, 'latin1');
  }

  /** Writes a stored value, by reference when it is large. */
  value(src: Buffer): void {
    if (src.length < LARGE_VALUE) {
      this.bytes(src);
      return;
    }
    this.cut();
    this.queue.push(src);
    this.queuedBytes += src.length;
  }

  /** Everything queued, in order; empty when there is nothing. */
  take(): Buffer[] {
    this.cut();
    const ready = this.queue.splice(0, this.queue.length);
    this.queuedBytes = 0;
    return ready;
  }

  /** Drops every reply queued and not yet taken (memcached culls stacked responses so). */
  discard(): void {
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.start = this.pos;
  }

  /** Ends the current piece of the chunk so that what follows queues after it. */
  private cut(): void {
    if (this.pos > this.start) {
      this.queue.push(this.chunk.subarray(this.start, this.pos));
      this.queuedBytes += this.pos - this.start;
      this.start = this.pos;
    }
  }

  private ensure(length: number): void {
    if (this.chunk.length - this.pos >= length) return;
    this.cut();
    this.chunk = Buffer.allocUnsafeSlow(Math.max(CHUNK_SIZE, length));
    this.start = 0;
    this.pos = 0;
  }
}
