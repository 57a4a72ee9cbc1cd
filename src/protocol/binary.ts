import type { ServerContext } from '../server/context.js';
import { binaryFamily } from '../observe/latency.js';
import { OUTPUT_SOFT_CAP, type OutputBuffer } from '../server/output.js';
import type { ValueReservation } from '../server/partial-values.js';
import type { ItemView, StoreMode } from '../store/store.js';
import { statsPairs } from './stats-text.js';
import { KEY_MAX_LENGTH } from './limits.js';
import { responsesPerBatch } from '../server/response-limit.js';
import type { Protocol } from './protocol.js';
import type { SaslAuthenticator } from './sasl.js';
import { Wire } from '../commands/wire.js';
import { refuseUnarrivedValue, StoreOutcome, storeValue, valueArrived, valueFits, withCas } from '../commands/storage.js';
import { fetchItem } from '../commands/retrieval.js';
import { applyDelta, DeltaOutcome, deltaResult } from '../commands/arithmetic.js';
import { DeleteOutcome, deleteItem, flush, FlushOutcome, mayFlush } from '../commands/delete-touch.js';
import { changesRefused } from '../commands/refusal.js';
import { countAuthentication, resetStats } from '../commands/admin.js';

/**
 * memcached's binary protocol (deprecated upstream, still the default of
 * php-memcached sessions, memjs and others): 24-byte headers, quiet variants
 * that answer only on error, status codes and error texts as proto_bin.c sends them.
 */

const HEADER = 24;
const REQUEST_MAGIC = 0x80;
const RESPONSE_MAGIC = 0x81;

export const Opcode = {
  Get: 0x00, Set: 0x01, Add: 0x02, Replace: 0x03, Delete: 0x04, Increment: 0x05, Decrement: 0x06,
  Quit: 0x07, Flush: 0x08, GetQ: 0x09, Noop: 0x0a, Version: 0x0b, GetK: 0x0c, GetKQ: 0x0d,
  Append: 0x0e, Prepend: 0x0f, Stat: 0x10, SetQ: 0x11, AddQ: 0x12, ReplaceQ: 0x13, DeleteQ: 0x14,
  IncrementQ: 0x15, DecrementQ: 0x16, QuitQ: 0x17, FlushQ: 0x18, AppendQ: 0x19, PrependQ: 0x1a,
  Verbosity: 0x1b, Touch: 0x1c, Gat: 0x1d, GatQ: 0x1e, SaslListMechs: 0x20, SaslAuth: 0x21,
  SaslStep: 0x22, GatK: 0x23, GatKQ: 0x24,
} as const;

export const Status = {
  Ok: 0x00, KeyNotFound: 0x01, KeyExists: 0x02, TooLarge: 0x03, InvalidArguments: 0x04,
  NotStored: 0x05, NonNumeric: 0x06, AuthError: 0x20, AuthContinue: 0x21,
  UnknownCommand: 0x81, OutOfMemory: 0x82,
} as const;

const ERROR_TEXT: Record<number, Buffer> = {
  [Status.OutOfMemory]: Buffer.from('Out of memory'),
  [Status.UnknownCommand]: Buffer.from('Unknown command'),
  [Status.KeyNotFound]: Buffer.from('Not found'),
  [Status.InvalidArguments]: Buffer.from('Invalid arguments'),
  [Status.KeyExists]: Buffer.from('Data exists for key.'),
  [Status.TooLarge]: Buffer.from('Too large.'),
  [Status.NonNumeric]: Buffer.from('Non-numeric server-side value for incr or decr'),
  [Status.NotStored]: Buffer.from('Not stored.'),
  [Status.AuthError]: Buffer.from('Auth failure.'),
};

/** memcached's text when item_alloc fails for a set (out_of_memory strips "SERVER_ERROR "). */
const ALLOCATION_FAILED = Buffer.from('Out of memory allocating item');

