import type { Clock } from '../base/clock.js';
import type { Counters } from '../observe/stats.js';
import { parseU64 } from '../base/c-numbers.js';
import { SizeClasses } from './size-classes.js';
import {
  CHANGE_DELETED,
  CHANGE_EVICTED,
  CHANGE_FLUSHED,
  CHANGE_FLUSH_DUE,
  CHANGE_FLUSH_SCHEDULED,
  CHANGE_INVALIDATED,
  CHANGE_REMOVED,
  CHANGE_STORED,
  CHANGE_TOUCHED,
  type ChangeFeed,
  type LowerTier,
} from './change-feed.js';
import type { RebalanceSettings } from './slabs/rebalancer.js';
import {
  STORE_BINARY_KEY,
  STORE_INVALIDATE,
  type ClassStats,
  type DeltaResult,
  type ItemDump,
  type ItemView,
  type Store,
  type StoreMode,
  type StoreResult,
  type StoredRecord,
} from './store.js';

/**
 * The bytes memcached charges an item (its ITEM_ntotal): a 48-byte header, an
 * 8-byte CAS unless -C, the key with its NUL, the value with its \r\n, and 4
 * bytes of client flags when they are not zero. Counting the same way makes
 * `bytes`, `-m` and `-I` mean what they mean to memcached's users.
 */
export function itemSize(keyLength: number, valueLength: number, flags: number, withCas = true): number {
  return 48 + (withCas ? 8 : 0) + keyLength + 1 + valueLength + 2 + (flags === 0 ? 0 : 4);
}

function emptyClassStats(id: number, classes: SizeClasses): ClassStats {
  return {
    id,
    chunkSize: classes.chunkSizes[id]!,
    perPage: id === 0 ? 0 : classes.perPage(id),
    number: 0,
    mem_requested: 0,
    evicted: 0,
    evicted_time: 0,
    evicted_unfetched: 0,
    expired_unfetched: 0,
    reclaimed: 0,
    outofmemory: 0,
  };
}

const EMPTY = Buffer.alloc(0);

/** How many items the background sweep looks at per clock tick. */
const SWEEP_PER_TICK = 10_000;

class Entry implements ItemView {
  prev: Entry | null = null;
  next: Entry | null = null;
  fetched = false;
  stale = false;
  tokenSent = false;
  constructor(
    readonly key: string,
    public value: Buffer,
    public flags: number,
    public exptime: number,
    public cas: number,
    /** Last store or access, in clock seconds: what a delayed flush_all compares. */
    public time: number,
    public size: number,
    public sizeClass: number,
    public binaryKey: boolean,
  ) {}

  get lastAccess(): number {
    return this.time;
  }
}

export interface MemoryStoreOptions {
  /** -m, in bytes. */
  memoryLimit: number;
  /** -I, in bytes. */
  maxItemSize: number;
  /** -M turns this off: a full cache refuses writes instead of evicting. */
  evictions: boolean;
  /** -C turns this off: items carry no CAS (it reads as 0) and cost 8 bytes less. */
  casEnabled: boolean;
  /** -f and -n, for filing items under memcached's size classes in stats. */
  slabGrowthFactor: number;
  slabMinSize: number;
  /** -o slab_chunk_max, in bytes (the slab store; default half a page). */
  slabChunkMax?: number;
  /** -o slab_reassign, slab_automove, slab_automove_ratio, slab_automove_window (the slab store). */
  rebalance?: RebalanceSettings;
  /** memcached's T_MEMD_INITIAL_MALLOC test hook: bytes counted as allocated before any page (the slab store). */
  initialMalloced?: number;
}

/**
 * What an item costs Node beyond what memcached charges for it: the entry object,
 * its map slot, the key string and the value's Buffer object (measured: about 300
 * bytes on Node 20). -m bounds charged bytes plus this per item, so the process
 * stays near -m whatever the item sizes; `bytes` still reports memcached's sizes.
 */
export const NODE_ITEM_OVERHEAD = 300;

/**
 * Items in a Map with an intrusive doubly linked LRU list (head = most recently
 * used). Expired items go lazily on access and by a bounded sweep per tick.
 */
