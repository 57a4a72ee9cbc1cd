/**
 * An independent oracle for how memcached 1.6.18 frames a byte stream: where each
 * command ends, how many bytes a storage command takes as its data block, and
 * when the server hangs up. The fuzzer feeds it exactly what it sends, so after
 * any garbage it knows what the server is waiting for, completes that with
 * filler, and can then demand a reply to a marker command on the same
 * connection. Written from memcached's rules (proto_text.c, proto_bin.c, util.c),
 * not from Mnemo's code, and checked against memcached itself by
 * `scripts/fuzz.ts --memcached`.
 */

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const KEY_MAX_LENGTH = 250;
const MAX_TOKENS = 24;
/** memcached closes a connection holding this much of a line that is not a get. */
const LONG_LINE = 2048;
const INT_MAX = 2147483647;
const U64 = 1n << 64n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

function isCSpace(byte: number): boolean {
  return byte === SP || (byte >= 0x09 && byte <= 0x0d);
}

/** strtoul/strtol on a NUL-terminated token: the sign, the magnitude, and whether it ended at a space or the end. */
function cScan(token: Buffer): { negative: boolean; magnitude: bigint } | null {
  let pos = 0;
  while (pos < token.length && isCSpace(token[pos]!)) pos++;
  let negative = false;
  if (pos < token.length && (token[pos] === 0x2b || token[pos] === 0x2d)) {
    negative = token[pos] === 0x2d;
    pos++;
  }
  const digits = pos;
  while (pos < token.length && token[pos]! >= 0x30 && token[pos]! <= 0x39) pos++;
  if (pos === digits) return null; // nothing converted: endptr == str
  if (pos < token.length && !isCSpace(token[pos]!)) return null;
  return { negative, magnitude: BigInt(token.toString('latin1', digits, pos)) };
}

/** memcached's safe_strtoull (unsigned long is 64 bits on Linux). */
export function safeStrtoull(token: Buffer): bigint | null {
  const scanned = cScan(token);
  if (scanned === null || scanned.magnitude >= U64) return null; // ERANGE
  const value = scanned.negative ? (U64 - scanned.magnitude) % U64 : scanned.magnitude;
  // A value that is negative as a signed long is refused when a minus sign was given.
  if (value > I64_MAX && scanned.negative) return null;
  return value;
}

/** memcached's safe_strtoul into a uint32_t: the low 32 bits of the unsigned long. */
export function safeStrtoul(token: Buffer): number | null {
  const value = safeStrtoull(token);
  return value === null ? null : Number(value & 0xffffffffn);
}

/** memcached's safe_strtol into an int32_t: strtol's long, then the C conversion keeps 32 bits. */
export function safeStrtol(token: Buffer): number | null {
  const scanned = cScan(token);
  if (scanned === null) return null;
  const value = scanned.negative ? -scanned.magnitude : scanned.magnitude;
  if (value < I64_MIN || value > I64_MAX) return null; // ERANGE
  return Number(BigInt.asIntN(32, value));
}

/** memcached's tokenize_command: single spaces split, a NUL ends the line, at most MAX_TOKENS - 1 tokens. */
export function tokenizeLine(line: Buffer): Buffer[] {
  const nul = line.indexOf(0);
  const text = nul === -1 ? line : line.subarray(0, nul);
  const out: Buffer[] = [];
  let begin = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== SP) continue;
    if (i > begin) {
      out.push(text.subarray(begin, i));
      if (out.length === MAX_TOKENS - 1) return out;
    }
    begin = i + 1;
  }
  if (begin < text.length) out.push(text.subarray(begin));
  return out;
}

const STORAGE = new Set(['set', 'add', 'replace', 'append', 'prepend']);

/**
 * How many bytes follow a command line as its data block (value plus \r\n, or a
 * refused value memcached swallows), or 0 when none do.
 */
export function dataBlockLength(line: Buffer): number {
  const tokens = tokenizeLine(line);
  const ntokens = tokens.length + 1; // memcached counts the terminal token
  if (tokens.length === 0) return 0;
  const command = tokens[0]!.toString('latin1');
  if ((STORAGE.has(command) && (ntokens === 6 || ntokens === 7)) || (command === 'cas' && (ntokens === 7 || ntokens === 8))) {
    if (tokens[1]!.length > KEY_MAX_LENGTH) return 0;
    if (safeStrtoul(tokens[2]!) === null) return 0;
    if (safeStrtol(tokens[3]!) === null) return 0;
    const length = safeStrtol(tokens[4]!);
    if (length === null) return 0;
    if (command === 'cas' && safeStrtoull(tokens[5]!) === null) return 0;
    if (length < 0 || length > INT_MAX - 2) return 0;
    return length + 2;
  }
  if (command === 'ms') {
    if (ntokens < 3 || tokens[1]!.length > KEY_MAX_LENGTH || ntokens === 3) return 0;
    if (ntokens > 20) return 0;
    const length = safeStrtol(tokens[2]!);
    if (length === null || length < 0 || length > INT_MAX - 2) return 0;
    return length + 2;
  }
  return 0;
}

