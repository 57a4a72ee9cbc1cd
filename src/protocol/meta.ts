import { parseCasUnique, parseI32, parseU32, parseU64 } from '../base/c-numbers.js';
import type { ServerContext } from '../server/context.js';
import type { OutputBuffer } from '../server/output.js';
import { STORE_BINARY_KEY, STORE_INVALIDATE, type ItemView, type StoreMode } from '../store/store.js';
import { KEY_MAX_LENGTH } from './limits.js';
import { tokens } from './tokenizer.js';
import { Wire } from '../commands/wire.js';
import { refuseUnarrivedValue, StoreOutcome, storeValue, valueArrived, valueFits, withCas } from '../commands/storage.js';
import { countMetaGet } from '../commands/retrieval.js';
import { applyDelta, DeltaOutcome, deltaResult } from '../commands/arithmetic.js';
import { DeleteOutcome, deleteItem } from '../commands/delete-touch.js';
import { changesRefused } from '../commands/refusal.js';

/**
 * memcached's meta commands (mg, ms, md, ma, me, mn) as memcached 1.6.18 answers
 * them: single-character flags after the key, replies HD/VA/EN/NS/EX/NF/MN/ME,
 * win/stale/already-won tokens for anti-stampede, base64 keys, quiet mode.
 */

/** What the meta commands need from the text protocol that runs them. */
export interface MetaHost {
  /** Drop this many bytes of input as they arrive (a refused data block). */
  swallow(bytes: number): void;
  /** Stop here until the input holds this many bytes from the buffer start. */
  want(bytes: number): void;
  /** Holds room for a data block still arriving (partial-values.ts); false: there is none, refuse it. */
  reserve(bytes: number): boolean;
  /** The data block has arrived: gives back its room. */
  release(): void;
  /** The connection's number, for the log stream. */
  readonly connectionId: number;
}

const MAX_OPAQUE_LENGTH = 32;
/** memcached refuses meta lines with more tokens than this (MFLAG_MAX_OPT_LENGTH). */
const MAX_META_TOKENS = 20;

const reply = (text: string): Buffer => Buffer.from(text, 'latin1');
const HD = reply('HD');
const EN = reply('EN');
const NF = reply('NF');
const NS = reply('NS');
const EX = reply('EX');
const MN = reply('MN\r\n');
const VA = reply('VA ');
const CRLF = reply('\r\n');
const BAD_FORMAT = 'CLIENT_ERROR bad command line format';
/** memcached's reply to a store it has no memory for; also every change refused while the disk refuses writes. */
const OUT_OF_MEMORY_STORING = 'SERVER_ERROR out of memory storing object';

/** The parsed flags of one meta command (memcached's _meta_flag_preparse). */
class MetaFlags {
  error: string | null = null;
  fatal = false;
  keyBinary = false;
  vivify = false;
  vivifyTtl = 0;
  newTtl = false;
  ttl = 0;
  recache = false;
  recacheTtl = 0;
  locked = false;
  value = false;
  noUpdate = false;
  quiet = false;
  hasCas = false;
  cas = 0;
  mode = 0;
  clientFlags = 0;
  delta = 1n;
  initial = 0n;
  invalidate = false;
  /** The key, decoded when `b` was given. */
  key: Buffer = EMPTY;
  keyStart = 0;
  keyEnd = 0;

  reset(): void {
    this.error = null;
    this.fatal = false;
    this.keyBinary = this.vivify = this.newTtl = this.recache = this.locked = false;
    this.value = this.noUpdate = this.quiet = this.hasCas = this.invalidate = false;
    this.vivifyTtl = this.ttl = this.recacheTtl = this.cas = this.mode = this.clientFlags = 0;
    this.delta = 1n;
    this.initial = 0n;
  }
}

const EMPTY = Buffer.alloc(0);
const seen = new Uint8Array(128);
const flags = new MetaFlags();

/**
 * Reads the flag tokens from index `first` on into `flags`. Mirrors memcached:
 * a bad value records an error and parsing goes on; a duplicate or unknown flag
 * stops at once.
 */
