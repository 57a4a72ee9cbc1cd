import { OUTPUT_SOFT_CAP, type OutputBuffer } from '../server/output.js';
import type { ServerContext } from '../server/context.js';
import type { ValueReservation } from '../server/partial-values.js';
import type { CrawlStart, CrawlerClient, StoreMode } from '../store/store.js';
import { parseCasUnique, parseI32, parseU32, parseU64 } from '../base/c-numbers.js';
import { statsPairs, writeMetadump, writeStats } from './stats-text.js';
import { textFamily } from '../observe/latency.js';
import { KEY_MAX_LENGTH } from './limits.js';
import { responsesPerBatch } from '../server/response-limit.js';
import { LogKind } from '../observe/log-stream.js';
import { MetaCommands, type MetaHost } from './meta.js';
import { bytesEqual, startsWith, tokens } from './tokenizer.js';
import { Wire } from '../commands/wire.js';
import { refuseUnarrivedValue, storeValue, valueArrived, valueFits } from '../commands/storage.js';
import { fetchItem } from '../commands/retrieval.js';
import { applyDelta, DeltaOutcome, deltaResult } from '../commands/arithmetic.js';
import { deleteItem, flush, FlushOutcome, mayFlush, touchItem } from '../commands/delete-touch.js';
import { changesRefused } from '../commands/refusal.js';
import { countAuthentication, resetStats } from '../commands/admin.js';

/**
 * memcached's text protocol (doc/protocol.txt), following proto_text.c closely:
 * the same tokenizer, the same token-count checks per command and the same reply
 * strings, so that clients cannot tell the difference.
 *
 * A TextProtocol belongs to one connection. execute() runs every complete command
 * in a buffer and reports how far it got; a storage command whose data block has
 * not fully arrived stops the loop and says how many bytes it is waiting for.
 */

/** memcached closes a connection that sends this much without a newline, unless it is a get. */
const MAX_LINE_WITHOUT_NEWLINE = 2048;

const SP = 0x20;
const CR = 0x0d;
const LF = 0x0a;

const reply = (text: string): Buffer => Buffer.from(text + '\r\n', 'latin1');
const ERROR = reply('ERROR');
const STORED = reply('STORED');
const NOT_STORED = reply('NOT_STORED');
const EXISTS = reply('EXISTS');
const NOT_FOUND = reply('NOT_FOUND');
const DELETED = reply('DELETED');
const TOUCHED = reply('TOUCHED');
const OK = reply('OK');
const END = reply('END');
const RESET = reply('RESET');
const CRLF = Buffer.from('\r\n', 'latin1');
const VALUE = Buffer.from('VALUE ', 'latin1');
const SPACE = 0x20;
const BAD_FORMAT = reply('CLIENT_ERROR bad command line format');
const BAD_DATA_CHUNK = reply('CLIENT_ERROR bad data chunk');
const BAD_EXPTIME = reply('CLIENT_ERROR invalid exptime argument');
const BAD_DELTA = reply('CLIENT_ERROR invalid numeric delta argument');
const NON_NUMERIC = reply('CLIENT_ERROR cannot increment or decrement non-numeric value');
const DELETE_USAGE = reply('CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]');
const TOO_LARGE = reply('SERVER_ERROR object too large for cache');
const OUT_OF_MEMORY = reply('SERVER_ERROR out of memory storing object');
const DELTA_OUT_OF_MEMORY = reply('SERVER_ERROR out of memory');
/** The reply to each StoreOutcome, indexed by it. */
const STORE_REPLY: readonly Buffer[] = [STORED, NOT_STORED, EXISTS, NOT_FOUND, TOO_LARGE, OUT_OF_MEMORY];
/** The replies to each DeleteOutcome and TouchOutcome, indexed by it. */
const DELETE_REPLY: readonly Buffer[] = [DELETED, NOT_FOUND, EXISTS, OUT_OF_MEMORY];
const TOUCH_REPLY: readonly Buffer[] = [TOUCHED, NOT_FOUND, OUT_OF_MEMORY];
const FLUSH_NOT_ALLOWED = reply('CLIENT_ERROR flush_all not allowed');
const SHUTDOWN_NOT_ENABLED = reply('ERROR: shutdown not enabled');
const BAD_SHUTDOWN_MODE = reply('CLIENT_ERROR invalid shutdown mode');
const MEMLIMIT_TOO_SMALL = reply('MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m');
const MEMLIMIT_NOT_BYTES = reply('MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes');
const MEMLIMIT_FAILED = reply('MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust');
const DETAIL_USAGE = reply('CLIENT_ERROR usage: stats detail on|off|dump');
const METADUMP_NOT_ALLOWED = reply('ERROR metadump not allowed');
const CACHEDUMP_NOT_ALLOWED = reply('CLIENT_ERROR stats cachedump not allowed');
const BAD_COMMAND_LINE = reply('CLIENT_ERROR bad command line');
const ILLEGAL_SLAB_ID = reply('CLIENT_ERROR Illegal slab id');
const BADCLASS = reply('BADCLASS invalid class id');
const CRAWLER_DISABLED = reply('CLIENT_ERROR lru crawler disabled');
const CRAWLER_BUSY = reply('BUSY currently processing crawler request');
const CRAWLER_NOTSTARTED = reply('NOTSTARTED no items to crawl');
const CRAWLER_ERROR = reply('ERROR an unknown error happened');
const CRAWLER_START_FAILED = reply('ERROR failed to start lru crawler thread');
const CRAWLER_SLEEP_TOO_LONG = reply('CLIENT_ERROR sleep must be one second or less');
const METADUMP_AFTER_OTHERS = reply('ERROR cannot pipeline other commands before metadump');
const GET_OUT_OF_MEMORY = reply('SERVER_ERROR out of memory writing get response');
const WATCH_NOT_ALLOWED = reply('CLIENT_ERROR watch commands not allowed');
const WATCH_AFTER_OTHERS = reply('ERROR cannot pipeline other commands before watch');
const WATCHER_TOO_MANY = reply('WATCHER_TOO_MANY log watcher limit reached');
/** `watch` arguments memcached 1.6.18 knows; Mnemo emits lines of the kinds in LogKind. */
const WATCH_KINDS: Record<string, number> = {
  fetchers: LogKind.Fetchers, mutations: LogKind.Mutations, evictions: LogKind.Evictions, connevents: LogKind.ConnEvents,
  rawcmds: 0, sysevents: 0, proxyreqs: 0, proxyevents: 0, proxyuser: 0,
};
const MAX_WATCHERS = 20;
const REASSIGN_DISABLED = reply('CLIENT_ERROR slab reassignment disabled');
/** Indexed by SlabRebalancer.reassign's result (memcached's reassign_result_type). */
const REASSIGN_REPLIES = [
  reply('OK'),
  reply('BUSY currently processing reassign request'),
  reply('BADCLASS invalid src or dst class id'),
  reply('NOSPARE source class has no spare pages'),
  reply('SAME src and dst class are identical'),
];