/** Quiet opcodes and the command they are a quiet form of. */
const QUIET_OF: Record<number, number> = {
  [Opcode.SetQ]: Opcode.Set, [Opcode.AddQ]: Opcode.Add, [Opcode.ReplaceQ]: Opcode.Replace,
  [Opcode.DeleteQ]: Opcode.Delete, [Opcode.IncrementQ]: Opcode.Increment, [Opcode.DecrementQ]: Opcode.Decrement,
  [Opcode.QuitQ]: Opcode.Quit, [Opcode.FlushQ]: Opcode.Flush, [Opcode.AppendQ]: Opcode.Append,
  [Opcode.PrependQ]: Opcode.Prepend, [Opcode.GetQ]: Opcode.Get, [Opcode.GetKQ]: Opcode.GetK,
  [Opcode.GatQ]: Opcode.Gat, [Opcode.GatKQ]: Opcode.GatK,
};

const NO_EXPIRY_CREATE = 0xffffffff;

export class BinaryProtocol implements Protocol {
  wanted = 0;
  closing = false;
  yielded = false;
  swallowing = 0;
  closedOnError = false;
  /** `watch` is a text command: a binary connection never becomes a watcher. */
  readonly watchKinds = 0;
  connectionId = 0;
  /** Request fields of the command being answered. */
  private opcode = 0;
  private opaque = 0;
  private quiet = false;
  /** Response objects the running batch holds. */
  private responses = 0;
  private readonly header = Buffer.alloc(HEADER);
  private readonly scratch = Buffer.alloc(20);
  /** The 8-byte body of an incr/decr reply, a view of scratch made once. */
  private readonly counterBody = this.scratch.subarray(0, 8);

  constructor(
    private readonly ctx: ServerContext,
    private readonly out: OutputBuffer,
    private readonly sasl: SaslAuthenticator | null,
    private readonly commandsPerCall = ctx.config.reqsPerEvent,
    /** The connection's room for a value still arriving (partial-values.ts). */
    private readonly reservation: ValueReservation | null = null,
    /** -o read_buf_mem_limit: response objects a batch may hold (response-limit.ts). */
    private readonly responseLimit = responsesPerBatch(ctx.config),
  ) {}

  execute(buf: Buffer, start: number, end: number): number {
    const consumed = this.runCommands(buf, start, end);
    // The batch's replies go to the socket now: its response objects are free again.
    this.ctx.counters.response_obj_count -= this.responses;
    this.responses = 0;
    return consumed;
  }

  private runCommands(buf: Buffer, start: number, end: number): number {
    let pos = start;
    this.wanted = 0;
    this.yielded = false;
    let commands = 0;
    for (;;) {
      if (this.swallowing > 0) {
        const dropped = Math.min(this.swallowing, end - pos);
        this.swallowing -= dropped;
        pos += dropped;
      }
      if (pos >= end || this.closing) return pos;
      if (commands === this.commandsPerCall || this.out.pendingBytes > OUTPUT_SOFT_CAP) {
        this.yielded = true;
        return pos;
      }
      if (end - pos < HEADER) return pos;
      if (buf[pos] !== REQUEST_MAGIC) {
        // Not a request: memcached drops the connection without a reply.
        this.closing = true;
        this.closedOnError = true;
        return pos;
      }
      const extlen = buf[pos + 4]!;
      const keylen = buf.readUInt16BE(pos + 2);
      const bodylen = buf.readUInt32BE(pos + 8);
      // Like memcached, act once header, extras and key are here; a value is awaited by the command.
      if (end - pos < HEADER + extlen + keylen) {
        this.wanted = pos - start + HEADER + extlen + keylen;
        return pos;
      }
      if (this.responses >= this.responseLimit) {
        // No room for this request's reply: memcached closes, sending none of the stacked ones.
        this.ctx.counters.response_obj_oom++;
        this.out.discard();
        this.closing = true;
        return pos;
      }
      this.responses++;
      this.ctx.counters.response_obj_count++;
      const latency = this.ctx.latency;
      const startedAt = latency.start();
      const next = this.command(buf, pos, end, extlen, keylen, bodylen);
      if (next < 0) return pos;
      if (latency.enabled) latency.stop(binaryFamily(buf[pos + 1]!), startedAt);
      this.out.endResponse();
      commands++;
      pos = next;
    }
  }