function parseFlags(buf: Buffer, first: number): MetaFlags {
  flags.reset();
  seen.fill(0);
  flags.key = buf;
  flags.keyStart = tokens.start[1]!;
  flags.keyEnd = tokens.end[1]!;
  const badToken = 'CLIENT_ERROR bad token in command line format';
  for (let i = first; i < tokens.count - 1; i++) {
    const s = tokens.start[i]!;
    const e = tokens.end[i]!;
    const flag = buf[s]!;
    if (flag >= 127 || seen[flag] !== 0) {
      flags.error = 'CLIENT_ERROR duplicate flag';
      flags.fatal = true;
      return flags;
    }
    seen[flag] = 1;
    switch (flag) {
      case 0x62: { // b
        const decoded = decodeBase64Key(buf, flags.keyStart, flags.keyEnd);
        if (decoded === null) {
          flags.error = 'CLIENT_ERROR error decoding key';
        } else {
          flags.key = decoded;
          flags.keyStart = 0;
          flags.keyEnd = decoded.length;
        }
        flags.keyBinary = true;
        break;
      }
      case 0x4e: // N
        flags.locked = flags.vivify = true;
        flags.vivifyTtl = parseI32(buf, s + 1, e);
        if (Number.isNaN(flags.vivifyTtl)) flags.error = badToken;
        break;
      case 0x54: // T
        flags.locked = flags.newTtl = true;
        flags.ttl = parseI32(buf, s + 1, e);
        if (Number.isNaN(flags.ttl)) flags.error = badToken;
        break;
      case 0x52: // R
        flags.locked = flags.recache = true;
        flags.recacheTtl = parseI32(buf, s + 1, e);
        if (Number.isNaN(flags.recacheTtl)) flags.error = badToken;
        break;
      case 0x6c: // l
      case 0x68: // h
        flags.locked = true;
        break;
      case 0x4f: // O
      case 0x50: // P
      case 0x4c: // L
      case 0x6b: // k
      case 0x73: // s
      case 0x74: // t
      case 0x63: // c
      case 0x66: // f
        break;
      case 0x76: // v
        flags.value = true;
        break;
      case 0x75: // u
        flags.noUpdate = true;
        break;
      case 0x71: // q
        flags.quiet = true;
        break;
      case 0x46: // F
        flags.clientFlags = parseU32(buf, s + 1, e);
        if (Number.isNaN(flags.clientFlags)) flags.error = BAD_FORMAT;
        break;
      case 0x43: // C
        flags.cas = parseCasUnique(buf, s + 1, e);
        if (Number.isNaN(flags.cas)) flags.error = badToken;
        else flags.hasCas = true;
        break;
      case 0x4d: // M
        if (e - s !== 2) flags.error = 'CLIENT_ERROR incorrect length for M token';
        else flags.mode = buf[s + 1]!;
        break;
      case 0x4a: { // J
        const initial = parseU64(buf, s + 1, e);
        if (initial === null) flags.error = 'CLIENT_ERROR invalid numeric initial value';
        else flags.initial = initial;
        break;
      }
      case 0x44: { // D
        const delta = parseU64(buf, s + 1, e);
        if (delta === null) flags.error = 'CLIENT_ERROR invalid numeric delta value';
        else flags.delta = delta;
        break;
      }
      case 0x49: // I
        flags.invalidate = true;
        break;
      default:
        flags.error = 'CLIENT_ERROR invalid flag';
        flags.fatal = true;
        return flags;
    }
  }
  return flags;
}

/** memcached's base64 key decoding: standard alphabet with padding; null when it is not valid base64. */
function decodeBase64Key(buf: Buffer, start: number, end: number): Buffer | null {
  const text = buf.toString('latin1', start, end);
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return null;
  const decoded = Buffer.from(text, 'base64');
  return decoded.length === 0 ? null : decoded;
}

export class MetaCommands {
  constructor(
    private readonly ctx: ServerContext,
    private readonly out: OutputBuffer,
    private readonly host: MetaHost,
  ) {}

  /** mn: the end-of-pipeline marker. */
  noop(next: number): number {
    this.out.bytes(MN);
    return next;
  }