export class MemoryStore implements Store {
  private readonly items = new Map<string, Entry>();
  private head: Entry | null = null;
  private tail: Entry | null = null;
  private bytes = 0;
  private casCounter = 0;
  /** memcached's oldest_live: items last touched at or before it are gone once the clock reaches it. */
  private oldestLive = 0;
  /** A delayed flush_all is waiting for the clock to reach oldestLive. */
  private flushPending = false;
  private sweep: Iterator<Entry> | null = null;
  private memoryLimit: number;
  readonly sizeClasses: SizeClasses;
  private readonly classStats: ClassStats[] = [];
  /** Where every accepted change is reported once (null: memory only, nobody listens). */
  private feed: ChangeFeed | null = null;
  /** The tier below (the disk), asked on a miss. */
  private lower: LowerTier | null = null;

  constructor(
    private readonly options: MemoryStoreOptions,
    private readonly clock: Clock,
    private readonly counters: Counters,
  ) {
    this.memoryLimit = options.memoryLimit;
    this.sizeClasses = new SizeClasses(options.slabGrowthFactor, options.slabMinSize, options.maxItemSize);
    for (let id = 0; id <= this.sizeClasses.largest; id++) this.classStats.push(emptyClassStats(id, this.sizeClasses));
    clock.onTick((now) => this.onTick(now));
  }

  /** Told of each item evicted to make room (memcached's `watch evictions`). */
  onEviction: ((item: ItemView & { readonly key: string }) => void) | null = null;

  /** Reports every accepted change to the feed from now on. */
  reportTo(feed: ChangeFeed): void {
    this.feed = feed;
  }

  /** Puts a lower tier under this store: it answers misses and may refuse changes (it hears them through the feed). */
  readFrom(lower: LowerTier): void {
    this.lower = lower;
  }

  /**
   * Puts a record from the tier below into memory without reporting it back as a
   * change. False when it does not fit in memory (it stays below).
   */
  restore(name: string, record: StoredRecord): boolean {
    if (record.cas > this.casCounter) this.casCounter = record.cas;
    const size = this.sizeOf(Buffer.byteLength(name, 'latin1'), record.value.length, record.flags);
    if (this.footprint + size + NODE_ITEM_OVERHEAD > this.memoryLimit) return false;
    const sizeClass = this.sizeClasses.classOf(size);
    const entry = new Entry(name, record.value, record.flags, record.exptime, record.cas, this.clock.now, size, sizeClass, record.binaryKey);
    this.link(entry);
    return true;
  }

  get itemCount(): number {
    return this.items.size;
  }

  get bytesUsed(): number {
    return this.bytes;
  }

  /** What -m limits: charged bytes plus Node's per-item overhead. */
  private get footprint(): number {
    return this.bytes + this.items.size * NODE_ITEM_OVERHEAD;
  }

  get bytesLimit(): number {
    return this.memoryLimit;
  }

  setMemoryLimit(bytes: number): void {
    this.memoryLimit = bytes;
    this.makeRoom(0);
  }

  fits(keyLength: number, valueLength: number, flags: number): boolean {
    return this.sizeOf(keyLength, valueLength, flags) <= this.options.maxItemSize;
  }

  sizeClassStats(): readonly ClassStats[] {
    return this.classStats;
  }

  dump(visit: (item: ItemDump) => boolean): void {
    const now = this.clock.now;
    for (const entry of this.items.values()) {
      if (entry.exptime !== 0 && entry.exptime <= now) continue;
      const more = visit({
        key: entry.key,
        exptime: entry.exptime,
        lastAccess: entry.time,
        cas: entry.cas,
        fetched: entry.fetched,
        sizeClass: entry.sizeClass,
        size: entry.size,
        valueLength: entry.value.length,
      });
      if (!more) return;
    }
  }

  private sizeOf(keyLength: number, valueLength: number, flags: number): number {
    return itemSize(keyLength, valueLength, flags, this.options.casEnabled);
  }

  get(key: Buffer, keyStart: number, keyEnd: number): ItemView | null {
    const entry = this.lookup(key.toString('latin1', keyStart, keyEnd));
    if (entry !== null) this.access(entry);
    return entry;
  }

  peek(key: Buffer, keyStart: number, keyEnd: number): ItemView | null {
    return this.lookup(key.toString('latin1', keyStart, keyEnd));
  }

  markAccessed(item: ItemView): void {
    this.access(item as Entry);
  }

  setExptime(item: ItemView, exptime: number): void {
    const entry = item as Entry;
    entry.exptime = this.clock.expiryFrom(exptime);
    this.feed?.emit(CHANGE_TOUCHED, entry.key, entry, 0);
  }

  setTokenSent(item: ItemView): void {
    (item as Entry).tokenSent = true;
  }

