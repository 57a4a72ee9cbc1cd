/**
 * Collects the replies produced from one read into as few Buffers as possible,
 * so a whole batch goes out in one socket write.
 *
 * Small pieces, stored values under SHARED_VALUE bytes included, are copied
 * into a chunk the buffer owns; larger values are queued as the store's copy of
 * the value (ItemView.copyValue: a Buffer of its own, which many replies of an
 * unchanged item share). Never a reference to an item's memory: it would be
 * corrupted if the item's chunk were freed and reused (an overwrite, a delete,
 * an eviction) before the socket wrote it. A chunk is written front to back,
 * and taken up from its start again only once the socket has written all of
 * it (reuseChunk), so the pieces handed out by take() stay intact until then.
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
/** Copies up to this long are done in a loop (see slice). */
const SHORT_COPY = 64;
/**
 * Values from this size on are queued as a copy the store may share between
 * replies (1,000 slow clients asking for one 256 KiB value hold one copy, not
 * 1,000), rather than copied into the chunk.
 */
const SHARED_VALUE = 8 * 1024;

/** A stored value that copies itself into the output (store.ts's ItemView is one). */
export interface ValueSource {
  readonly valueLength: number;
  /** Copies the value into target at offset; returns the offset after it. */
  copyValueTo(target: Buffer, offset: number): number;
  /** A copy of the value nobody writes to, so that it may be queued. */
  copyValue(): Buffer;
}

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

  /** Copies src: a reply line or part of one, a stats body. */
  bytes(src: Buffer): void {
    this.slice(src, 0, src.length);
  }

  /** Writes one byte (a space between numbers). */
  byte(value: number): void {
    this.ensure(1);
    this.chunk[this.pos++] = value;
  }

  /** Copies src[start, end), e.g. a key straight from the request. */
  slice(src: Buffer, start: number, end: number): void {
    const length = end - start;
    this.ensure(length);
    if (length > SHORT_COPY) {
      this.pos += src.copy(this.chunk, this.pos, start, end);
      return;
    }
    // Reply words and short keys: a loop costs less than Buffer.copy, which checks
    // its arguments and makes a Uint8Array view of src for a part of it (measured
    // on Node 20: ~65 ns a call whatever the length; this loop passes that at ~60 bytes).
    const chunk = this.chunk;
    let pos = this.pos;
    let i = start;
    for (const last = end - 3; i < last; i += 4, pos += 4) {
      chunk[pos] = src[i]!;
      chunk[pos + 1] = src[i + 1]!;
      chunk[pos + 2] = src[i + 2]!;
      chunk[pos + 3] = src[i + 3]!;
    }
    for (; i < end; i++) chunk[pos++] = src[i]!;
    this.pos = pos;
  }

  /** Writes an ASCII string: numbers and fixed words, never values. */
  ascii(text: string): void {
    this.ensure(text.length);
    this.pos += this.chunk.write(text, this.pos, 'latin1');
  }

  /**
   * Writes a number as ASCII digits, with a '-' when negative: flags, lengths,
   * CAS values, TTLs (no string is made for it). Exact for safe integers.
   */
  decimal(n: number): void {
    if (!Number.isSafeInteger(n)) {
      this.ascii(String(n));
      return;
    }
    this.ensure(17);
    const chunk = this.chunk;
    let pos = this.pos;
    if (n < 0) {
      chunk[pos++] = 0x2d;
      n = -n;
    }
    let digits = 1;
    for (let rest = n; rest >= 10; rest = Math.floor(rest / 10)) digits++;
    pos += digits;
    this.pos = pos;
    do {
      const quotient = Math.floor(n / 10);
      chunk[--pos] = 0x30 + (n - quotient * 10);
      n = quotient;
    } while (n > 0);
  }

  /** An unsigned 64-bit number (incr/decr results) as ASCII digits. */
  decimal64(n: bigint): void {
    if (n <= 0x1fffffffffffffn) this.decimal(Number(n));
    else this.ascii(n.toString());
  }

  /** Writes a stored value: copied into the chunk, or a large one queued as the store's copy (see the top of this file). */
  storedValue(source: ValueSource): void {
    const length = source.valueLength;
    if (length >= SHARED_VALUE) {
      this.cut();
      this.queue.push(source.copyValue());
      this.queuedBytes += length;
      return;
    }
    this.ensure(length);
    this.pos = source.copyValueTo(this.chunk, this.pos);
  }

  /** Everything queued, in order; empty when there is nothing. */
  take(): Buffer[] {
    this.cut();
    const ready = this.queue.splice(0, this.queue.length);
    this.queuedBytes = 0;
    return ready;
  }

  /**
   * Writes from the start of the current chunk again. Only for a caller that
   * knows nothing holds the pieces take() handed out: the socket wrote them all
   * (its writableLength came back to 0). Saves a new chunk, and its first-touch
   * page faults, every 64 KiB of replies.
   */
  reuseChunk(): void {
    if (this.pos === this.start && this.queue.length === 0) {
      this.start = 0;
      this.pos = 0;
    }
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
    if (this.chunk.length - this.pos < length) this.grow(length);
  }

  /** Starts a new chunk with room for at least `length` bytes; the old one's pieces stay queued. */
  private grow(length: number): void {
    this.cut();
    this.chunk = Buffer.allocUnsafeSlow(Math.max(CHUNK_SIZE, length));
    this.start = 0;
    this.pos = 0;
  }
}