  /** mg <key> <flags>*: get, with anti-stampede tokens. */
  get(buf: Buffer, next: number): number {
    const out = this.out;
    if (tokens.count < 3) return this.error('ERROR', next);
    if (tokens.length(1) > KEY_MAX_LENGTH) return this.error(BAD_FORMAT, next);
    if (tokens.count > MAX_META_TOKENS) return this.error('CLIENT_ERROR options flags are too long', next);
    const f = parseFlags(buf, 2);
    if (f.error !== null) return this.error(f.error, next);
    if (!this.opaquesFit(buf)) return this.error('CLIENT_ERROR opaque token too long', next);
    const { store, counters } = this.ctx;
    // T and N change or create items: refused like every change while the disk refuses writes.
    if ((f.newTtl || f.vivify) && changesRefused(store)) return this.error(OUT_OF_MEMORY_STORING, next);

    let item = store.peek(f.key, f.keyStart, f.keyEnd);
    if (this.ctx.logStream.fetchers) this.ctx.logStream.fetched(f.key, f.keyStart, f.keyEnd, item, this.host.connectionId);
    let created = false;
    if (item === null && f.vivify) {
      item = store.vivify(f.key, f.keyStart, f.keyEnd, 0, f.keyBinary);
      created = item !== null;
    }
    if (item === null) {
      countMetaGet(counters, null, f.newTtl);
      if (!f.quiet) {
        out.bytes(EN);
        this.echoOpaqueAndKey(buf, f);
        out.bytes(CRLF);
      }
      return next;
    }

    // Flags read the item as it was before this access; the access is counted last.
    const fetched = item.fetched;
    const lastAccess = item.lastAccess;
    let won = false;
    if (f.value) {
      out.bytes(VA);
      out.decimal(item.valueLength);
    } else {
      out.bytes(HD);
    }
    for (let i = 2; i < tokens.count - 1; i++) {
      const s = tokens.start[i]!;
      switch (buf[s]) {
        case 0x54: // T
          store.setExptime(item, f.ttl);
          break;
        case 0x4e: // N
          if (created) {
            store.setExptime(item, f.vivifyTtl);
            won = true;
          }
          break;
        case 0x52: // R
          if (!item.tokenSent && !created && item.exptime !== 0 && item.exptime < this.ctx.clock.expiryFrom(f.recacheTtl)) {
            won = true;
          }
          break;
        case 0x73: // s
          numberToken(out, 0x73, item.valueLength);
          break;
        case 0x74: // t
          numberToken(out, 0x74, this.ttlOf(item));
          break;
        case 0x63: // c
          numberToken(out, 0x63, item.cas);
          break;
        case 0x66: // f
          numberToken(out, 0x66, item.flags);
          break;
        case 0x6c: // l
          numberToken(out, 0x6c, this.ctx.clock.now - lastAccess);
          break;
        case 0x68: // h
          numberToken(out, 0x68, fetched ? 1 : 0);
          break;
        case 0x4f: // O
          out.ascii(' ');
          out.slice(buf, s, tokens.end[i]!);
          break;
        case 0x6b: // k
          this.key(item.binaryKey, f);
          break;
      }
    }
    if (item.tokenSent) out.ascii(' Z');
    if (item.stale) {
      out.ascii(' X');
      if (!item.tokenSent) won = true;
    }
    if (won) {
      out.ascii(' W');
      store.setTokenSent(item);
    }
    out.bytes(CRLF);
    if (f.value) {
      out.storedValue(item);
      out.bytes(CRLF);
    }
    if (!f.noUpdate) store.markAccessed(item, !f.newTtl);
    countMetaGet(counters, item, f.newTtl);
    return next;
  }