  invalidate(item: ItemView): void {
    const entry = item as Entry;
    entry.stale = true;
    entry.tokenSent = false;
    entry.cas = this.nextCas();
    this.feed?.emit(CHANGE_INVALIDATED, entry.key, entry, 0);
  }

  vivify(key: Buffer, keyStart: number, keyEnd: number, exptime: number, binaryKey: boolean): ItemView | null {
    const name = key.toString('latin1', keyStart, keyEnd);
    const size = this.sizeOf(keyEnd - keyStart, 0, 0);
    if (this.put(name, EMPTY, 0, this.clock.expiryFrom(exptime), size, binaryKey) !== 'stored') return null;
    return this.items.get(name)!;
  }

  getAndTouch(key: Buffer, keyStart: number, keyEnd: number, exptime: number): ItemView | null {
    const entry = this.lookup(key.toString('latin1', keyStart, keyEnd));
    if (entry === null) return null;
    entry.exptime = this.clock.expiryFrom(exptime);
    this.feed?.emit(CHANGE_TOUCHED, entry.key, entry, 0);
    this.access(entry);
    return entry;
  }

  store(
    mode: StoreMode,
    key: Buffer, keyStart: number, keyEnd: number,
    data: Buffer, dataStart: number, dataEnd: number,
    flags: number, exptime: number, casUnique: number, options = 0,
  ): StoreResult {
    if (!this.writable) return 'no_memory';
    const name = key.toString('latin1', keyStart, keyEnd);
    // A plain set replaces whatever the disk holds: no need to read it first.
    const existing = this.lookup(name, mode !== 'set');
    const binaryKey = (options & STORE_BINARY_KEY) !== 0;
    let markStale = false;
    switch (mode) {
      case 'add':
        if (existing !== null) {
          // memcached moves the item up the LRU but does not count this as a fetch.
          this.bump(existing);
          return 'not_stored';
        }
        break;
      case 'replace':
        if (existing === null) return 'not_stored';
        break;
      case 'append':
      case 'prepend':
        if (existing === null) return 'not_stored';
        if (casUnique !== 0 && existing.cas !== casUnique) return 'exists';
        break;
      case 'cas':
        if (existing === null) return 'not_found';
        if (this.options.casEnabled && existing.cas === casUnique) break;
        // Meta I: an older CAS still stores the value, marked stale; under -C nothing matches.
        if (this.options.casEnabled && (options & STORE_INVALIDATE) !== 0 && casUnique < existing.cas) {
          markStale = true;
          break;
        }
        return 'exists';
      case 'set':
        break;
    }

    let value: Buffer;
    if (existing !== null && (mode === 'append' || mode === 'prepend')) {
      // Appending keeps the old item's flags and expiry, as memcached does.
      flags = existing.flags;
      const old = existing.value;
      value = Buffer.allocUnsafeSlow(old.length + dataEnd - dataStart);
      if (mode === 'append') {
        old.copy(value, 0);
        data.copy(value, old.length, dataStart, dataEnd);
      } else {
        data.copy(value, 0, dataStart, dataEnd);
        old.copy(value, dataEnd - dataStart);
      }
      const size = this.sizeOf(keyEnd - keyStart, value.length, flags);
      if (size > this.options.maxItemSize) return 'not_stored';
      return this.put(name, value, flags, existing.exptime, size, binaryKey);
    }

    const size = this.sizeOf(keyEnd - keyStart, dataEnd - dataStart, flags);
    if (size > this.options.maxItemSize) return 'too_large';
    value = Buffer.allocUnsafe(dataEnd - dataStart);
    data.copy(value, 0, dataStart, dataEnd);
    if (!markStale) return this.put(name, value, flags, this.clock.expiryFrom(exptime), size, binaryKey);
    // A stale write keeps the TTL and the win-token state of the item it replaces.
    const { exptime: keptExptime, tokenSent } = existing!;
    const result = this.put(name, value, flags, keptExptime, size, binaryKey);
    const stored = this.items.get(name);
    if (result === 'stored' && stored !== undefined) {
      stored.stale = true;
      stored.tokenSent = tokenSent;
    }
    return result;
  }

  get writable(): boolean {
    return this.lower === null || this.lower.writable;
  }

  get lastCas(): number {
    return this.casCounter;
  }

  delete(key: Buffer, keyStart: number, keyEnd: number): boolean {
    const entry = this.lookup(key.toString('latin1', keyStart, keyEnd));
    if (entry === null) return false;
    this.unlink(entry);
    this.feed?.emit(CHANGE_DELETED, entry.key, null, 0);
    return true;
  }

