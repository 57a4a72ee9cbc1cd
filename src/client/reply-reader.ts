/**
 * Reads memcached's text and meta replies off a byte stream, one reply per request,
 * in request order. Chunks are joined only once enough bytes have arrived for the
 * next step, so a large value that comes in many packets is copied once, not once
 * per packet; a multi-get reply is consumed item by item as its bytes arrive.
 */

const CR = 0x0d;
const LF = 0x0a;
const SPACE = 0x20;
const EMPTY = Buffer.alloc(0);
const VALUE_PREFIX = Buffer.from('VALUE ', 'latin1');

/** How a request's reply is shaped. */
export type ReplyKind =
  /** One line: STORED, DELETED, a number, VERSION ..., OK, MN. */
  | 'line'
  /** VALUE blocks up to END (get, gets, gat, gats). */
  | 'values'
  /** STAT lines up to END. */
  | 'stats'
  /** One meta reply: a status line, with a data block after VA. */
  | 'meta'
  /** A meta request with q, sent with an mn after it: a reply or nothing, then MN. */
  | 'meta-quiet';

export interface ValueBlock {
  key: Buffer;
  flags: number;
  value: Buffer;
  /** Present in gets and gats replies. */
  cas: bigint | undefined;
}

export interface MetaBlock {
  /** VA, HD, EN, NF, NS, EX, MN; 'quiet' when q suppressed the reply. */
  status: string;
  /** The return flags after the status (and after the size for VA). */
  tokens: string[];
  value: Buffer | undefined;
}

const NO_VALUES: ValueBlock[] = [];
const NO_STATS: Array<[string, string]> = [];

/** What the reader has gathered for one request so far. */
export class ReplyState {
  /** Shared empty arrays until a reply has entries: most replies have none. */
  values: ValueBlock[] = NO_VALUES;
  stats: Array<[string, string]> = NO_STATS;
  meta: MetaBlock | undefined;
  /** An ERROR, CLIENT_ERROR or SERVER_ERROR line that ended the reply. */
  errorLine: string | undefined;
  line = '';

  constructor(readonly kind: ReplyKind) {}
}