/** True when memcached may hang up on this command line (quit, an HTTP request line, shutdown). */
function mayClose(line: Buffer): boolean {
  const tokens = tokenizeLine(line);
  if (tokens.length === 0) return false;
  const command = tokens[0]!.toString('latin1');
  if (command === 'quit' || command === 'shutdown') return true;
  return line.includes('HTTP/');
}

/** A stream position: what the server needs next. */
export interface Framing {
  /** Feeds bytes the client sends, in order. */
  push(data: Buffer): void;
  /** A binary request with an opcode memcached lacks was framed (Mnemo deliberately differs there). */
  readonly unknownOpcode?: boolean;
  /** Bytes the server needs before it is back at a command boundary (0: it is there). */
  readonly pending: number;
  /** Filler that completes what is pending without starting anything new. */
  filler(bytes: number): Buffer;
  /** The server certainly closes the connection (binary protocol errors, bad magic, quit). */
  readonly closed: boolean;
  /** The server may close the connection (a text quit, HTTP line, over-long line). */
  readonly closeAllowed: boolean;
}

/** Text and meta commands. */
export class TextFraming implements Framing {
  private partial: Buffer[] = [];
  private partialLength = 0;
  private skip = 0;
  closed = false;
  closeAllowed = false;

  push(data: Buffer): void {
    let pos = 0;
    while (pos < data.length && !this.closed) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, data.length - pos);
        this.skip -= n;
        pos += n;
        continue;
      }
      const newline = data.indexOf(LF, pos);
      if (newline === -1) {
        this.partial.push(data.subarray(pos));
        this.partialLength += data.length - pos;
        if (this.partialLength > LONG_LINE) this.closeAllowed = true;
        return;
      }
      let line = data.subarray(pos, newline);
      if (this.partialLength > 0) {
        line = Buffer.concat([...this.partial, line]);
        this.partial = [];
        this.partialLength = 0;
      }
      if (line.length > LONG_LINE) this.closeAllowed = true;
      if (line.length > 1 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
      if (mayClose(line)) this.closeAllowed = true;
      this.skip = dataBlockLength(line);
      pos = newline + 1;
    }
  }

  get pending(): number {
    return this.skip;
  }

  /** The data block of a value: anything, then \r\n where the block ends. */
  filler(bytes: number): Buffer {
    const out = Buffer.alloc(bytes, 0x78);
    if (bytes >= 2) out.write('\r\n', bytes - 2, 'latin1');
    return out;
  }

  /** True when a line has started but not ended: the next bytes continue it. */
  get midLine(): boolean {
    return this.partialLength > 0;
  }
}