  applyDelta(key: Buffer, keyStart: number, keyEnd: number, delta: bigint, incr: boolean, casUnique = 0): DeltaResult {
    if (!this.writable) return 'no_memory';
    const entry = this.lookup(key.toString('latin1', keyStart, keyEnd));
    if (entry === null) return 'not_found';
    // memcached refuses an empty value before it compares the CAS, other non-numbers after.
    if (entry.value.length === 0) return 'non_numeric';
    if (casUnique !== 0 && entry.cas !== casUnique) return 'exists';
    const current = parseU64(entry.value, 0, entry.value.length);
    if (current === null) return 'non_numeric';
    let next: bigint;
    if (incr) next = BigInt.asUintN(64, current + delta);
    else next = current < delta ? 0n : current - delta;

    // memcached rewrites a number that fits in place and pads the rest with spaces,
    // so a shrinking counter keeps its length ("10" decr 1 -> "9 "). Stored values
    // are never mutated (replies may still reference them), so build a new one.
    const digits = next.toString();
    const value = Buffer.alloc(Math.max(digits.length, entry.value.length), 0x20);
    value.write(digits, 0, 'latin1');
    if (value.length === entry.value.length) {
      // In place, as memcached: the item keeps its fetched, stale and win-token state.
      entry.value = value;
      entry.cas = this.nextCas();
      this.feed?.emit(CHANGE_STORED, entry.key, entry, 0);
      return next;
    }
    const size = this.sizeOf(keyEnd - keyStart, value.length, entry.flags);
    const stored = this.put(entry.key, value, entry.flags, entry.exptime, size, entry.binaryKey);
    return stored === 'stored' ? next : 'no_memory';
  }

  flushAll(delay: number): void {
    const now = this.clock.now;
    const oldestLive = delay > 0 ? this.clock.expiryFrom(delay) - 1 : now - 1;
    this.oldestLive = oldestLive;
    this.flushPending = oldestLive > now;
    if (delay <= 0) {
      this.clear();
      this.feed?.emit(CHANGE_FLUSHED, '', null, 0);
      return;
    }
    this.feed?.emit(CHANGE_FLUSH_SCHEDULED, '', null, this.clock.expiryFrom(delay));
    if (!this.flushPending) this.flushDue();
  }

  /** A delayed flush_all came due: everything stored so far is covered by it. */
  private flushDue(): void {
    this.flushPending = false;
    this.clear();
    this.feed?.emit(CHANGE_FLUSH_DUE, '', null, 0);
  }

  /** Finds a live entry by key, unlinking it if it expired or was flushed. */
  private lookup(name: string, fromBacking = true): Entry | null {
    const entry = this.items.get(name) ?? (fromBacking ? this.fetchFromBacking(name) : null);
    if (entry === null) return null;
    const now = this.clock.now;
    if (entry.time <= this.oldestLive && this.oldestLive <= now) {
      this.counters.get_flushed++;
      this.remove(entry);
      return null;
    }
    if (entry.exptime !== 0 && entry.exptime <= now) {
      this.counters.get_expired++;
      this.reclaim(entry);
      return null;
    }
    return entry;
  }

  /** A miss in memory: the tier below may hold the item (evicted earlier, or not loaded). */
  private fetchFromBacking(name: string): Entry | null {
    if (this.lower === null) return null;
    const record = this.lower.fetch(name);
    if (record === null) return null;
    if (record.exptime !== 0 && record.exptime <= this.clock.now) {
      this.feed?.emit(CHANGE_REMOVED, name, null, 0);
      return null;
    }
    const size = this.sizeOf(Buffer.byteLength(name, 'latin1'), record.value.length, record.flags);
    if (!this.makeRoom(size)) return null;
    if (record.cas > this.casCounter) this.casCounter = record.cas;
    const entry = new Entry(name, record.value, record.flags, record.exptime, record.cas, this.clock.now, size, this.sizeClasses.classOf(size), record.binaryKey);
    this.link(entry);
    this.counters.disk_promotions++;
    return entry;
  }

  private nextCas(): number {
    return this.options.casEnabled ? ++this.casCounter : 0;
  }