  /** ms <key> <datalen> <flags>*: set and its modes. Returns -1 while the data block is incomplete. */
  set(buf: Buffer, next: number, end: number): number {
    if (tokens.count < 3) return this.error('ERROR', next);
    if (tokens.length(1) > KEY_MAX_LENGTH) return this.error(BAD_FORMAT, next);
    if (tokens.count === 3) return this.error(BAD_FORMAT, next);
    if (tokens.count > MAX_META_TOKENS) return this.error('CLIENT_ERROR options flags too long', next);
    const length = parseI32(buf, tokens.start[2]!, tokens.end[2]!);
    if (Number.isNaN(length) || length < 0 || length > 2147483645) return this.error(BAD_FORMAT, next);

    const f = parseFlags(buf, 3);
    let error = f.error;
    let mode: StoreMode = 'set';
    if (error === null) {
      for (let i = 3; i < tokens.count - 1 && error === null; i++) {
        if (buf[tokens.start[i]!] === 0x4f && tokens.length(i) > MAX_OPAQUE_LENGTH) error = 'CLIENT_ERROR opaque token too long';
      }
      switch (f.mode) {
        case 0:
        case 0x53: // S
          mode = 'set';
          break;
        case 0x45: // E
          mode = 'add';
          break;
        case 0x41: // A
          mode = 'append';
          break;
        case 0x50: // P
          mode = 'prepend';
          break;
        case 0x52: // R
          mode = 'replace';
          break;
        default:
          error ??= 'CLIENT_ERROR invalid mode for ms M token';
      }
    }
    const ctx = this.ctx;
    if (error === null && !valueFits(ctx, Wire.Meta, mode, f.key, f.keyStart, f.keyEnd, length, f.clientFlags, this.host.connectionId)) {
      error = 'SERVER_ERROR object too large for cache';
    }
    if (error !== null) {
      this.host.swallow(length + 2);
      return this.error(error, next);
    }
    const dataEnd = next + length;
    if (dataEnd + 2 > end) {
      if (!this.host.reserve(length + 2)) {
        refuseUnarrivedValue(ctx, Wire.Meta, mode, f.key, f.keyStart, f.keyEnd);
        this.host.swallow(length + 2);
        return this.error(OUT_OF_MEMORY_STORING, next);
      }
      this.host.want(dataEnd + 2);
      return -1;
    }
    this.host.release();
    valueArrived(ctx);
    if (buf[dataEnd] !== 0x0d || buf[dataEnd + 1] !== 0x0a) {
      this.out.ascii('CLIENT_ERROR bad data chunk\r\n');
      return dataEnd + 2;
    }
    mode = withCas(Wire.Meta, mode, f.hasCas);
    // I marks stale only with a real CAS: memcached treats C0 as no CAS at all (plain mismatch).
    const options = (f.keyBinary ? STORE_BINARY_KEY : 0) | (f.invalidate && mode === 'cas' && f.cas !== 0 ? STORE_INVALIDATE : 0);
    const ttl = f.newTtl ? f.ttl : 0;
    const outcome = storeValue(ctx, Wire.Meta, mode, f.key, f.keyStart, f.keyEnd, buf, next, dataEnd, f.clientFlags, ttl, f.cas, options, this.host.connectionId);
    const out = this.out;
    switch (outcome) {
      case StoreOutcome.Stored:
        if (f.quiet) return dataEnd + 2;
        out.bytes(HD);
        break;
      case StoreOutcome.Exists:
        out.bytes(EX);
        break;
      case StoreOutcome.NotFound:
        out.bytes(NF);
        break;
      case StoreOutcome.NotStored:
        out.bytes(NS);
        break;
      case StoreOutcome.TooLarge:
        out.ascii('SERVER_ERROR object too large for cache\r\n');
        return dataEnd + 2;
      default:
        out.ascii(`${OUT_OF_MEMORY_STORING}\r\n`);
        return dataEnd + 2;
    }
    for (let i = 3; i < tokens.count - 1; i++) {
      switch (buf[tokens.start[i]!]) {
        case 0x4f: // O
          out.ascii(' ');
          out.slice(buf, tokens.start[i]!, tokens.end[i]!);
          break;
        case 0x6b: // k
          this.key(f.keyBinary, f);
          break;
        case 0x63: // c
          numberToken(out, 0x63, outcome === StoreOutcome.Stored ? ctx.store.lastCas : 0);
          break;
      }
    }
    out.bytes(CRLF);
    return dataEnd + 2;
  }