  /** Runs one request at pos. Returns where the next starts, or -1 when its value has not arrived. */
  private command(buf: Buffer, pos: number, end: number, extlen: number, keylen: number, bodylen: number): number {
    const raw = buf[pos + 1]!;
    this.opaque = buf.readUInt32BE(pos + 12);
    const cas = readCas(buf, pos + 16);
    const extras = pos + HEADER;
    const keyStart = extras + extlen;
    const keyEnd = keyStart + keylen;
    const afterKey = keyEnd;
    this.opcode = raw;

    if (keylen > bodylen || keylen + extlen > bodylen) {
      this.error(Status.UnknownCommand);
      this.closing = true;
      return afterKey;
    }
    if (this.sasl !== null && !this.sasl.authenticated && !isAuthFree(raw)) {
      this.error(Status.AuthError);
      this.closing = true;
      return afterKey;
    }
    const plain = QUIET_OF[raw];
    this.quiet = plain !== undefined;
    const op = plain ?? raw;
    if (keylen > KEY_MAX_LENGTH) return this.protocolError(afterKey);

    switch (op) {
      case Opcode.Version:
        if (extlen !== 0 || keylen !== 0 || bodylen !== 0) return this.protocolError(afterKey);
        this.respond(Status.Ok, 0, 0, Buffer.from(this.ctx.version), 0);
        return afterKey;
      case Opcode.Noop:
        if (extlen !== 0 || keylen !== 0 || bodylen !== 0) return this.protocolError(afterKey);
        this.respond(Status.Ok, 0, 0, null, 0);
        return afterKey;
      case Opcode.Quit:
        if (extlen !== 0 || keylen !== 0 || bodylen !== 0) return this.protocolError(afterKey);
        if (!this.quiet) this.respond(Status.Ok, 0, 0, null, 0);
        this.closing = true;
        return afterKey;
      case Opcode.Flush: {
        if (keylen !== 0 || bodylen !== extlen || (extlen !== 0 && extlen !== 4)) return this.protocolError(afterKey);
        if (mayFlush(this.ctx, Wire.Binary) === FlushOutcome.NotAllowed) {
          this.error(Status.AuthError);
          return afterKey;
        }
        if (flush(this.ctx, Wire.Binary, extlen === 4 ? buf.readUInt32BE(extras) : 0) === FlushOutcome.Refused) {
          this.error(Status.OutOfMemory);
          return afterKey;
        }
        this.success(0, 0, null, 0);
        return afterKey;
      }
      case Opcode.Set:
      case Opcode.Add:
      case Opcode.Replace:
        if (extlen !== 8 || keylen === 0 || bodylen < keylen + 8) return this.protocolError(afterKey);
        return this.update(buf, pos, end, op, keyStart, keyEnd, bodylen - keylen - extlen, cas, buf.readUInt32BE(extras), buf.readUInt32BE(extras + 4));
      case Opcode.Append:
      case Opcode.Prepend:
        if (keylen === 0 || extlen !== 0) return this.protocolError(afterKey);
        return this.update(buf, pos, end, op, keyStart, keyEnd, bodylen - keylen, cas, 0, 0);
      case Opcode.Get:
      case Opcode.GetK:
        if (extlen !== 0 || bodylen !== keylen || keylen === 0) return this.protocolError(afterKey);
        this.retrieve(buf, keyStart, keyEnd, op === Opcode.GetK, false, 0);
        return afterKey;
      case Opcode.Touch:
      case Opcode.Gat:
      case Opcode.GatK:
        if (extlen !== 4 || keylen === 0) return this.protocolError(afterKey);
        this.retrieve(buf, keyStart, keyEnd, op === Opcode.GatK, true, buf.readUInt32BE(extras));
        return afterKey;
      case Opcode.Delete:
        if (keylen === 0 || extlen !== 0 || bodylen !== keylen) return this.protocolError(afterKey);
        this.remove(buf, keyStart, keyEnd, cas);
        return afterKey;
      case Opcode.Increment:
      case Opcode.Decrement:
        if (keylen === 0 || extlen !== 20 || bodylen !== keylen + extlen) return this.protocolError(afterKey);
        this.arithmetic(buf, extras, keyStart, keyEnd, op === Opcode.Increment, cas);
        return afterKey;
      case Opcode.Stat:
        if (extlen !== 0) return this.protocolError(afterKey);
        this.stat(buf, keyStart, keyEnd);
        return afterKey;
      case Opcode.SaslListMechs:
        if (extlen !== 0 || keylen !== 0 || bodylen !== 0) return this.protocolError(afterKey);
        if (this.sasl === null) return this.unknown(afterKey, bodylen - keylen);
        this.success(0, 0, Buffer.from(this.sasl.mechanisms), 0);
        return afterKey;
      case Opcode.SaslAuth:
      case Opcode.SaslStep:
        if (extlen !== 0 || keylen === 0) return this.protocolError(afterKey);
        if (this.sasl === null) return this.unknown(afterKey, bodylen - keylen);
        return this.saslAuth(buf, pos, end, keyStart, keyEnd, bodylen - keylen);
      default:
        // memcached 1.6 knows no other opcode (verbosity included) and answers "Unknown command".
        return this.unknown(afterKey, bodylen - keylen - extlen);
    }
  }

