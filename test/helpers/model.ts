/**
 * A reference model of memcached 1.6.18's item semantics for the soak test:
 * storage modes, CAS, counters (with memcached's in-place space padding), touch,
 * delete, flush_all (delayed too), expiry, and the meta commands with their
 * flags, quiet mode and win/stale/already-won tokens.
 *
 * Time is modelled in epochs: the soak moves the server clock with
 * `debugtime EPOCH` (--test-clock) and chooses every TTL so that it ends just
 * before an epoch boundary, so whether an item is alive depends only on the
 * epoch, never on how many real seconds passed (runs shorter than a few hours).
 * TTLs the server reports (`t`) are checked within a few seconds.
 *
 * CAS values are not predicted (the counter is shared by every connection) but
 * checked: a value read back must be the one read before unless the item
 * changed; after a change it must be new (above every CAS seen before the
 * change was sent) and belong to no other item version.
 *
 * Each method applies one command to the model and returns the reply expected
 * for it, as lines of tokens and data blocks.
 */

/** Seconds per epoch: far more than any run lasts, far less than the 30-day relative TTL limit. */
export const EPOCH = 100_000;
export const MAX_RELATIVE = 60 * 60 * 24 * 30;

/** A token of an expected reply line: literal text, a CAS to check, or a TTL to check loosely. */
/** ttl null: an item this very command expired (memcached prints its own wrapped number then). */
export type Token = string | { cas: ModelItem; prefix: string } | { ttl: number | null; prefix: string };
export type Expected = { line: Token[] } | { data: Buffer };

export interface ModelItem {
  readonly key: string;
  value: Buffer;
  flags: number;
  /** The first epoch in which the item is gone; null: never expires. */
  expEpoch: number | null;
  /** The server's absolute exptime, approximately (for `t`); null: never. */
  expAbs: number | null;
  /** The CAS last read back for this version, or null when it changed since. */
  cas: bigint | null;
  /** Every CAS seen before the change that made this version was sent: its CAS is above it. */
  casFloor: bigint;
  version: number;
  fetched: boolean;
  stale: boolean;
  tokenSent: boolean;
}

export interface ModelClock {
  /** The server's unix time now, approximately (it ticks once a second). */
  serverNow(): number;
  /** The server's start time: absolute exptimes at or before it are already past. */
  readonly serverStarted: number;
}

export interface ApplyContext {
  /** The highest CAS seen anywhere when the batch holding this command was sent. */
  sendFloor: bigint;
}

/** What an exptime means, in epochs. */
export interface Expiry {
  expEpoch: number | null;
  expAbs: number | null;
}

const U64 = 1n << 64n;

/** memcached's safe_strtoull on an item's data (a C string: a NUL ends it; \r\n follows it). */
export function valueAsNumber(value: Buffer): bigint | null {
  if (value.length === 0) return null;
  const nul = value.indexOf(0);
  const text = (nul === -1 ? value : value.subarray(0, nul)).toString('latin1');
  const match = /^[ \t\n\v\f\r]*([+-]?)(\d+)(.*)$/s.exec(text);
  if (match === null) return null;
  const rest = match[3]!;
  if (rest.length > 0 && !/^[ \t\n\v\f\r]/.test(rest)) return null;
  const magnitude = BigInt(match[2]!);
  if (magnitude >= U64) return null;
  const negative = match[1] === '-';
  const result = negative ? (U64 - magnitude) % U64 : magnitude;
  if (negative && result >= 1n << 63n) return null;
  return result;
}

export class CacheModel {
  epoch = 0;
  /** Epoch at which a delayed flush_all takes effect. */
  pendingFlush: number | null = null;
  readonly items = new Map<string, ModelItem>();
  maxCasSeen = 0n;
  private readonly casOwner = new Map<bigint, string>();
  private versions = 0;

  constructor(readonly clock: ModelClock) {}

  // ------------------------------------------------------------ time

  /** What exptime e means now (as memcached's realtime()). */
  expiry(e: number): Expiry {
    if (e === 0) return { expEpoch: null, expAbs: null };
    if (e < 0) return { expEpoch: this.epoch, expAbs: 1 };
    if (e > MAX_RELATIVE) {
      if (e <= this.clock.serverStarted) return { expEpoch: this.epoch, expAbs: 1 };
      return { expEpoch: this.absoluteEpoch(e), expAbs: e };
    }
    return { expEpoch: this.epoch + Math.ceil(e / EPOCH), expAbs: this.clock.serverNow() + e };
  }

