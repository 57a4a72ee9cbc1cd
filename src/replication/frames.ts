/**
 * The replication wire format: length-prefixed frames over TCP,
 * [u32 length of what follows][u8 type][body]. Data frames are batched into a few
 * buffers per write; large values go out by reference, not copied.
 */

export const T_ITEM = 1;
export const T_TOMB = 2;
export const T_FLUSH = 3;
export const T_SNAPSHOT_BEGIN = 4;
export const T_SNAPSHOT_END = 5;
export const T_HEARTBEAT = 6;
export const T_ACK = 7;
/** A new expiry for the value of a given version (protocol version 2). */
export const T_TOUCH = 8;
export const T_HELLO = 10;
export const T_CHALLENGE = 11;
export const T_AUTH = 12;
export const T_WELCOME = 13;
export const T_SUBSCRIBE = 14;
export const T_REFUSED = 15;
/** Anti-entropy (see anti-entropy.ts): root digest, bucket digests, (key, version) lists, keys wanted. */
export const T_AE_DIGEST = 20;
export const T_AE_BUCKETS = 21;
export const T_AE_KEYS = 22;
export const T_AE_WANT = 23;

/**
 * In HELLO; a publisher refuses a subscriber of another version with a REFUSED frame
 * naming both, which the subscriber logs. 2 added T_TOUCH: a version 1 node would drop
 * the link at the first touch, so the two do not connect at all.
 */
export const PROTOCOL_VERSION = 2;
/** Largest frame accepted once the peer is authenticated: a 1 GB item (-I's maximum) and its header. */
export const MAX_FRAME = 1024 * 1024 * 1024 + 4096;
/** Largest frame accepted before then (HELLO, CHALLENGE, AUTH are small), so a stranger cannot make us buffer much. */
export const MAX_FRAME_UNAUTHENTICATED = 4096;
/** Values at least this long are sent by reference instead of copied into the batch. */
const BY_REFERENCE = 16 * 1024;
const CHUNK = 64 * 1024;

/** ITEM body: seq, hlc, node, flags, exptime, binaryKey, keyLength, key, value. */
export const ITEM_FIXED = 8 + 8 + 4 + 4 + 8 + 1 + 1;
/** TOMB body: seq, hlc, node, keyLength, key. */
export const TOMB_FIXED = 8 + 8 + 4 + 1;
/** TOUCH body: seq, hlc, node, base hlc, base node, exptime, keyLength, key. */
export const TOUCH_FIXED = 8 + 8 + 4 + 8 + 4 + 8 + 1;
/** FLUSH body: seq, hlc, node, at. */
export const FLUSH_FIXED = 8 + 8 + 4 + 8;

/** Builds a batch of frames: small ones copied together, large values referenced. */
export class FrameWriter {
  private buf = Buffer.allocUnsafe(CHUNK);
  private used = 0;
  private pieces: Buffer[] = [];
  /** Bytes in the batch so far. */
  size = 0;

  private room(bytes: number): void {
    if (this.used + bytes <= this.buf.length) return;
    if (this.used > 0) this.pieces.push(this.buf.subarray(0, this.used));
    this.buf = Buffer.allocUnsafe(Math.max(CHUNK, bytes));
    this.used = 0;
  }

  item(seq: number, hlc: number, node: number, flags: number, exptime: number, binaryKey: boolean, key: string, value: Buffer): void {
    const keyLength = key.length;
    const big = value.length >= BY_REFERENCE;
    const header = 5 + ITEM_FIXED + keyLength;
    this.room(header + (big ? 0 : value.length));
    const b = this.buf;
    let o = this.used;
    o = b.writeUInt32BE(1 + ITEM_FIXED + keyLength + value.length, o);
    b[o++] = T_ITEM;
    o = b.writeDoubleBE(seq, o);
    o = b.writeDoubleBE(hlc, o);
    o = b.writeUInt32BE(node, o);
    o = b.writeUInt32BE(flags >>> 0, o);
    o = b.writeDoubleBE(exptime, o);
    b[o++] = binaryKey ? 1 : 0;
    b[o++] = keyLength;
    o += b.write(key, o, 'latin1');
    if (big) {
      // The frames batched before this one, this one's header, then its value by reference.
      this.pieces.push(b.subarray(0, o), value);
      this.buf = b.subarray(o);
      this.used = 0;
    } else {
      o += value.copy(b, o);
      this.used = o;
    }
    this.size += header + value.length;
  }

  tomb(seq: number, hlc: number, node: number, key: string): void {
    const length = 5 + TOMB_FIXED + key.length;
    this.room(length);
    const b = this.buf;
    let o = b.writeUInt32BE(length - 4, this.used);
    b[o++] = T_TOMB;
    o = b.writeDoubleBE(seq, o);
    o = b.writeDoubleBE(hlc, o);
    o = b.writeUInt32BE(node, o);
    b[o++] = key.length;
    o += b.write(key, o, 'latin1');
    this.used = o;
    this.size += length;
  }