  /** md <key> <flags>*: delete, or with I mark stale. */
  delete(buf: Buffer, next: number): number {
    if (tokens.count < 3) return this.error('ERROR', next);
    if (tokens.length(1) > KEY_MAX_LENGTH) return this.error(BAD_FORMAT, next);
    if (tokens.count > MAX_META_TOKENS) return this.error('CLIENT_ERROR options flags too long', next);
    const f = parseFlags(buf, 2);
    if (f.error !== null) return this.error('CLIENT_ERROR invalid or duplicate flag', next);
    if (!this.opaquesFit(buf)) return this.error('CLIENT_ERROR opaque token too long', next);
    const out = this.out;
    switch (deleteItem(this.ctx, Wire.Meta, f.key, f.keyStart, f.keyEnd, f.hasCas, f.cas, f.invalidate, f.newTtl, f.ttl)) {
      case DeleteOutcome.Refused:
        return this.error(OUT_OF_MEMORY_STORING, next);
      case DeleteOutcome.NotFound:
        out.bytes(NF);
        break;
      case DeleteOutcome.Exists:
        out.bytes(EX);
        break;
      default:
        if (f.quiet) return next;
        out.bytes(HD);
    }
    this.echoOpaqueAndKey(buf, f);
    out.bytes(CRLF);
    return next;
  }

  /** ma <key> <flags>*: increment or decrement, with autovivify. */
  arithmetic(buf: Buffer, next: number): number {
    if (tokens.count < 3) return this.error('ERROR', next);
    if (tokens.length(1) > KEY_MAX_LENGTH) return this.error(BAD_FORMAT, next);
    if (tokens.count > MAX_META_TOKENS) return this.error('CLIENT_ERROR options flags too long', next);
    const f = parseFlags(buf, 2);
    if (f.error !== null) return this.error('CLIENT_ERROR invalid or duplicate flag', next);
    let incr = true;
    switch (f.mode) {
      case 0:
      case 0x49: // I
      case 0x2b: // +
        break;
      case 0x44: // D
      case 0x2d: // -
        incr = false;
        break;
      default:
        return this.error('CLIENT_ERROR invalid mode for ma M token', next);
    }
    if (!this.opaquesFit(buf)) return this.error('CLIENT_ERROR opaque token too long', next);
    const store = this.ctx.store;
    const out = this.out;
    const outcome = applyDelta(this.ctx, f.key, f.keyStart, f.keyEnd, f.delta, incr, f.hasCas ? f.cas : 0, f.vivify, f.initial, 0, f.keyBinary);
    switch (outcome) {
      case DeltaOutcome.Changed:
      case DeltaOutcome.Created:
        break;
      case DeltaOutcome.CreateNoMemory:
        return this.error('SERVER_ERROR Out of memory allocating new item', next);
      case DeltaOutcome.NonNumeric:
        return this.error('CLIENT_ERROR cannot increment or decrement non-numeric value', next);
      case DeltaOutcome.NoMemory:
        return this.error('SERVER_ERROR out of memory', next);
      default:
        out.bytes(outcome === DeltaOutcome.NotFound ? NF : outcome === DeltaOutcome.Exists ? EX : NS);
        this.echoOpaqueAndKey(buf, f);
        out.bytes(CRLF);
        return next;
    }
    const created = outcome === DeltaOutcome.Created;
    const item = store.peek(f.key, f.keyStart, f.keyEnd);
    // As memcached: q hides a successful result (even with v), but not an item it just
    // created; a T still sets the new TTL.
    if (f.quiet && !created) {
      if (f.newTtl && item !== null) store.setExptime(item, f.ttl);
      return next;
    }
    const digits = deltaResult.value.toString();
    if (f.value) {
      out.bytes(VA);
      out.decimal(digits.length);
    } else {
      out.bytes(HD);
    }
    for (let i = 2; i < tokens.count - 1; i++) {
      const s = tokens.start[i]!;
      switch (buf[s]) {
        case 0x63: // c
          numberToken(out, 0x63, item?.cas ?? 0);
          break;
        case 0x74: // t
          numberToken(out, 0x74, item === null ? -1 : this.ttlOf(item));
          break;
        case 0x54: // T
          if (item !== null) store.setExptime(item, f.ttl);
          break;
        case 0x4e: // N
          if (created && item !== null) store.setExptime(item, f.vivifyTtl);
          break;
        case 0x4f: // O
          out.ascii(' ');
          out.slice(buf, s, tokens.end[i]!);
          break;
        case 0x6b: // k
          this.key(f.keyBinary, f);
          break;
      }
    }
    if (f.value) {
      out.bytes(CRLF);
      out.ascii(digits);
    }
    out.bytes(CRLF);
    return next;
  }