  /** The epoch whose clock first reaches absolute time e (the soak builds them as T0 + n*EPOCH - EPOCH/4). */
  private absoluteEpoch(e: number): number {
    return Math.round((e - this.origin + EPOCH / 4) / EPOCH);
  }

  /** Server time at epoch 0, when the soak started. */
  origin = 0;

  /** `debugtime EPOCH`: the next epoch; a delayed flush that came due empties the cache. */
  advance(): void {
    this.epoch++;
    if (this.pendingFlush !== null && this.epoch >= this.pendingFlush) {
      this.items.clear();
      this.pendingFlush = null;
    }
  }

  flushAll(delay: number): void {
    if (delay > 0) {
      const { expEpoch } = this.expiry(delay);
      // realtime(delay) - 1: the deadline falls inside the epoch that reaches realtime(delay).
      if (expEpoch !== null && expEpoch > this.epoch) {
        this.pendingFlush = expEpoch;
        return;
      }
    }
    this.items.clear();
    this.pendingFlush = null;
  }

  // ------------------------------------------------------------ items

  live(key: string): ModelItem | null {
    const item = this.items.get(key);
    if (item === undefined) return null;
    if (item.expEpoch !== null && this.epoch >= item.expEpoch) {
      this.items.delete(key);
      return null;
    }
    return item;
  }

  private create(key: string, value: Buffer, flags: number, expiry: Expiry, ctx: ApplyContext): ModelItem {
    const item: ModelItem = {
      key,
      value,
      flags,
      expEpoch: expiry.expEpoch,
      expAbs: expiry.expAbs,
      cas: null,
      casFloor: ctx.sendFloor,
      version: ++this.versions,
      fetched: false,
      stale: false,
      tokenSent: false,
    };
    this.items.set(key, item);
    return item;
  }

  /** The item changed in place: a new CAS. */
  private changed(item: ModelItem, ctx: ApplyContext): void {
    item.cas = null;
    item.casFloor = ctx.sendFloor;
    item.version = ++this.versions;
  }

  private setExpiry(item: ModelItem, e: number): void {
    const expiry = this.expiry(e);
    item.expEpoch = expiry.expEpoch;
    item.expAbs = expiry.expAbs;
  }

  /** `t`: -1 for no expiry, else the seconds left (checked loosely). */
  private ttlToken(item: ModelItem): Token {
    if (item.expEpoch === null || item.expAbs === null) return 't-1';
    if (item.expEpoch <= this.epoch) return { ttl: null, prefix: 't' };
    return { ttl: item.expAbs - this.clock.serverNow(), prefix: 't' };
  }

  /** Checks a CAS read back from the server for an item; returns an error, or null. */
  observeCas(item: ModelItem, value: bigint): string | null {
    const owner = `${item.key}#${item.version}`;
    if (item.cas !== null) {
      if (value !== item.cas) return `CAS of ${item.key} read ${value}, was ${item.cas} and the item did not change`;
    } else {
      if (value <= item.casFloor) return `CAS of ${item.key} after a change is ${value}, not above ${item.casFloor} seen before the change`;
      const other = this.casOwner.get(value);
      if (other !== undefined && other !== owner) return `CAS ${value} of ${owner} was already ${other}'s`;
      item.cas = value;
    }
    this.casOwner.set(value, owner);
    if (this.casOwner.size > 2_000_000) {
      for (const old of this.casOwner.keys()) {
        this.casOwner.delete(old);
        if (this.casOwner.size <= 1_000_000) break;
      }
    }
    if (value > this.maxCasSeen) this.maxCasSeen = value;
    return null;
  }

  /** A CAS value the item's real CAS certainly differs from (0, or one read before the last change). */
  wrongCas(item: ModelItem | null, pick: number): bigint {
    if (item === null || pick % 3 === 0) return 0n;
    if (item.cas !== null) return item.cas > 1n ? item.cas - 1n : 0n;
    return item.casFloor;
  }

  /** True when the server's CAS for the item is certainly `cas` (or certainly not): null when unknown. */
  private casMatches(item: ModelItem, cas: bigint): boolean {
    if (item.cas !== null) return item.cas === cas;
    if (cas <= item.casFloor) return false;
    throw new Error(`model: cannot tell whether CAS ${cas} matches ${item.key} (the soak sent a CAS it cannot reason about)`);
  }

  // ------------------------------------------------------------ text commands