const lit = (text: string): Buffer => Buffer.from(text, 'latin1');
const GET = lit('get');
const GETS = lit('gets');
const GAT = lit('gat');
const GATS = lit('gats');
const BGET = lit('bget');
const SET = lit('set');
const ADD = lit('add');
const APPEND = lit('append');
const PREPEND = lit('prepend');
const REPLACE = lit('replace');
const CAS = lit('cas');
const INCR = lit('incr');
const DECR = lit('decr');
const DELETE = lit('delete');
const TOUCH = lit('touch');
const STATS = lit('stats');
const FLUSH_ALL = lit('flush_all');
const VERSION = lit('version');
const VERBOSITY = lit('verbosity');
const DEBUGTIME = lit('debugtime');
const QUIT = lit('quit');
const NOREPLY = lit('noreply');
const RESET_WORD = lit('reset');
const SHUTDOWN = lit('shutdown');
const GRACEFUL = lit('graceful');
const CACHE_MEMLIMIT = lit('cache_memlimit');
const LRU_CRAWLER = lit('lru_crawler');
const LRU = lit('lru');
const TUNE = lit('tune');
const MODE = lit('mode');
const FLAT = lit('flat');
const SEGMENTED = lit('segmented');
const TEMP_TTL = lit('temp_ttl');
/** memcached's safe_strtod: the whole token is a number (strtod's forms), else NaN. */
function parseDouble(buf: Buffer, start: number, end: number): number {
  if (start === end) return NaN;
  return Number(buf.toString('latin1', start, end));
}
const LRU_PCTS_TOO_HIGH = reply('ERROR hot and warm pcts must not exceed 80');
const LRU_FACTORS_TOO_LOW = reply('ERROR hot/warm age factors must be greater than 0');
const METADUMP = lit('metadump');
const CRAWL = lit('crawl');
const TOCRAWL = lit('tocrawl');
const SLEEP = lit('sleep');
const ENABLE = lit('enable');
const DISABLE = lit('disable');
const ALL = lit('all');
const DETAIL = lit('detail');
const CACHEDUMP = lit('cachedump');
const ON = lit('on');
const OFF = lit('off');
const DUMP = lit('dump');
const ZERO = lit('0');
const SLABS = lit('slabs');
const WATCH = lit('watch');
const REASSIGN = lit('reassign');
const AUTOMOVE = lit('automove');
const RATIO = lit('ratio');


export class TextProtocol implements MetaHost {
  /** Bytes from `consumed` that must be present before execute() can go on (0: unknown). */
  wanted = 0;
  /** Set when the connection must close, after writing what is queued. */
  closing = false;
  /** execute() stopped early (-R reached, or replies piling up) with complete commands left. */
  yielded = false;
  closedOnError = false;
  watchKinds = 0;
  connectionId = 0;
  /** Where a metadump's lines go, set by a stream connection; null (UDP): listed at once. */
  metadumpClient: CrawlerClient | null = null;
  /** A metadump is under way: the crawler writes to the connection, and commands after it wait for its END. */
  dumping = false;
  /** Bytes of a refused data block still to be dropped as they arrive. */
  swallowing = 0;
  private noreply = false;
  /**
   * The current and the previous command were gets (no command yet counts as one).
   * Only UDP framing cares: see retrieve.
   */
  private isRetrieval = true;
  private afterRetrieval = true;
  /** Where the current command's name is in the buffer (for the latency family). */
  private nameStart = 0;
  private nameEnd = 0;

  private readonly meta: MetaCommands;
  /** -Y: nothing but the authentication `set` runs until it succeeds. */
  private authenticated: boolean;
  /** -o read_buf_mem_limit: response objects a batch may hold (response-limit.ts), and those it holds. */
  private readonly responseLimit: number;
  private responses = 0;

  constructor(
    private readonly ctx: ServerContext,
    private readonly out: OutputBuffer,
    /** -R: commands run per call before yielding. */
    private readonly commandsPerCall = ctx.config.reqsPerEvent,
    /** The connection's room for a data block still arriving; null (UDP): a datagram holds no partial value. */
    private readonly reservation: ValueReservation | null = null,
    responseLimit = responsesPerBatch(ctx.config),
  ) {
    this.meta = new MetaCommands(ctx, out, this);
    this.authenticated = ctx.asciiPasswords === null;
    this.responseLimit = responseLimit;
  }

  swallow(bytes: number): void {
    this.swallowing = bytes;
  }

  want(bytes: number): void {
    this.wanted = bytes;
  }

  reserve(bytes: number): boolean {
    return this.reservation === null || this.reservation.hold(bytes);
  }

  release(): void {
    this.reservation?.release();
  }