/** The stream cannot be a memcached reply: the connection is out of step and must close. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

function isErrorLine(line: string): boolean {
  return line === 'ERROR' || line.startsWith('CLIENT_ERROR') || line.startsWith('SERVER_ERROR') || line.startsWith('ERROR ');
}

export class ReplyReader {
  private buf: Buffer = EMPTY;
  private pos = 0;
  private chunks: Buffer[] = [];
  private chunkBytes = 0;
  /** Bytes past pos that must be buffered before parsing can make progress. */
  private need = 1;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.chunkBytes += chunk.length;
  }

  /** True when enough has arrived since the last attempt for a parse to get further. */
  get ready(): boolean {
    return this.buf.length - this.pos + this.chunkBytes >= this.need;
  }

  /** True when no unparsed bytes are buffered. */
  get empty(): boolean {
    return this.pos === this.buf.length && this.chunkBytes === 0;
  }

  /**
   * Parses as much of state's reply as has arrived; true once it is complete.
   * Throws ProtocolError on bytes that are no reply of that kind.
   */
  read(state: ReplyState): boolean {
    this.join();
    switch (state.kind) {
      case 'line':
        return this.readLine(state);
      case 'values':
        return this.readValues(state);
      case 'stats':
        return this.readStats(state);
      case 'meta':
      case 'meta-quiet':
        return this.readMeta(state);
    }
  }

  private join(): void {
    if (this.chunkBytes === 0) return;
    const rest = this.buf.length - this.pos;
    if (rest === 0 && this.chunks.length === 1) this.buf = this.chunks[0]!;
    else this.buf = Buffer.concat(rest === 0 ? this.chunks : [this.buf.subarray(this.pos), ...this.chunks]);
    this.pos = 0;
    this.chunks = [];
    this.chunkBytes = 0;
  }

  /** Index of the LF ending the line at pos, or -1 (need is then set for one more byte). */
  private findLineEnd(): number {
    const lf = this.buf.indexOf(LF, this.pos);
    if (lf < 0) this.need = this.buf.length - this.pos + 1;
    return lf;
  }

  /** The line from pos to lf without its CR, and pos moved past it. */
  private takeLine(lf: number): string {
    const end = lf > this.pos && this.buf[lf - 1] === CR ? lf - 1 : lf;
    const line = this.buf.toString('latin1', this.pos, end);
    this.pos = lf + 1;
    this.need = 1;
    return line;
  }

  private readLine(state: ReplyState): boolean {
    const lf = this.findLineEnd();
    if (lf < 0) return false;
    const line = this.takeLine(lf);
    if (isErrorLine(line)) state.errorLine = line;
    else state.line = line;
    return true;
  }

  private readValues(state: ReplyState): boolean {
    for (;;) {
      const lf = this.findLineEnd();
      if (lf < 0) return false;
      if (!this.startsWith(VALUE_PREFIX, lf)) {
        const line = this.takeLine(lf);
        if (line === 'END') return true;
        if (isErrorLine(line)) {
          state.errorLine = line;
          return true;
        }
        throw new ProtocolError(`unexpected line in a get reply: ${JSON.stringify(line.slice(0, 80))}`);
      }
      if (!this.readValueBlock(state, lf)) return false;
    }
  }

  /** `VALUE <key> <flags> <bytes> [<cas>]` and its data; false until the data is all here. */
  private readValueBlock(state: ReplyState, lf: number): boolean {
    const buf = this.buf;
    const lineEnd = buf[lf - 1] === CR ? lf - 1 : lf;
    const keyStart = this.pos + VALUE_PREFIX.length;
    const keyEnd = buf.indexOf(SPACE, keyStart);
    if (keyEnd < 0 || keyEnd >= lineEnd) throw new ProtocolError('VALUE line without flags');
    let at = keyEnd + 1;
    let flags = 0;
    let size = 0;
    let digits = 0;
    for (; at < lineEnd && buf[at] !== SPACE; at++, digits++) flags = flags * 10 + digit(buf[at]!);
    if (digits === 0) throw new ProtocolError('VALUE line without flags');
    digits = 0;
    for (at++; at < lineEnd && buf[at] !== SPACE; at++, digits++) size = size * 10 + digit(buf[at]!);
    if (digits === 0) throw new ProtocolError('VALUE line without a size');
    let cas: bigint | undefined;
    if (at < lineEnd) cas = BigInt(buf.toString('latin1', at + 1, lineEnd));
    const dataStart = lf + 1;
    const dataEnd = dataStart + size;
    if (dataEnd + 2 > buf.length) {
      this.need = dataEnd + 2 - this.pos;
      return false;
    }
    const key = Buffer.from(buf.subarray(keyStart, keyEnd));
    // A copy, so a value kept by the caller does not pin the whole socket chunk.
    const value = Buffer.from(buf.subarray(dataStart, dataEnd));
    if (state.values === NO_VALUES) state.values = [];
    state.values.push({ key, flags, value, cas });
    this.pos = dataEnd + 2;
    this.need = 1;
    return true;
  }

  private readStats(state: ReplyState): boolean {
    for (;;) {
      const lf = this.findLineEnd();
      if (lf < 0) return false;
      const line = this.takeLine(lf);
      if (line === 'END') return true;
      if (line.startsWith('STAT ')) {
        if (state.stats === NO_STATS) state.stats = [];
        const space = line.indexOf(' ', 5);
        if (space < 0) state.stats.push([line.slice(5), '']);
        else state.stats.push([line.slice(5, space), line.slice(space + 1)]);
        continue;
      }
      if (isErrorLine(line)) {
        state.errorLine = line;
        return true;
      }
      throw new ProtocolError(`unexpected line in a stats reply: ${JSON.stringify(line.slice(0, 80))}`);
    }
  }

  private readMeta(state: ReplyState): boolean {
    const quiet = state.kind === 'meta-quiet';
    if (state.meta === undefined && state.errorLine === undefined) {
      const lf = this.findLineEnd();
      if (lf < 0) return false;
      const header = this.buf.toString('latin1', this.pos, this.buf[lf - 1] === CR ? lf - 1 : lf);
      if (quiet && header === 'MN') {
        this.takeLine(lf);
        state.meta = { status: 'quiet', tokens: [], value: undefined };
        return true;
      }
      if (isErrorLine(header)) {
        this.takeLine(lf);
        state.errorLine = header;
      } else {
        const tokens = header.split(' ');
        const status = tokens.shift()!;
        let value: Buffer | undefined;
        if (status === 'VA') {
          const size = Number(tokens.shift());
          if (!Number.isSafeInteger(size) || size < 0) throw new ProtocolError(`bad VA size in ${JSON.stringify(header)}`);
          const dataStart = lf + 1;
          if (dataStart + size + 2 > this.buf.length) {
            this.need = dataStart + size + 2 - this.pos;
            return false;
          }
          value = Buffer.from(this.buf.subarray(dataStart, dataStart + size));
          this.pos = dataStart + size + 2;
          this.need = 1;
        } else if (status.length !== 2) {
          throw new ProtocolError(`unexpected meta reply ${JSON.stringify(header.slice(0, 80))}`);
        } else {
          this.takeLine(lf);
        }
        state.meta = { status, tokens, value };
      }
      if (!quiet) return true;
    }
    // A quiet request was followed by mn: its MN closes the reply.
    const lf = this.findLineEnd();
    if (lf < 0) return false;
    const line = this.takeLine(lf);
    if (line !== 'MN') throw new ProtocolError(`expected MN after a quiet meta reply, got ${JSON.stringify(line.slice(0, 80))}`);
    return true;
  }

  private startsWith(prefix: Buffer, lf: number): boolean {
    if (lf - this.pos < prefix.length) return false;
    for (let i = 0; i < prefix.length; i++) if (this.buf[this.pos + i] !== prefix[i]) return false;
    return true;
  }
}

function digit(byte: number): number {
  const value = byte - 0x30;
  if (value < 0 || value > 9) throw new ProtocolError('non-digit in a VALUE line');
  return value;
}