  /** set/add/replace/append/prepend/cas; reply null for noreply. */
  store(
    mode: 'set' | 'add' | 'replace' | 'append' | 'prepend' | 'cas',
    key: string, flags: number, exptime: number, value: Buffer, cas: bigint, noreply: boolean, ctx: ApplyContext,
  ): Expected[] {
    const reply = (text: string): Expected[] => (noreply ? [] : [{ line: [text] }]);
    const item = this.live(key);
    switch (mode) {
      case 'add':
        if (item !== null) {
          return reply('NOT_STORED');
        }
        break;
      case 'replace':
        if (item === null) return reply('NOT_STORED');
        break;
      case 'append':
      case 'prepend': {
        if (item === null) return reply('NOT_STORED');
        const joined = mode === 'append' ? Buffer.concat([item.value, value]) : Buffer.concat([value, item.value]);
        this.create(key, joined, item.flags, { expEpoch: item.expEpoch, expAbs: item.expAbs }, ctx);
        return reply('STORED');
      }
      case 'cas':
        if (item === null) return reply('NOT_FOUND');
        if (!this.casMatches(item, cas)) return reply('EXISTS');
        break;
      case 'set':
        break;
    }
    this.create(key, value, flags, this.expiry(exptime), ctx);
    return reply('STORED');
  }

  /** get/gets/gat/gats over keys. */
  retrieve(keys: string[], withCas: boolean, touch: number | null): Expected[] {
    const out: Expected[] = [];
    for (const key of keys) {
      const item = this.live(key);
      if (item === null) continue;
      if (touch !== null) this.setExpiry(item, touch);
      item.fetched = true;
      const line: Token[] = ['VALUE', key, String(item.flags), String(item.value.length)];
      if (withCas) line.push({ cas: item, prefix: '' });
      out.push({ line }, { data: item.value });
    }
    out.push({ line: ['END'] });
    return out;
  }

  touch(key: string, exptime: number, noreply: boolean): Expected[] {
    const item = this.live(key);
    if (item !== null) {
      this.setExpiry(item, exptime);
      item.fetched = true;
    }
    return noreply ? [] : [{ line: [item === null ? 'NOT_FOUND' : 'TOUCHED'] }];
  }

  /** The arithmetic itself; the new value, or why there is none. */
  private delta(item: ModelItem, incr: boolean, delta: bigint, ctx: ApplyContext): bigint | 'non_numeric' {
    const current = valueAsNumber(item.value);
    if (current === null) return 'non_numeric';
    const next = incr ? (current + delta) % U64 : current < delta ? 0n : current - delta;
    const digits = Buffer.from(next.toString(), 'latin1');
    if (digits.length <= item.value.length) {
      // In place, padded with spaces: the item keeps its flags (fetched, stale, win token). (memcached
      // makes a new item instead while an unsent reply still holds this one: see SoakOptions.memcached.)
      const value = Buffer.alloc(item.value.length, 0x20);
      digits.copy(value);
      item.value = value;
      this.changed(item, ctx);
    } else {
      this.create(item.key, digits, item.flags, { expEpoch: item.expEpoch, expAbs: item.expAbs }, ctx);
    }
    return next;
  }

  incrDecr(key: string, incr: boolean, delta: bigint, noreply: boolean, ctx: ApplyContext): Expected[] {
    const item = this.live(key);
    let text: string;
    if (item === null) text = 'NOT_FOUND';
    else {
      const result = this.delta(item, incr, delta, ctx);
      text = result === 'non_numeric' ? 'CLIENT_ERROR cannot increment or decrement non-numeric value' : result.toString();
    }
    return noreply ? [] : [{ line: text.split(' ') }];
  }

  delete(key: string, noreply: boolean): Expected[] {
    const item = this.live(key);
    if (item !== null) this.items.delete(key);
    return noreply ? [] : [{ line: [item === null ? 'NOT_FOUND' : 'DELETED'] }];
  }

  // ------------------------------------------------------------ meta commands