/** Splits valid text traffic into commands (line plus data block), for a mutation corpus. */
export function splitTextCommands(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  while (pos < data.length) {
    const newline = data.indexOf(LF, pos);
    if (newline === -1) {
      out.push(data.subarray(pos));
      break;
    }
    let line = data.subarray(pos, newline);
    if (line.length > 1 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
    const end = Math.min(data.length, newline + 1 + dataBlockLength(line));
    out.push(data.subarray(pos, end));
    pos = end;
  }
  return out;
}

/** Binary opcodes memcached 1.6.18 implements (without SASL configured). */
const OP = {
  get: 0x00, set: 0x01, add: 0x02, replace: 0x03, delete: 0x04, incr: 0x05, decr: 0x06, quit: 0x07,
  flush: 0x08, getq: 0x09, noop: 0x0a, version: 0x0b, getk: 0x0c, getkq: 0x0d, append: 0x0e,
  prepend: 0x0f, stat: 0x10, setq: 0x11, addq: 0x12, replaceq: 0x13, deleteq: 0x14, incrq: 0x15,
  decrq: 0x16, quitq: 0x17, flushq: 0x18, appendq: 0x19, prependq: 0x1a, touch: 0x1c, gat: 0x1d,
  gatq: 0x1e, saslList: 0x20, saslAuth: 0x21, saslStep: 0x22, gatk: 0x23, gatkq: 0x24,
} as const;

const QUIET: Record<number, number> = {
  [OP.getq]: OP.get, [OP.getkq]: OP.getk, [OP.setq]: OP.set, [OP.addq]: OP.add, [OP.replaceq]: OP.replace,
  [OP.deleteq]: OP.delete, [OP.incrq]: OP.incr, [OP.decrq]: OP.decr, [OP.quitq]: OP.quit, [OP.flushq]: OP.flush,
  [OP.appendq]: OP.append, [OP.prependq]: OP.prepend, [OP.gatq]: OP.gat, [OP.gatkq]: OP.gatk,
};

/**
 * What memcached does with one binary request header: 'close' (protocol error,
 * bad magic, quit), or how many bytes from the header start it consumes. (An
 * opcode memcached lacks: memcached itself then drops a body length after the
 * key; Mnemo deliberately drops only this request's body, as its README says.)
 */
export function binaryRequestLength(header: Buffer): number | 'close' {
  if (header[0] !== 0x80) return 'close';
  const opcode = header[1]!;
  const keylen = header.readUInt16BE(2);
  const extlen = header[4]!;
  const bodylen = header.readUInt32BE(8);
  if (keylen > bodylen || keylen + extlen > bodylen) return 'close';
  if (keylen > KEY_MAX_LENGTH) return 'close';
  const op = QUIET[opcode] ?? opcode;
  const whole = 24 + bodylen;
  const bare = extlen === 0 && keylen === 0 && bodylen === 0;
  switch (op) {
    case OP.version:
    case OP.noop:
      return bare ? whole : 'close';
    case OP.quit:
      return 'close';
    case OP.flush:
      return keylen === 0 && bodylen === extlen && (extlen === 0 || extlen === 4) ? whole : 'close';
    case OP.set:
    case OP.add:
    case OP.replace:
      return extlen === 8 && keylen > 0 && bodylen >= keylen + 8 ? whole : 'close';
    case OP.append:
    case OP.prepend:
      return keylen > 0 && extlen === 0 ? whole : 'close';
    case OP.get:
    case OP.getk:
      return extlen === 0 && bodylen === keylen && keylen > 0 ? whole : 'close';
    case OP.touch:
    case OP.gat:
    case OP.gatk:
      // memcached reads extras and key only; more body bytes become the next request.
      return extlen === 4 && keylen > 0 ? 24 + extlen + keylen : 'close';
    case OP.delete:
      return keylen > 0 && extlen === 0 && bodylen === keylen ? whole : 'close';
    case OP.incr:
    case OP.decr:
      return keylen > 0 && extlen === 20 && bodylen === keylen + extlen ? whole : 'close';
    case OP.stat:
      // Reads the key only, as memcached does.
      return extlen === 0 ? 24 + keylen : 'close';
    case OP.saslList:
      return bare ? whole : 'close';
    case OP.saslAuth:
    case OP.saslStep:
      return extlen === 0 && keylen > 0 ? whole : 'close';
    default:
      return whole;
  }
}

/** True for the opcodes memcached 1.6.18 implements (quiet forms included). */
export function knownOpcode(opcode: number): boolean {
  return (Object.values(OP) as number[]).includes(opcode);
}

/** Binary requests. */
export class BinaryFraming implements Framing {
  /** Bytes of the current request seen so far (header, extras and key are kept to decide). */
  private current: Buffer[] = [];
  private currentLength = 0;
  /** Bytes of the current request's length still to come once it is decided. */
  private skip = 0;
  /** Bytes needed before memcached acts on the current request (header, extras, key). */
  private need = 24;
  closed = false;
  readonly closeAllowed = false;
  /** A request with an opcode memcached lacks was framed (where Mnemo deliberately differs). */
  unknownOpcode = false;

  push(data: Buffer): void {
    let pos = 0;
    while (pos < data.length && !this.closed) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, data.length - pos);
        this.skip -= n;
        pos += n;
        continue;
      }
      const n = Math.min(this.need - this.currentLength, data.length - pos);
      this.current.push(data.subarray(pos, pos + n));
      this.currentLength += n;
      pos += n;
      if (this.currentLength < this.need) return;
      const head = Buffer.concat(this.current);
      if (this.need === 24 && head[0] === 0x80) {
        // The header is here: memcached next waits for extras and key.
        this.need = 24 + head[4]! + head.readUInt16BE(2);
        if (this.currentLength < this.need) continue;
      }
      const length = binaryRequestLength(head);
      if (head[0] === 0x80 && !knownOpcode(head[1]!)) this.unknownOpcode = true;
      if (length === 'close') {
        this.closed = true;
        return;
      }
      // Touch and stat consume header, extras and key only (need), so this is never negative:
      // their leftover body bytes start the next request.
      this.skip = length - this.currentLength;
      this.current = [];
      this.currentLength = 0;
      this.need = 24;
    }
  }

  get pending(): number {
    if (this.closed) return 0;
    if (this.skip > 0) return this.skip;
    return this.currentLength === 0 ? 0 : this.need - this.currentLength;
  }

  /** Zeros: they complete a header, key or value; a header completed so may ask for more. */
  filler(bytes: number): Buffer {
    return Buffer.alloc(bytes);
  }
}

/** A fresh connection: memcached picks binary when the first byte is 0x80, text otherwise. */
export class AutoFraming implements Framing {
  private inner: Framing | null = null;

  push(data: Buffer): void {
    if (data.length === 0) return;
    this.inner ??= data[0] === 0x80 ? new BinaryFraming() : new TextFraming();
    this.inner.push(data);
  }

  get binary(): boolean {
    return this.inner instanceof BinaryFraming;
  }

  get unknownOpcode(): boolean {
    return this.inner instanceof BinaryFraming && this.inner.unknownOpcode;
  }

  get pending(): number {
    return this.inner?.pending ?? 0;
  }

  filler(bytes: number): Buffer {
    return this.inner?.filler(bytes) ?? Buffer.alloc(0);
  }

  get closed(): boolean {
    return this.inner?.closed ?? false;
  }

  get closeAllowed(): boolean {
    return this.inner?.closeAllowed ?? false;
  }
}