  /**
   * Runs the commands in buf[start, end). Returns the offset of the first byte
   * not consumed; bytes from there on must be passed again with more data.
   */
  execute(buf: Buffer, start: number, end: number): number {
    const consumed = this.runCommands(buf, start, end);
    // The batch's replies go to the socket now: its response objects are free again.
    this.ctx.counters.response_obj_count -= this.responses;
    this.responses = 0;
    return consumed;
  }

  /** Takes one response object for a reply; false (counted) when the batch has none left. */
  private takeResponse(): boolean {
    if (this.responses >= this.responseLimit) {
      this.ctx.counters.response_obj_oom++;
      return false;
    }
    this.responses++;
    this.ctx.counters.response_obj_count++;
    return true;
  }

  /** Drops the replies this batch stacked, freeing their response objects (memcached's conn_release_items). */
  private releaseResponses(): void {
    this.out.discard();
    this.ctx.counters.response_obj_count -= this.responses;
    this.responses = 0;
  }

  private runCommands(buf: Buffer, start: number, end: number): number {
    let pos = start;
    this.wanted = 0;
    this.yielded = false;
    if (this.swallowing > 0) {
      const dropped = Math.min(this.swallowing, end - pos);
      this.swallowing -= dropped;
      pos += dropped;
    }
    const limit = this.commandsPerCall;
    let commands = 0;
    while (pos < end && !this.closing && this.watchKinds === 0 && !this.dumping) {
      if (commands === limit || this.out.pendingBytes > OUTPUT_SOFT_CAP) {
        this.yielded = true;
        return pos;
      }
      commands++;
      const newline = buf.indexOf(LF, pos);
      if (newline === -1 || newline >= end) {
        if (end - pos > MAX_LINE_WITHOUT_NEWLINE && !this.mayBeLongGet(buf, pos, end)) {
          this.closing = true;
          this.closedOnError = true;
        }
        return pos;
      }
      if (!this.takeResponse()) {
        // No room for this command's reply: memcached closes, sending none of the stacked ones.
        this.releaseResponses();
        this.closing = true;
        this.closedOnError = true;
        return pos;
      }
      let lineEnd = newline;
      if (lineEnd - pos > 1 && buf[lineEnd - 1] === CR) lineEnd--;
      this.afterRetrieval = this.isRetrieval;
      this.isRetrieval = false;
      const latency = this.ctx.latency;
      const startedAt = latency.start();
      const next = this.authenticated
        ? this.command(buf, pos, lineEnd, newline + 1, end)
        : this.authenticate(buf, pos, lineEnd, newline + 1, end);
      if (next < 0) return pos;
      if (latency.enabled) latency.stop(textFamily(buf, this.nameStart, this.nameEnd), startedAt);
      this.out.endResponse();
      pos = next;
      if (this.swallowing > 0) {
        const dropped = Math.min(this.swallowing, end - pos);
        this.swallowing -= dropped;
        pos += dropped;
      }
    }
    return pos;
  }

  /** memcached lets only a line starting with "get " or "gets " grow past the limit. */
  private mayBeLongGet(buf: Buffer, pos: number, end: number): boolean {
    let p = pos;
    while (p < end && buf[p] === SP) p++;
    if (p - pos > 100) return false;
    return startsWith(buf, p, end, 'get ') || startsWith(buf, p, end, 'gets ');
  }

  /**
   * Runs one command line buf[lineStart, lineEnd); `next` is the byte after its
   * newline. Returns where the next command starts, or -1 when the command needs
   * bytes that have not arrived.
   */
  private command(buf: Buffer, lineStart: number, lineEnd: number, next: number, end: number): number {
    this.noreply = false;
    const ntokens = tokens.tokenize(buf, lineStart, lineEnd);
    if (ntokens < 2 || tokens.end[0]! - tokens.start[0]! < 2) {
      this.out.bytes(ERROR);
      return next;
    }
    const s = tokens.start[0]!;
    const e = tokens.end[0]!;
    this.nameStart = s;
    this.nameEnd = e;
    switch (buf[s]) {
      case 0x6d: // m: the meta commands are all two characters long
        if (e - s === 2) {
          switch (buf[s + 1]) {
            case 0x67: // mg
              return this.meta.get(buf, next);
            case 0x73: // ms
              return this.meta.set(buf, next, end);
            case 0x64: // md
              return this.meta.delete(buf, next);
            case 0x61: // ma
              return this.meta.arithmetic(buf, next);
            case 0x6e: // mn
              return this.meta.noop(next);
            case 0x65: // me
              return this.meta.debug(buf, next);
          }
          break;
        }
        return this.other(buf, s, e, next, end);
      case 0x67: // g
        if (bytesEqual(buf, s, e, GET)) return this.retrieve(buf, next, false, false);
        if (bytesEqual(buf, s, e, GETS)) return this.retrieve(buf, next, true, false);
        if (bytesEqual(buf, s, e, GAT)) return this.retrieve(buf, next, false, true);
        if (bytesEqual(buf, s, e, GATS)) return this.retrieve(buf, next, true, true);
        break;
      case 0x73: // s
        if (bytesEqual(buf, s, e, SET)) return this.update(buf, next, end, 'set');
        if (bytesEqual(buf, s, e, STATS)) return this.stats(buf, next);
        if (bytesEqual(buf, s, e, SHUTDOWN)) return this.shutdown(buf, next);
        if (bytesEqual(buf, s, e, SLABS)) return this.slabs(buf, next);
        break;
      case 0x61: // a
        if (bytesEqual(buf, s, e, ADD)) return this.update(buf, next, end, 'add');
        if (bytesEqual(buf, s, e, APPEND)) return this.update(buf, next, end, 'append');
        break;
      case 0x63: // c
        if (bytesEqual(buf, s, e, CAS)) return this.update(buf, next, end, 'cas');
        if (bytesEqual(buf, s, e, CACHE_MEMLIMIT)) return this.cacheMemlimit(buf, next);
        break;
      case 0x69: // i
        if (bytesEqual(buf, s, e, INCR)) return this.arithmetic(buf, next, true);
        break;
      case 0x64: // d
        if (bytesEqual(buf, s, e, DELETE)) return this.remove(buf, next);
        if (bytesEqual(buf, s, e, DECR)) return this.arithmetic(buf, next, false);
        if (this.ctx.config.testClock && bytesEqual(buf, s, e, DEBUGTIME)) return this.debugtime(buf, next);
        break;
      case 0x74: // t
        if (bytesEqual(buf, s, e, TOUCH)) return this.touch(buf, next);
        break;
      default:
        return this.other(buf, s, e, next, end);
    }
    this.out.bytes(ERROR);
    return next;
  }