  /** mg with flags (each a token: v f s k c t h u q O.. T.. N.. R..). */
  mg(key: string, flags: string[], ctx: ApplyContext): Expected[] {
    const has = (c: string): string | undefined => flagOf(flags, c);
    let item = this.live(key);
    let created = false;
    if (item === null && has('N') !== undefined) {
      item = this.create(key, Buffer.alloc(0), 0, { expEpoch: null, expAbs: null }, ctx);
      created = true;
    }
    if (item === null) {
      if (has('q') !== undefined) return [];
      const line: Token[] = ['EN'];
      for (const f of flags) {
        if (f[0] === 'O') line.push(f);
        else if (f[0] === 'k') line.push(`k${key}`);
      }
      return [{ line }];
    }
    const fetched = item.fetched;
    let won = false;
    const line: Token[] = has('v') !== undefined ? ['VA', String(item.value.length)] : ['HD'];
    for (const f of flags) {
      switch (f[0]) {
        case 'T':
          this.setExpiry(item, Number(f.slice(1)));
          break;
        case 'N':
          if (created) {
            this.setExpiry(item, Number(f.slice(1)));
            won = true;
          }
          break;
        case 'R':
          // The soak sends R as j epochs less half of one: a deterministic win when the item dies within j epochs.
          if (!item.tokenSent && !created && item.expEpoch !== null && item.expEpoch < this.epoch + (Number(f.slice(1)) + EPOCH / 2) / EPOCH) won = true;
          break;
        case 's':
          line.push(`s${item.value.length}`);
          break;
        case 't':
          line.push(this.ttlToken(item));
          break;
        case 'c':
          line.push({ cas: item, prefix: 'c' });
          break;
        case 'f':
          line.push(`f${item.flags}`);
          break;
        case 'h':
          line.push(fetched ? 'h1' : 'h0');
          break;
        case 'O':
          line.push(f);
          break;
        case 'k':
          line.push(`k${key}`);
          break;
      }
    }
    if (item.tokenSent) line.push('Z');
    if (item.stale) {
      line.push('X');
      if (!item.tokenSent) won = true;
    }
    if (won) {
      line.push('W');
      item.tokenSent = true;
    }
    const out: Expected[] = [{ line }];
    if (has('v') !== undefined) out.push({ data: item.value });
    if (has('u') === undefined) item.fetched = true;
    // An item made already expired (N or T with a past time) is gone afterwards.
    this.live(key);
    return out;
  }

  /** ms with flags (T.. F.. C.. M. I c k O.. q). */
  ms(key: string, value: Buffer, flags: string[], ctx: ApplyContext): Expected[] {
    const has = (c: string): string | undefined => flagOf(flags, c);
    const casToken = has('C');
    const cas = casToken === undefined ? null : BigInt(casToken.slice(1));
    const modeToken = has('M');
    const modes: Record<string, 'set' | 'add' | 'append' | 'prepend' | 'replace'> = { S: 'set', E: 'add', A: 'append', P: 'prepend', R: 'replace' };
    let mode: 'set' | 'add' | 'append' | 'prepend' | 'replace' | 'cas' = modeToken === undefined ? 'set' : modes[modeToken[1]!]!;
    if (cas !== null && (mode === 'set' || mode === 'replace')) mode = 'cas';
    const ttlToken = has('T');
    const exptime = ttlToken === undefined ? 0 : Number(ttlToken.slice(1));
    const flagsToken = has('F');
    const clientFlags = flagsToken === undefined ? 0 : Number(flagsToken.slice(1));
    const item = this.live(key);
    let result: 'HD' | 'NS' | 'EX' | 'NF';
    let stored: ModelItem | null = null;
    switch (mode) {
      case 'add':
        if (item !== null) {
          result = 'NS';
        } else {
          stored = this.create(key, value, clientFlags, this.expiry(exptime), ctx);
          result = 'HD';
        }
        break;
      case 'replace':
      case 'set':
        if (mode === 'replace' && item === null) result = 'NS';
        else {
          stored = this.create(key, value, clientFlags, this.expiry(exptime), ctx);
          result = 'HD';
        }
        break;
      case 'append':
      case 'prepend':
        if (item === null) result = 'NS';
        else if (cas !== null && cas !== 0n && !this.casMatches(item, cas)) result = 'EX';
        else {
          const joined = mode === 'append' ? Buffer.concat([item.value, value]) : Buffer.concat([value, item.value]);
          stored = this.create(key, joined, item.flags, { expEpoch: item.expEpoch, expAbs: item.expAbs }, ctx);
          result = 'HD';
        }
        break;
      case 'cas':
        if (item === null) result = 'NF';
        else if (this.casMatches(item, cas!)) {
          stored = this.create(key, value, clientFlags, this.expiry(exptime), ctx);
          result = 'HD';
        } else if (has('I') !== undefined && cas !== 0n && (item.cas !== null ? cas! < item.cas : cas! <= item.casFloor)) {
          // Invalidation: an older CAS still stores, marked stale, keeping TTL and win-token state.
          stored = this.create(key, value, clientFlags, { expEpoch: item.expEpoch, expAbs: item.expAbs }, ctx);
          stored.stale = true;
          stored.tokenSent = item.tokenSent;
          result = 'HD';
        } else result = 'EX';
        break;
    }
    if (result === 'HD' && has('q') !== undefined) {
      this.live(key);
      return [];
    }
    const line: Token[] = [result];
    for (const f of flags) {
      if (f[0] === 'O') line.push(f);
      else if (f[0] === 'k') line.push(`k${key}`);
      else if (f[0] === 'c') line.push(stored === null ? 'c0' : { cas: stored, prefix: 'c' });
    }
    this.live(key);
    return [{ line }];
  }