  private put(name: string, value: Buffer, flags: number, exptime: number, size: number, binaryKey: boolean): StoreResult {
    const existing = this.items.get(name);
    if (existing !== undefined) this.unlink(existing);
    const sizeClass = this.sizeClasses.classOf(size);
    if (!this.makeRoom(size)) {
      this.classStats[sizeClass]!.outofmemory++;
      // The old value is gone from memory; it must not come back from the tier below.
      if (existing !== undefined) this.feed?.emit(CHANGE_REMOVED, name, null, 0);
      return 'no_memory';
    }
    const entry = new Entry(name, value, flags, exptime, this.nextCas(), this.clock.now, size, sizeClass, binaryKey);
    this.link(entry);
    this.counters.total_items++;
    this.feed?.emit(CHANGE_STORED, name, entry, 0);
    return 'stored';
  }

  private link(entry: Entry): void {
    this.items.set(entry.key, entry);
    this.linkAtHead(entry);
    this.bytes += entry.size;
    const stats = this.classStats[entry.sizeClass]!;
    stats.number++;
    stats.mem_requested += entry.size;
  }

  /** Evicts from the LRU tail until size more bytes fit; false when they cannot. */
  private makeRoom(size: number): boolean {
    const limit = this.memoryLimit;
    while (this.footprint + size + NODE_ITEM_OVERHEAD > limit) {
      const victim = this.tail;
      if (victim === null) return false;
      if (victim.exptime !== 0 && victim.exptime <= this.clock.now) {
        this.reclaim(victim);
        continue;
      }
      if (!this.options.evictions) return false;
      const stats = this.classStats[victim.sizeClass]!;
      this.counters.evictions++;
      stats.evicted++;
      stats.evicted_time = this.clock.now - victim.time;
      if (!victim.fetched) {
        this.counters.evicted_unfetched++;
        stats.evicted_unfetched++;
      }
      this.onEviction?.(victim);
      this.unlink(victim);
      this.feed?.emit(CHANGE_EVICTED, victim.key, victim, 0);
    }
    return true;
  }

  private access(entry: Entry): void {
    entry.fetched = true;
    this.bump(entry);
  }

  /** Moves an entry to the LRU head without counting a fetch. */
  private bump(entry: Entry): void {
    entry.time = this.clock.now;
    if (this.head === entry) return;
    this.unlinkFromList(entry);
    this.linkAtHead(entry);
  }

  private reclaim(entry: Entry): void {
    const stats = this.classStats[entry.sizeClass]!;
    this.counters.reclaimed++;
    stats.reclaimed++;
    if (!entry.fetched) {
      this.counters.expired_unfetched++;
      stats.expired_unfetched++;
    }
    this.remove(entry);
  }

  /** Unlinks an item that is gone without a delete (expired, flushed), reporting it. */
  private remove(entry: Entry): void {
    this.unlink(entry);
    this.feed?.emit(CHANGE_REMOVED, entry.key, null, 0);
  }

  private unlink(entry: Entry): void {
    this.items.delete(entry.key);
    this.unlinkFromList(entry);
    this.bytes -= entry.size;
    const stats = this.classStats[entry.sizeClass]!;
    stats.number--;
    stats.mem_requested -= entry.size;
  }

  private linkAtHead(entry: Entry): void {
    entry.prev = null;
    entry.next = this.head;
    if (this.head !== null) this.head.prev = entry;
    this.head = entry;
    if (this.tail === null) this.tail = entry;
  }

  private unlinkFromList(entry: Entry): void {
    if (entry.prev !== null) entry.prev.next = entry.next;
    else this.head = entry.next;
    if (entry.next !== null) entry.next.prev = entry.prev;
    else this.tail = entry.prev;
    entry.prev = null;
    entry.next = null;
  }

  /** Drops every item; the caller reports the flush. */
  private clear(): void {
    this.items.clear();
    this.head = null;
    this.tail = null;
    this.bytes = 0;
    this.sweep = null;
    for (const stats of this.classStats) {
      stats.number = 0;
      stats.mem_requested = 0;
    }
  }

  private onTick(now: number): void {
    if (this.flushPending && this.oldestLive <= now) this.flushDue();
    this.sweepExpired(now);
  }

  /** Reclaims expired items a bounded slice at a time, so memory returns without waiting for a get. */
  private sweepExpired(now: number): void {
    if (this.sweep === null) this.sweep = this.items.values();
    for (let seen = 0; seen < SWEEP_PER_TICK; seen++) {
      const next = this.sweep.next();
      if (next.done) {
        this.sweep = null;
        return;
      }
      const entry = next.value;
      if (entry.exptime !== 0 && entry.exptime <= now) this.reclaim(entry);
    }
  }
}