  private update(
    buf: Buffer, pos: number, end: number, op: number,
    keyStart: number, keyEnd: number, valueLength: number, cas: number, flags: number, exptime: number,
  ): number {
    const ctx = this.ctx;
    const valueStart = keyEnd;
    const valueEnd = valueStart + valueLength;
    let mode: StoreMode;
    switch (op) {
      case Opcode.Add:
        mode = 'add';
        break;
      case Opcode.Replace:
        mode = 'replace';
        break;
      case Opcode.Append:
        mode = 'append';
        break;
      case Opcode.Prepend:
        mode = 'prepend';
        break;
      default:
        mode = 'set';
    }
    if (!valueFits(ctx, Wire.Binary, mode, buf, keyStart, keyEnd, valueLength, flags, this.connectionId)) {
      this.error(Status.TooLarge);
      this.swallowing = valueLength;
      return valueStart;
    }
    if (valueEnd > end) {
      if (this.reservation !== null && !this.reservation.hold(valueLength)) {
        refuseUnarrivedValue(ctx, Wire.Binary, mode, buf, keyStart, keyEnd);
        this.respond(Status.OutOfMemory, 0, 0, ALLOCATION_FAILED, 0);
        this.swallowing = valueLength;
        return valueStart;
      }
      this.wanted = valueEnd - pos;
      return -1;
    }
    this.reservation?.release();
    valueArrived(ctx);
    mode = withCas(Wire.Binary, mode, cas !== 0);
    switch (storeValue(ctx, Wire.Binary, mode, buf, keyStart, keyEnd, buf, valueStart, valueEnd, flags, exptime, cas, 0, this.connectionId)) {
      case StoreOutcome.Stored:
        this.success(0, 0, null, ctx.store.lastCas);
        break;
      case StoreOutcome.Exists:
        this.error(Status.KeyExists);
        break;
      case StoreOutcome.NotFound:
        this.error(Status.KeyNotFound);
        break;
      case StoreOutcome.NoMemory:
        this.error(Status.OutOfMemory);
        break;
      default:
        // memcached reports a refused add as "exists" and a refused replace as "not found".
        this.error(op === Opcode.Add ? Status.KeyExists : op === Opcode.Replace ? Status.KeyNotFound : Status.NotStored);
    }
    return valueEnd;
  }