  /** md with flags (q C.. I T.. k O..). */
  md(key: string, flags: string[], ctx: ApplyContext): Expected[] {
    const has = (c: string): string | undefined => flagOf(flags, c);
    const echo = (line: Token[]): Token[] => echoOpaqueAndKey(line, flags, key);
    const item = this.live(key);
    if (item === null) return [{ line: echo(['NF']) }];
    const casToken = has('C');
    if (casToken !== undefined && !this.casMatches(item, BigInt(casToken.slice(1)))) return [{ line: echo(['EX']) }];
    if (has('I') !== undefined) {
      const ttl = has('T');
      if (ttl !== undefined) this.setExpiry(item, Number(ttl.slice(1)));
      item.stale = true;
      item.tokenSent = false;
      this.changed(item, ctx);
      this.live(key);
    } else {
      this.items.delete(key);
    }
    if (has('q') !== undefined) return [];
    return [{ line: echo(['HD']) }];
  }

  /** ma with flags (N.. J.. D.. T.. M. q t c v k O.. C..). */
  ma(key: string, flags: string[], ctx: ApplyContext): Expected[] {
    const has = (c: string): string | undefined => flagOf(flags, c);
    const echo = (line: Token[]): Token[] => echoOpaqueAndKey(line, flags, key);
    const modeToken = has('M');
    const incr = modeToken === undefined || modeToken[1] === 'I' || modeToken[1] === '+';
    const deltaToken = has('D');
    const delta = deltaToken === undefined ? 1n : BigInt(deltaToken.slice(1));
    const casToken = has('C');
    let item = this.live(key);
    let created = false;
    let result: bigint;
    if (item === null) {
      if (has('N') === undefined) return [{ line: echo(['NF']) }];
      const initialToken = has('J');
      result = initialToken === undefined ? 0n : BigInt(initialToken.slice(1));
      item = this.create(key, Buffer.from(result.toString(), 'latin1'), 0, { expEpoch: null, expAbs: null }, ctx);
      created = true;
    } else {
      // memcached: an empty value is refused before the CAS is compared, other non-numbers after.
      const emptyFirst = item.value.length === 0;
      if (!emptyFirst && casToken !== undefined && BigInt(casToken.slice(1)) !== 0n && !this.casMatches(item, BigInt(casToken.slice(1)))) {
        return [{ line: echo(['EX']) }];
      }
      const next = this.delta(item, incr, delta, ctx);
      if (next === 'non_numeric') return [{ line: 'CLIENT_ERROR cannot increment or decrement non-numeric value'.split(' ') }];
      result = next;
      item = this.items.get(key)!;
    }
    const digits = result.toString();
    const value = has('v') !== undefined;
    const line: Token[] = value ? ['VA', String(digits.length)] : ['HD'];
    for (const f of flags) {
      switch (f[0]) {
        case 'c':
          line.push({ cas: item, prefix: 'c' });
          break;
        case 't':
          line.push(this.ttlToken(item));
          break;
        case 'T':
          this.setExpiry(item, Number(f.slice(1)));
          break;
        case 'N':
          if (created) this.setExpiry(item, Number(f.slice(1)));
          break;
        case 'O':
          line.push(f);
          break;
        case 'k':
          line.push(`k${key}`);
          break;
      }
    }
    this.live(key);
    if (has('q') !== undefined && !created) return [];
    const out: Expected[] = [{ line }];
    if (value) out.push({ data: Buffer.from(digits, 'latin1') });
    return out;
  }
}

/** The meta flag starting with c, or undefined. */
function flagOf(flags: string[], c: string): string | undefined {
  return flags.find((f) => f[0] === c);
}

/** Appends the O (opaque) and k (key) flags a meta reply echoes, as md and ma do. */
function echoOpaqueAndKey(line: Token[], flags: string[], key: string): Token[] {
  for (const f of flags) {
    if (f[0] === 'O') line.push(f);
    else if (f[0] === 'k') line.push(`k${key}`);
  }
  return line;
}