  /** me <key> [b]: memcached's debug view of one item. */
  debug(buf: Buffer, next: number): number {
    if (tokens.count < 3 || tokens.length(1) > KEY_MAX_LENGTH) return this.error(BAD_FORMAT, next);
    let key = buf;
    let start = tokens.start[1]!;
    let end = tokens.end[1]!;
    if (tokens.count >= 4 && tokens.length(2) === 1 && buf[tokens.start[2]!] === 0x62) {
      const decoded = decodeBase64Key(buf, start, end);
      if (decoded === null) return this.error(BAD_FORMAT, next);
      key = decoded;
      start = 0;
      end = decoded.length;
    }
    const item = this.ctx.store.peek(key, start, end);
    this.ctx.counters.cmd_meta++;
    const out = this.out;
    if (item === null) {
      out.bytes(EN);
      out.bytes(CRLF);
      return next;
    }
    const now = this.ctx.clock.now;
    out.ascii('ME ');
    if (item.binaryKey) out.ascii(key.toString('base64', start, end));
    else out.slice(key, start, end);
    // memcached prints now - exptime here, so a live item shows a negative number.
    const exp = item.exptime === 0 ? -1 : now - item.exptime;
    out.ascii(
      ` exp=${exp} la=${now - item.lastAccess} cas=${item.cas} fetch=${item.fetched ? 'yes' : 'no'} ` +
        `cls=${item.sizeClass} size=${item.size}\r\n`,
    );
    return next;
  }

  /**
   * Remaining TTL in seconds, -1 for none. For an item this very command expired
   * (T or N with a past time), memcached prints the negative rest as an unsigned
   * 32-bit number, counted on its clock that starts 62 seconds before the process
   * (so "already expired", stored as 1, is 61 seconds after our start minus now).
   */
  private ttlOf(item: ItemView): number {
    if (item.exptime === 0) return -1;
    const clock = this.ctx.clock;
    const left = item.exptime === 1 ? clock.started - 61 - clock.now : item.exptime - clock.now;
    return left >>> 0;
  }

  /** Writes " k<key>", base64 and followed by " b" for a binary key. */
  private key(binary: boolean, f: MetaFlags): void {
    const out = this.out;
    out.ascii(' k');
    if (binary) {
      out.ascii(f.key.toString('base64', f.keyStart, f.keyEnd));
      out.ascii(' b');
    } else {
      out.slice(f.key, f.keyStart, f.keyEnd);
    }
  }

  private opaquesFit(buf: Buffer): boolean {
    for (let i = 2; i < tokens.count - 1; i++) {
      if (buf[tokens.start[i]!] === 0x4f && tokens.length(i) > MAX_OPAQUE_LENGTH) return false;
    }
    return true;
  }

  private echoOpaqueAndKey(buf: Buffer, f: MetaFlags): void {
    for (let i = 2; i < tokens.count - 1; i++) {
      const s = tokens.start[i]!;
      if (buf[s] === 0x4f) {
        this.out.ascii(' ');
        this.out.slice(buf, s, tokens.end[i]!);
      } else if (buf[s] === 0x6b) {
        this.key(f.keyBinary, f);
      }
    }
  }

  /** Meta errors are sent even in quiet mode. */
  private error(text: string, next: number): number {
    this.out.ascii(`${text}\r\n`);
    return next;
  }
}

/** Writes a return flag with a number: " <letter><digits>" (no string is made for it). */
function numberToken(out: OutputBuffer, letter: number, n: number): void {
  out.byte(0x20);
  out.byte(letter);
  out.decimal(n);
}