  private retrieve(buf: Buffer, keyStart: number, keyEnd: number, withKey: boolean, touch: boolean, exptime: number): void {
    if (touch && changesRefused(this.ctx.store)) {
      this.error(Status.OutOfMemory);
      return;
    }
    const item = fetchItem(this.ctx, buf, keyStart, keyEnd, touch, exptime, this.connectionId);
    if (item === null) {
      if (this.quiet) return;
      if (withKey) this.respond(Status.KeyNotFound, 0, keyEnd - keyStart, buf.subarray(keyStart, keyEnd), 0);
      else this.error(Status.KeyNotFound);
      return;
    }
    this.sendItem(item, withKey ? buf.subarray(keyStart, keyEnd) : null, this.opcode !== Opcode.Touch);
  }

  /** A hit: flags as extras, then the key if asked for, then the value unless this is a touch. */
  private sendItem(item: ItemView, key: Buffer | null, withValue: boolean): void {
    const keyLength = key === null ? 0 : key.length;
    const bodyLength = 4 + keyLength + (withValue ? item.valueLength : 0);
    this.writeHeader(Status.Ok, 4, keyLength, bodyLength, item.cas);
    this.scratch.writeUInt32BE(item.flags, 0);
    this.out.slice(this.scratch, 0, 4);
    if (key !== null) this.out.bytes(key);
    if (withValue) this.out.storedValue(item);
  }

  private remove(buf: Buffer, keyStart: number, keyEnd: number, cas: number): void {
    switch (deleteItem(this.ctx, Wire.Binary, buf, keyStart, keyEnd, cas !== 0, cas, false, false, 0)) {
      case DeleteOutcome.Deleted:
        this.success(0, 0, null, 0);
        break;
      case DeleteOutcome.NotFound:
        this.error(Status.KeyNotFound);
        break;
      case DeleteOutcome.Exists:
        this.error(Status.KeyExists);
        break;
      default:
        this.error(Status.OutOfMemory);
    }
  }

  private arithmetic(buf: Buffer, extras: number, keyStart: number, keyEnd: number, incr: boolean, cas: number): void {
    const delta = buf.readBigUInt64BE(extras);
    const initial = buf.readBigUInt64BE(extras + 8);
    const expiration = buf.readUInt32BE(extras + 16);
    const create = expiration !== NO_EXPIRY_CREATE;
    switch (applyDelta(this.ctx, buf, keyStart, keyEnd, delta, incr, cas, create, initial, expiration, false)) {
      case DeltaOutcome.Changed:
      case DeltaOutcome.Created:
        break;
      case DeltaOutcome.NotFound:
        return this.error(Status.KeyNotFound);
      case DeltaOutcome.NonNumeric:
        return this.error(Status.NonNumeric);
      case DeltaOutcome.Exists:
        return this.error(Status.KeyExists);
      case DeltaOutcome.CreateNotStored:
        return this.error(Status.NotStored);
      default:
        return this.error(Status.OutOfMemory);
    }
    this.scratch.writeBigUInt64BE(deltaResult.value, 0);
    const item = this.ctx.store.peek(buf, keyStart, keyEnd);
    this.success(0, 0, this.counterBody, item?.cas ?? 0);
  }

  /**
   * STAT: one response per statistic, then an empty one; the key names the group.
   * As in memcached's process_bin_stat, reset, settings and detail match as prefixes,
   * and `detail dump` answers with one statistic, "detailed", holding the whole dump.
   */
  private stat(buf: Buffer, keyStart: number, keyEnd: number): void {
    const group = buf.toString('latin1', keyStart, keyEnd);
    const prefixStats = this.ctx.prefixStats;
    let pairs: Array<[string, string | number]> | null = null;
    if (group === '') {
      pairs = statsPairs(this.ctx, '');
    } else if (group.startsWith('reset')) {
      resetStats(this.ctx);
    } else if (group.startsWith('settings')) {
      pairs = statsPairs(this.ctx, 'settings');
    } else if (group.startsWith('detail')) {
      const sub = group.slice(6);
      if (sub.startsWith(' dump')) pairs = [['detailed', prefixStats.dump()]];
      else if (sub.startsWith(' on')) prefixStats.enabled = true;
      else if (sub.startsWith(' off')) prefixStats.enabled = false;
      else return this.error(Status.KeyNotFound);
    } else {
      pairs = statsPairs(this.ctx, group);
      if (pairs === null) return this.error(Status.KeyNotFound);
    }
    for (const [name, value] of pairs ?? []) {
      const nameBytes = Buffer.from(name, 'latin1');
      const valueBytes = Buffer.from(String(value), 'latin1');
      this.writeHeader(Status.Ok, 0, nameBytes.length, nameBytes.length + valueBytes.length, 0);
      this.out.bytes(nameBytes);
      this.out.bytes(valueBytes);
    }
    this.writeHeader(Status.Ok, 0, 0, 0, 0);
  }