  /** Commands whose first letter memcached does not switch on. */
  private other(buf: Buffer, s: number, e: number, next: number, end: number): number {
    if (bytesEqual(buf, s, e, REPLACE)) return this.update(buf, next, end, 'replace');
    if (bytesEqual(buf, s, e, PREPEND)) return this.update(buf, next, end, 'prepend');
    if (bytesEqual(buf, s, e, BGET)) return this.retrieve(buf, next, false, false);
    if (bytesEqual(buf, s, e, FLUSH_ALL)) return this.flushAll(buf, next);
    if (bytesEqual(buf, s, e, VERSION)) return this.version(next);
    if (bytesEqual(buf, s, e, QUIT)) {
      this.closing = true;
      return next;
    }
    if (bytesEqual(buf, s, e, VERBOSITY)) return this.verbosity(buf, next);
    if (bytesEqual(buf, s, e, LRU_CRAWLER)) return this.lruCrawler(buf, next);
    if (bytesEqual(buf, s, e, LRU)) return this.lru(buf, next);
    // An HTTP request sent to the cache port: hang up, as memcached does.
    const last = tokens.count - 2;
    if (startsWith(buf, tokens.start[last]!, tokens.end[last]!, 'HTTP/')) {
      this.closing = true;
      this.closedOnError = true;
      return next;
    }
    if (bytesEqual(buf, s, e, WATCH)) return this.watch(buf, next);
    this.out.bytes(ERROR);
    return next;
  }

  /**
   * memcached's ASCII authentication (-Y): the line must look like
   * `set <any> <flags> <exptime> <bytes>` and its data be `user pass`.
   */
  private authenticate(buf: Buffer, lineStart: number, lineEnd: number, next: number, end: number): number {
    const out = this.out;
    tokens.tokenize(buf, lineStart, lineEnd);
    const length = tokens.count >= 6 && bytesEqual(buf, tokens.start[0]!, tokens.end[0]!, SET) ? parseU32(buf, tokens.start[4]!, tokens.end[4]!) : NaN;
    if (Number.isNaN(length)) {
      out.ascii('CLIENT_ERROR unauthenticated\r\n');
      return next;
    }
    const dataEnd = next + length;
    if (dataEnd + 2 > end) {
      // Unauthenticated clients are held to the same bound as everyone's values.
      if (!this.reserve(length + 2)) {
        out.bytes(OUT_OF_MEMORY);
        this.swallowing = length + 2;
        return next;
      }
      this.wanted = dataEnd + 2;
      return -1;
    }
    this.release();
    if (buf[dataEnd] !== CR || buf[dataEnd + 1] !== LF) {
      out.ascii('CLIENT_ERROR bad command line termination\r\n');
      return dataEnd + 2;
    }
    tokens.tokenize(buf, next, dataEnd);
    if (tokens.count < 3) {
      out.ascii('CLIENT_ERROR bad authentication token format\r\n');
      return dataEnd + 2;
    }
    const user = buf.toString('utf8', tokens.start[0]!, tokens.end[0]!);
    this.authenticated = this.ctx.asciiPasswords!.check(user, buf.subarray(tokens.start[1]!, tokens.end[1]!));
    countAuthentication(this.ctx.counters, this.authenticated);
    if (this.authenticated) {
      out.bytes(STORED);
    } else {
      out.ascii('CLIENT_ERROR authentication failure\r\n');
    }
    return dataEnd + 2;
  }

  /** memcached's set_noreply_maybe: the last real token is "noreply". */
  private checkNoreply(buf: Buffer): boolean {
    const index = tokens.count - 2;
    if (bytesEqual(buf, tokens.start[index]!, tokens.end[index]!, NOREPLY)) this.noreply = true;
    return this.noreply;
  }

  /** Writes a reply line unless the command asked for noreply. */
  private answer(line: Buffer): void {
    if (this.noreply) {
      this.noreply = false;
      return;
    }
    this.out.bytes(line);
  }

  private retrieve(buf: Buffer, next: number, withCas: boolean, withTouch: boolean): number {
    if (tokens.count < 3) {
      this.out.bytes(ERROR);
      return next;
    }
    const ctx = this.ctx;
    const out = this.out;
    this.isRetrieval = true;
    let keyIndex = 1;
    let exptime = 0;
    if (withTouch) {
      exptime = parseI32(buf, tokens.start[1]!, tokens.end[1]!);
      if (Number.isNaN(exptime)) {
        out.bytes(BAD_EXPTIME);
        return next;
      }
      keyIndex = 2;
    }
    // memcached drops the replies of earlier keys when a later one is too long;
    // refusing the line before any lookup sends the same bytes.
    if (this.hasOverlongKey(buf, keyIndex)) {
      out.bytes(BAD_FORMAT);
      return next;
    }
    // gat/gats change expiry times: refused like every change while the disk refuses writes.
    if (withTouch && changesRefused(ctx.store)) {
      out.bytes(OUT_OF_MEMORY);
      return next;
    }
    const firstKey = tokens.start[keyIndex]!;
    const secondKey = tokens.start[keyIndex + 1]!;
    for (;;) {
      const last = tokens.count - 1;
      if (last - keyIndex > 1) ctx.store.prefetch(buf, tokens.start, tokens.end, keyIndex, last);
      for (; keyIndex < last; keyIndex++) {
        const ks = tokens.start[keyIndex]!;
        const ke = tokens.end[keyIndex]!;
        // memcached answers each key as a response of its own (UDP frames them apart); END joins the last.
        // An empty first one still gets a frame, unless a non-get command came before it in the datagram.
        if (ks !== firstKey) {
          out.endResponse(ks === secondKey && this.afterRetrieval);
          if (!this.takeResponse()) return this.getOutOfMemory(next);
        }
        const item = fetchItem(ctx, buf, ks, ke, withTouch, exptime, this.connectionId);
        if (item === null) continue;
        out.bytes(VALUE);
        out.slice(buf, ks, ke);
        out.byte(SPACE);
        out.decimal(item.flags);
        out.byte(SPACE);
        out.decimal(item.valueLength);
        if (withCas) {
          out.byte(SPACE);
          out.decimal(item.cas);
        }
        out.bytes(CRLF);
        out.storedValue(item);
        out.bytes(CRLF);
      }
      if (tokens.rest < 0) break;
      tokens.tokenize(buf, tokens.rest, tokens.lineEnd);
      keyIndex = 0;
    }
    out.bytes(END);
    return next;
  }