  touch(seq: number, hlc: number, node: number, baseHlc: number, baseNode: number, exptime: number, key: string): void {
    const length = 5 + TOUCH_FIXED + key.length;
    this.room(length);
    const b = this.buf;
    let o = b.writeUInt32BE(length - 4, this.used);
    b[o++] = T_TOUCH;
    o = b.writeDoubleBE(seq, o);
    o = b.writeDoubleBE(hlc, o);
    o = b.writeUInt32BE(node, o);
    o = b.writeDoubleBE(baseHlc, o);
    o = b.writeUInt32BE(baseNode >>> 0, o);
    o = b.writeDoubleBE(exptime, o);
    b[o++] = key.length;
    o += b.write(key, o, 'latin1');
    this.used = o;
    this.size += length;
  }

  flush(seq: number, hlc: number, node: number, at: number): void {
    const length = 5 + FLUSH_FIXED;
    this.room(length);
    const b = this.buf;
    let o = b.writeUInt32BE(length - 4, this.used);
    b[o++] = T_FLUSH;
    o = b.writeDoubleBE(seq, o);
    o = b.writeDoubleBE(hlc, o);
    o = b.writeUInt32BE(node, o);
    o = b.writeDoubleBE(at, o);
    this.used = o;
    this.size += length;
  }

  /** A control frame with a body of numbers (f64 each), then optional raw bytes. */
  control(type: number, numbers: readonly number[], tail: Buffer | null = null): void {
    const length = 5 + numbers.length * 8 + (tail?.length ?? 0);
    this.room(length);
    const b = this.buf;
    let o = b.writeUInt32BE(length - 4, this.used);
    b[o++] = type;
    for (const n of numbers) o = b.writeDoubleBE(n, o);
    if (tail !== null) o += tail.copy(b, o);
    this.used = o;
    this.size += length;
  }

  /** The batch, as pieces to write in order; the writer starts a new batch. */
  take(): Buffer[] {
    if (this.used > 0) {
      this.pieces.push(this.buf.subarray(0, this.used));
      this.buf = this.buf.subarray(this.used);
      if (this.buf.length < 1024) this.buf = Buffer.allocUnsafe(CHUNK);
      this.used = 0;
    }
    const pieces = this.pieces;
    this.pieces = [];
    this.size = 0;
    return pieces;
  }
}

/**
 * Splits received bytes into frames. After next() returns a type, the body is
 * buf[start, end) and stays valid until the next push(). A frame longer than
 * limit is an error: small until the peer has authenticated, MAX_FRAME after.
 */
export class FrameReader {
  private parts: Buffer[] = [];
  /** Bytes in parts. */
  private buffered = 0;
  private data: Buffer = Buffer.alloc(0);
  private offset = 0;
  buf: Buffer = Buffer.alloc(0);
  start = 0;
  end = 0;

  constructor(public limit = MAX_FRAME) {}

  push(chunk: Buffer): void {
    if (this.offset < this.data.length) {
      const rest = this.data.subarray(this.offset);
      this.parts.unshift(rest);
      this.buffered += rest.length;
    } else if (this.parts.length === 0) {
      this.data = chunk;
      this.offset = 0;
      return;
    }
    this.parts.push(chunk);
    this.buffered += chunk.length;
    this.data = Buffer.alloc(0);
    this.offset = 0;
  }

  /** The next frame's type, or -1 when a whole frame has not arrived yet. Throws on a bad frame. */
  next(): number {
    if (this.parts.length > 0) {
      // Join parts only once a whole frame is there.
      if (this.buffered < 4) return -1;
      const first = this.parts[0]!;
      const length = first.length >= 4 ? first.readUInt32BE(0) : Buffer.concat(this.parts, 4).readUInt32BE(0);
      if (length < 1 || length > this.limit) throw new Error(`bad frame length ${length}`);
      if (this.buffered < 4 + length) return -1;
      this.data = Buffer.concat(this.parts, this.buffered);
      this.offset = 0;
      this.parts = [];
      this.buffered = 0;
    }
    const data = this.data;
    const left = data.length - this.offset;
    if (left < 4) return this.keepRest();
    const length = data.readUInt32BE(this.offset);
    if (length < 1 || length > this.limit) throw new Error(`bad frame length ${length}`);
    if (left < 4 + length) return this.keepRest();
    this.buf = data;
    this.start = this.offset + 5;
    this.end = this.offset + 4 + length;
    this.offset = this.end;
    return data[this.start - 1]!;
  }

  private keepRest(): number {
    if (this.offset < this.data.length) {
      this.parts = [this.data.subarray(this.offset)];
      this.buffered = this.parts[0]!.length;
    }
    this.data = Buffer.alloc(0);
    this.offset = 0;
    return -1;
  }
}