  private saslAuth(buf: Buffer, pos: number, end: number, keyStart: number, keyEnd: number, valueLength: number): number {
    const valueEnd = keyEnd + valueLength;
    if (valueEnd > end) {
      if (this.reservation !== null && !this.reservation.hold(valueLength)) {
        // memcached allocates an item for the SASL data too, and answers ENOMEM when it cannot.
        this.error(Status.OutOfMemory);
        this.swallowing = valueLength;
        return keyEnd;
      }
      this.wanted = valueEnd - pos;
      return -1;
    }
    this.reservation?.release();
    const mechanism = buf.toString('latin1', keyStart, keyEnd);
    const succeeded = this.sasl!.authenticate(mechanism, buf.subarray(keyEnd, valueEnd));
    countAuthentication(this.ctx.counters, succeeded);
    if (succeeded) this.success(0, 0, Buffer.from('Authenticated'), 0);
    else this.error(Status.AuthError);
    return valueEnd;
  }

  /** A request with impossible lengths for its opcode: memcached answers EINVAL and hangs up. */
  private protocolError(next: number): number {
    this.error(Status.InvalidArguments);
    this.closing = true;
    this.closedOnError = true;
    return next;
  }

  /**
   * An opcode memcached does not know. memcached then drops a whole body length
   * after the key, eating into the next request; Mnemo drops only the rest of
   * this request's body, so the connection stays in step.
   */
  private unknown(next: number, swallow: number): number {
    this.error(Status.UnknownCommand);
    this.swallowing = swallow;
    return next;
  }

  /** A success reply, left out for quiet commands. */
  private success(extlen: number, keylen: number, body: Buffer | null, cas: number): void {
    if (this.quiet) return;
    this.respond(Status.Ok, extlen, keylen, body, cas);
  }

  /** Errors are sent even for quiet commands. */
  private error(status: number): void {
    this.respond(status, 0, 0, ERROR_TEXT[status] ?? null, 0);
  }

  private respond(status: number, extlen: number, keylen: number, body: Buffer | null, cas: number): void {
    this.writeHeader(status, extlen, keylen, body === null ? 0 : body.length, cas);
    if (body !== null && body.length > 0) this.out.bytes(body);
  }

  private writeHeader(status: number, extlen: number, keylen: number, bodylen: number, cas: number): void {
    const header = this.header;
    header[0] = RESPONSE_MAGIC;
    header[1] = this.opcode;
    header.writeUInt16BE(keylen, 2);
    header[4] = extlen;
    header[5] = 0;
    header.writeUInt16BE(status, 6);
    header.writeUInt32BE(bodylen, 8);
    header.writeUInt32BE(this.opaque, 12);
    header.writeUInt32BE(Math.floor(cas / 0x100000000), 16);
    header.writeUInt32BE(cas % 0x100000000, 20);
    this.out.bytes(header);
  }
}

/** SASL and version work before authentication, as in memcached. */
function isAuthFree(opcode: number): boolean {
  return opcode === Opcode.SaslListMechs || opcode === Opcode.SaslAuth || opcode === Opcode.SaslStep || opcode === Opcode.Version;
}

/** A CAS from the wire as a number: exact up to 2^53, and no item has a CAS above that. */
function readCas(buf: Buffer, at: number): number {
  const high = buf.readUInt32BE(at);
  const low = buf.readUInt32BE(at + 4);
  return high >= 0x200000 ? Infinity : high * 0x100000000 + low;
}