  /**
   * A multi-get ran out of response objects: as memcached, drop every reply the
   * batch stacked and answer with an error in place of the rest of the get.
   */
  private getOutOfMemory(next: number): number {
    this.releaseResponses();
    if (!this.takeResponse()) {
      this.closing = true;
      return next;
    }
    this.out.bytes(GET_OUT_OF_MEMORY);
    return next;
  }

  /** True when a key token from keyIndex on, in this round or the rest of the line, exceeds KEY_MAX_LENGTH. */
  private hasOverlongKey(buf: Buffer, keyIndex: number): boolean {
    if (tokens.longest > KEY_MAX_LENGTH) {
      for (let i = keyIndex; i < tokens.count - 1; i++) {
        if (tokens.end[i]! - tokens.start[i]! > KEY_MAX_LENGTH) return true;
      }
    }
    if (tokens.rest < 0) return false;
    let run = 0;
    for (let i = tokens.rest; i < tokens.lineEnd; i++) {
      if (buf[i] === SP) run = 0;
      else if (++run > KEY_MAX_LENGTH) return true;
    }
    return false;
  }

  private update(buf: Buffer, next: number, end: number, mode: StoreMode): number {
    const ntokens = tokens.count;
    const withCas = mode === 'cas';
    if (withCas ? ntokens !== 7 && ntokens !== 8 : ntokens !== 6 && ntokens !== 7) {
      this.out.bytes(ERROR);
      return next;
    }
    this.checkNoreply(buf);
    const ks = tokens.start[1]!;
    const ke = tokens.end[1]!;
    if (ke - ks > KEY_MAX_LENGTH) {
      this.answer(BAD_FORMAT);
      return next;
    }
    const flags = parseU32(buf, tokens.start[2]!, tokens.end[2]!);
    const exptime = parseI32(buf, tokens.start[3]!, tokens.end[3]!);
    const length = parseI32(buf, tokens.start[4]!, tokens.end[4]!);
    if (Number.isNaN(flags) || Number.isNaN(exptime) || Number.isNaN(length)) {
      this.answer(BAD_FORMAT);
      return next;
    }
    let casUnique = 0;
    if (withCas) {
      casUnique = parseCasUnique(buf, tokens.start[5]!, tokens.end[5]!);
      if (Number.isNaN(casUnique)) {
        this.answer(BAD_FORMAT);
        return next;
      }
    }
    if (length < 0 || length > 2147483645) {
      this.answer(BAD_FORMAT);
      return next;
    }
    const ctx = this.ctx;
    if (!valueFits(ctx, Wire.Text, mode, buf, ks, ke, length, flags, this.connectionId)) {
      this.answer(TOO_LARGE);
      this.swallowing = length + 2;
      return next;
    }
    const dataEnd = next + length;
    if (dataEnd + 2 > end) {
      if (!this.reserve(length + 2)) {
        refuseUnarrivedValue(ctx, Wire.Text, mode, buf, ks, ke);
        this.answer(OUT_OF_MEMORY);
        this.swallowing = length + 2;
        return next;
      }
      this.wanted = dataEnd + 2;
      return -1;
    }
    this.release();
    valueArrived(ctx);
    if (buf[dataEnd] !== CR || buf[dataEnd + 1] !== LF) {
      this.answer(BAD_DATA_CHUNK);
      return dataEnd + 2;
    }
    this.answer(STORE_REPLY[storeValue(ctx, Wire.Text, mode, buf, ks, ke, buf, next, dataEnd, flags, exptime, casUnique, 0, this.connectionId)]!);
    return dataEnd + 2;
  }

  private touch(buf: Buffer, next: number): number {
    if (tokens.count !== 4 && tokens.count !== 5) {
      this.out.bytes(ERROR);
      return next;
    }
    this.checkNoreply(buf);
    const ks = tokens.start[1]!;
    const ke = tokens.end[1]!;
    if (ke - ks > KEY_MAX_LENGTH) {
      this.answer(BAD_FORMAT);
      return next;
    }
    const exptime = parseI32(buf, tokens.start[2]!, tokens.end[2]!);
    if (Number.isNaN(exptime)) {
      this.answer(BAD_EXPTIME);
      return next;
    }
    this.answer(TOUCH_REPLY[touchItem(this.ctx, buf, ks, ke, exptime)]!);
    return next;
  }

  private arithmetic(buf: Buffer, next: number, incr: boolean): number {
    if (tokens.count !== 4 && tokens.count !== 5) {
      this.out.bytes(ERROR);
      return next;
    }
    this.checkNoreply(buf);
    const ks = tokens.start[1]!;
    const ke = tokens.end[1]!;
    if (ke - ks > KEY_MAX_LENGTH) {
      this.answer(BAD_FORMAT);
      return next;
    }
    const delta = parseU64(buf, tokens.start[2]!, tokens.end[2]!);
    if (delta === null) {
      this.answer(BAD_DELTA);
      return next;
    }
    switch (applyDelta(this.ctx, buf, ks, ke, delta, incr, 0, false, 0n, 0, false)) {
      case DeltaOutcome.Changed:
        if (this.noreply) this.noreply = false;
        else {
          this.out.decimal64(deltaResult.value);
          this.out.bytes(CRLF);
        }
        break;
      case DeltaOutcome.NotFound:
        this.answer(NOT_FOUND);
        break;
      case DeltaOutcome.NonNumeric:
        this.answer(NON_NUMERIC);
        break;
      default:
        this.answer(DELTA_OUT_OF_MEMORY);
    }
    return next;
  }

  private remove(buf: Buffer, next: number): number {
    const ntokens = tokens.count;
    if (ntokens < 3 || ntokens > 5) {
      this.out.bytes(ERROR);
      return next;
    }
    if (ntokens > 3) {
      // Only "delete <key> 0" survives from the old delete-with-hold-time syntax.
      const holdIsZero = bytesEqual(buf, tokens.start[2]!, tokens.end[2]!, ZERO);
      const setsNoreply = this.checkNoreply(buf);
      const valid = (ntokens === 4 && (holdIsZero || setsNoreply)) || (ntokens === 5 && holdIsZero && setsNoreply);
      if (!valid) {
        this.answer(DELETE_USAGE);
        return next;
      }
    }
    const ks = tokens.start[1]!;
    const ke = tokens.end[1]!;
    if (ke - ks > KEY_MAX_LENGTH) {
      this.answer(BAD_FORMAT);
      return next;
    }
    this.answer(DELETE_REPLY[deleteItem(this.ctx, Wire.Text, buf, ks, ke, false, 0, false, false, 0)]!);
    return next;
  }

  private flushAll(buf: Buffer, next: number): number {
    const ntokens = tokens.count;
    if (ntokens > 4) {
      this.out.bytes(ERROR);
      return next;
    }
    this.checkNoreply(buf);
    if (mayFlush(this.ctx, Wire.Text) === FlushOutcome.NotAllowed) {
      this.answer(FLUSH_NOT_ALLOWED);
      return next;
    }
    let delay = 0;
    if (ntokens !== (this.noreply ? 3 : 2)) {
      delay = parseI32(buf, tokens.start[1]!, tokens.end[1]!);
      if (Number.isNaN(delay)) {
        this.answer(BAD_EXPTIME);
        return next;
      }
    }
    this.answer(flush(this.ctx, Wire.Text, delay) === FlushOutcome.Flushed ? OK : OUT_OF_MEMORY);
    return next;
  }

  /** `debugtime <seconds>` (only with --test-clock): moves the clock forward, running the expiry sweep. */
  private debugtime(buf: Buffer, next: number): number {
    const seconds = tokens.count === 3 ? parseI32(buf, tokens.start[1]!, tokens.end[1]!) : NaN;
    if (Number.isNaN(seconds) || seconds < 0) {
      this.out.bytes(ERROR);
      return next;
    }
    this.ctx.clock.advance(seconds);
    this.out.bytes(OK);
    return next;
  }

  private version(next: number): number {
    this.out.ascii(`VERSION ${this.ctx.version}\r\n`);
    return next;
  }

  private verbosity(buf: Buffer, next: number): number {
    if (tokens.count !== 3 && tokens.count !== 4) {
      this.out.bytes(ERROR);
      return next;
    }
    this.checkNoreply(buf);
    const level = parseU32(buf, tokens.start[1]!, tokens.end[1]!);
    if (Number.isNaN(level)) {
      this.answer(BAD_FORMAT);
      return next;
    }
    this.ctx.setVerbosity(Math.min(level, 2));
    this.answer(OK);
    return next;
  }

  private stats(buf: Buffer, next: number): number {
    const ntokens = tokens.count;
    const out = this.out;
    if (ntokens === 2) {
      writeStats(out, statsPairs(this.ctx, '')!);
      out.bytes(END);
      return next;
    }
    const s = tokens.start[1]!;
    const e = tokens.end[1]!;
    if (bytesEqual(buf, s, e, RESET_WORD)) {
      resetStats(this.ctx);
      out.bytes(RESET);
      return next;
    }
    if (bytesEqual(buf, s, e, DETAIL)) return this.statsDetail(buf, next);
    if (bytesEqual(buf, s, e, CACHEDUMP)) return this.cachedump(buf, next);
    const pairs = statsPairs(this.ctx, buf.toString('latin1', s, e));
    if (pairs === null || s === e) {
      out.bytes(ERROR);
      return next;
    }
    writeStats(out, pairs);
    out.bytes(END);
    return next;
  }

  private statsDetail(buf: Buffer, next: number): number {
    const prefixStats = this.ctx.prefixStats;
    const s = tokens.start[2]!;
    const e = tokens.end[2]!;
    if (tokens.count < 4) {
      this.out.bytes(DETAIL_USAGE);
    } else if (bytesEqual(buf, s, e, ON)) {
      prefixStats.enabled = true;
      this.out.bytes(OK);
    } else if (bytesEqual(buf, s, e, OFF)) {
      prefixStats.enabled = false;
      this.out.bytes(OK);
    } else if (bytesEqual(buf, s, e, DUMP)) {
      this.out.ascii(prefixStats.dump());
    } else {
      this.out.bytes(DETAIL_USAGE);
    }
    return next;
  }

  /** `stats cachedump <class> <limit>`: keys of one size class, as memcached lists them. */
  private cachedump(buf: Buffer, next: number): number {
    if (!this.ctx.config.dumpingEnabled) {
      this.out.bytes(CACHEDUMP_NOT_ALLOWED);
      return next;
    }
    if (tokens.count < 5) {
      this.out.bytes(BAD_COMMAND_LINE);
      return next;
    }
    const id = parseU32(buf, tokens.start[2]!, tokens.end[2]!);
    const limit = parseU32(buf, tokens.start[3]!, tokens.end[3]!);
    if (Number.isNaN(id) || Number.isNaN(limit)) {
      this.out.bytes(BAD_FORMAT);
      return next;
    }
    if (id >= 64) {
      this.out.bytes(ILLEGAL_SLAB_ID);
      return next;
    }
    let shown = 0;
    this.ctx.store.dump((item) => {
      if (item.sizeClass !== id) return true;
      const exptime = item.exptime === 0 ? this.ctx.clock.started : item.exptime;
      this.out.ascii(`ITEM ${item.key} [${item.valueLength} b; ${exptime} s]\r\n`);
      return limit === 0 || ++shown < limit;
    });
    this.out.bytes(END);
    return next;
  }

  private shutdown(buf: Buffer, next: number): number {
    if (!this.ctx.config.shutdownEnabled) {
      this.out.bytes(SHUTDOWN_NOT_ENABLED);
      return next;
    }
    if (tokens.count === 2) {
      this.closing = true;
      this.ctx.requestShutdown(false);
    } else if (tokens.count === 3 && bytesEqual(buf, tokens.start[1]!, tokens.end[1]!, GRACEFUL)) {
      this.closing = true;
      this.ctx.requestShutdown(true);
    } else {
      this.out.bytes(BAD_SHUTDOWN_MODE);
    }
    return next;
  }

  /**
   * `watch [fetchers|mutations|evictions|connevents|…]` (no argument: fetchers):
   * answers OK, after which the connection receives memcached's log lines and is
   * read no more. Kinds Mnemo has no events for (rawcmds, sysevents, proxy*) are
   * accepted and stay silent.
   */
  private watch(buf: Buffer, next: number): number {
    if (!this.ctx.config.watchEnabled) {
      this.out.bytes(WATCH_NOT_ALLOWED);
      return next;
    }
    if (this.responses > 1) {
      this.out.bytes(WATCH_AFTER_OTHERS);
      return next;
    }
    let kinds = 0;
    if (tokens.count > 2) {
      for (let i = 1; i < tokens.count - 1; i++) {
        const kind = WATCH_KINDS[buf.toString('latin1', tokens.start[i]!, tokens.end[i]!)];
        if (kind === undefined) {
          this.out.bytes(ERROR);
          return next;
        }
        kinds |= kind;
      }
    } else {
      kinds = LogKind.Fetchers;
    }
    if (this.ctx.logStream.watcherCount >= MAX_WATCHERS) {
      this.out.bytes(WATCHER_TOO_MANY);
      return next;
    }
    this.out.bytes(OK);
    // A watcher of silent kinds only still becomes a watcher (nothing is read from it any more).
    this.watchKinds = kinds | 0x100;
    return next;
  }

  /**
   * `slabs reassign <src> <dst>` and `slabs automove <0|1|2>|ratio <r>`, checked and
   * answered as memcached's process_slabs_command. The slab store's mover does the
   * move (in the background: OK means it started).
   */
  private slabs(buf: Buffer, next: number): number {
    const ntokens = tokens.count;
    const out = this.out;
    const sub = 1;
    const rebalancer = this.ctx.slabRebalancer;
    if (ntokens === 5 && tokens.is(buf, sub, REASSIGN)) {
      if (!rebalancer.settings.reassign) {
        out.bytes(REASSIGN_DISABLED);
        return next;
      }
      const src = parseI32(buf, tokens.start[2]!, tokens.end[2]!);
      const dst = parseI32(buf, tokens.start[3]!, tokens.end[3]!);
      if (Number.isNaN(src) || Number.isNaN(dst)) out.bytes(BAD_FORMAT);
      else out.bytes(REASSIGN_REPLIES[rebalancer.reassign(src, dst)]!);
      return next;
    }
    if (ntokens >= 4 && tokens.is(buf, sub, AUTOMOVE)) {
      this.checkNoreply(buf);
      if (tokens.is(buf, 2, RATIO)) {
        const ratio = ntokens < 5 ? NaN : Number(buf.toString('latin1', tokens.start[3]!, tokens.end[3]!));
        if (tokens.length(3) === 0 || !Number.isFinite(ratio)) {
          this.answer(ERROR);
          return next;
        }
        rebalancer.settings.ratio = ratio;
      } else {
        const level = parseU32(buf, tokens.start[2]!, tokens.end[2]!);
        if (Number.isNaN(level)) {
          this.answer(BAD_FORMAT);
          return next;
        }
        if (level > 2) {
          this.answer(ERROR);
          return next;
        }
        rebalancer.settings.automove = level;
      }
      this.answer(OK);
      return next;
    }
    out.bytes(ERROR);
    return next;
  }

  /**
   * `lru tune <hot pct> <warm pct> <hot factor> <warm factor>`, `lru mode
   * flat|segmented` and `lru temp_ttl <ttl>` (a negative ttl turns TEMP off),
   * as memcached's process_lru_command; mode and temp_ttl only while the
   * maintainer runs. The store acts on the new settings from its next item.
   */
  private lru(buf: Buffer, next: number): number {
    const ntokens = tokens.count;
    this.checkNoreply(buf);
    const settings = this.ctx.store.lru.settings;
    const maintainer = settings.maintainer;
    if (ntokens >= 7 && tokens.is(buf, 1, TUNE)) {
      const hot = parseU32(buf, tokens.start[2]!, tokens.end[2]!);
      const warm = parseU32(buf, tokens.start[3]!, tokens.end[3]!);
      const hotFactor = parseDouble(buf, tokens.start[4]!, tokens.end[4]!);
      const warmFactor = parseDouble(buf, tokens.start[5]!, tokens.end[5]!);
      if (Number.isNaN(hot) || Number.isNaN(warm) || Number.isNaN(hotFactor) || Number.isNaN(warmFactor)) this.answer(ERROR);
      else if (hot + warm > 80) this.answer(LRU_PCTS_TOO_HIGH);
      else if (warmFactor <= 0 || hotFactor <= 0) this.answer(LRU_FACTORS_TOO_LOW);
      else {
        settings.hotLruPct = hot;
        settings.warmLruPct = warm;
        settings.hotMaxFactor = hotFactor;
        settings.warmMaxFactor = warmFactor;
        this.answer(OK);
      }
    } else if (maintainer && ntokens >= 4 && tokens.is(buf, 1, MODE)) {
      if (tokens.is(buf, 2, FLAT)) {
        settings.segmented = false;
        this.answer(OK);
      } else if (tokens.is(buf, 2, SEGMENTED)) {
        settings.segmented = true;
        this.answer(OK);
      } else {
        this.answer(ERROR);
      }
    } else if (maintainer && ntokens >= 4 && tokens.is(buf, 1, TEMP_TTL)) {
      const ttl = parseI32(buf, tokens.start[2]!, tokens.end[2]!);
      if (Number.isNaN(ttl)) {
        this.answer(ERROR);
      } else {
        if (ttl < 0) {
          settings.tempLru = false;
        } else {
          settings.tempLru = true;
          settings.temporaryTtl = ttl;
        }
        this.answer(OK);
      }
    } else {
      this.answer(ERROR);
    }
    return next;
  }

  private cacheMemlimit(buf: Buffer, next: number): number {
    if (tokens.count !== 3 && tokens.count !== 4) {
      this.out.bytes(ERROR);
      return next;
    }
    this.checkNoreply(buf);
    const megabytes = parseU32(buf, tokens.start[1]!, tokens.end[1]!);
    if (Number.isNaN(megabytes)) {
      this.answer(ERROR);
    } else if (megabytes < 8) {
      this.answer(MEMLIMIT_TOO_SMALL);
    } else if (megabytes > 1_000_000_000) {
      this.answer(MEMLIMIT_NOT_BYTES);
    } else if (this.ctx.store.setMemoryLimit(megabytes * 1024 * 1024)) {
      this.answer(OK);
    } else {
      this.answer(MEMLIMIT_FAILED);
    }
    return next;
  }

  /**
   * `lru_crawler crawl|metadump <classes>`, `tocrawl <n>`, `sleep <µs>`,
   * `enable`, `disable`, answered as memcached's process_lru_crawler_command.
   */
  private lruCrawler(buf: Buffer, next: number): number {
    const ntokens = tokens.count;
    const out = this.out;
    const crawler = this.ctx.store.crawler;
    if (ntokens === 4 && tokens.is(buf, 1, CRAWL)) {
      if (!crawler.enabled) out.bytes(CRAWLER_DISABLED);
      else out.bytes(crawlStartReply(crawler.crawl(buf.toString('latin1', tokens.start[2]!, tokens.end[2]!))));
      return next;
    }
    if (ntokens === 4 && tokens.is(buf, 1, METADUMP)) {
      if (!crawler.enabled) out.bytes(CRAWLER_DISABLED);
      else if (!this.ctx.config.dumpingEnabled) out.bytes(METADUMP_NOT_ALLOWED);
      else if (this.responses > 1) out.bytes(METADUMP_AFTER_OTHERS);
      else if (this.metadumpClient === null) this.metadumpAtOnce(buf);
      else {
        const started = crawler.metadump(buf.toString('latin1', tokens.start[2]!, tokens.end[2]!), this.metadumpClient);
        // Started: no reply now; the lines and END follow from the crawler.
        if (started === 'ok') this.dumping = true;
        else out.bytes(crawlStartReply(started));
      }
      return next;
    }
    if (ntokens === 4 && tokens.is(buf, 1, TOCRAWL)) {
      const tocrawl = parseU32(buf, tokens.start[2]!, tokens.end[2]!);
      if (Number.isNaN(tocrawl)) out.bytes(BAD_FORMAT);
      else {
        crawler.tocrawl = tocrawl;
        out.bytes(OK);
      }
      return next;
    }
    if (ntokens === 4 && tokens.is(buf, 1, SLEEP)) {
      const sleep = parseU32(buf, tokens.start[2]!, tokens.end[2]!);
      if (Number.isNaN(sleep)) out.bytes(BAD_FORMAT);
      else if (sleep > 1_000_000) out.bytes(CRAWLER_SLEEP_TOO_LONG);
      else {
        crawler.sleep = sleep;
        out.bytes(OK);
      }
      return next;
    }
    if (ntokens === 3 && tokens.is(buf, 1, ENABLE)) {
      out.bytes(crawler.enable() ? OK : CRAWLER_START_FAILED);
      return next;
    }
    if (ntokens === 3 && tokens.is(buf, 1, DISABLE)) {
      crawler.disable();
      out.bytes(OK);
      return next;
    }
    out.bytes(ERROR);
    return next;
  }

  /** A metadump where no crawler can write later (UDP): every item now. */
  private metadumpAtOnce(buf: Buffer): void {
    const all = tokens.is(buf, 2, ALL);
    const which = all ? 0 : parseU32(buf, tokens.start[2]!, tokens.end[2]!);
    if (Number.isNaN(which) || which < 1 && !all || which >= 64) {
      this.out.bytes(BADCLASS);
      return;
    }
    writeMetadump(this.ctx, this.out, which);
    this.out.bytes(END);
  }
}

/** memcached's replies to each crawler_result_type. */
function crawlStartReply(started: CrawlStart): Buffer {
  switch (started) {
    case 'ok':
      return OK;
    case 'busy':
      return CRAWLER_BUSY;
    case 'badclass':
      return BADCLASS;
    case 'notstarted':
      return CRAWLER_NOTSTARTED;
    case 'error':
      return CRAWLER_ERROR;
  }
}
