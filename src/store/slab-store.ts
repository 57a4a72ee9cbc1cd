import type { Clock } from '../base/clock.js';
import type { Counters } from '../observe/stats.js';
import { parseU64 } from '../base/c-numbers.js';
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
import { SlabArena, type EvictionListener } from './slabs/arena.js';
import { SlabRebalancer, type RebalanceListener, type RebalanceSettings } from './slabs/rebalancer.js';
import type { StateEntry } from './slabs/state.js';
import { COLD_LRU } from './slabs/lru.js';
import { DEFAULTS, type LruConfig } from '../config/config.js';
import { LruMaintainer } from './slabs/maintainer.js';
import { LruCrawler, type CrawlerOwner } from './slabs/crawler.js';
import { ITEM_FETCHED, ITEM_KEY_BINARY, ITEM_STALE, ITEM_TOKEN_SENT, KEY_OFFSET, memcachedItemTotal } from './slabs/layout.js';
import {
  STORE_BINARY_KEY,
  STORE_INVALIDATE,
  type ClassStats,
  type MemoryStats,
  type DeltaResult,
  type ItemDump,
  type ItemView,
  type LruClassStats,
  type Store,
  type StoreMode,
  type StoreResult,
  type StoredRecord,
  type StoreLru,
  type CrawlerSettings,
} from './store.js';

const SPACE = 0x20;

export interface SlabStoreOptions {
  /** -m, in bytes: slab pages are carved from it. */
  memoryLimit: number;
  /** -I, in bytes. */
  maxItemSize: number;
  /** -M turns this off: a full cache refuses writes instead of evicting. */
  evictions: boolean;
  /** -C turns this off: items carry no CAS (it reads as 0) and cost 8 bytes less. */
  casEnabled: boolean;
  /** -f and -n: the size classes. */
  slabGrowthFactor: number;
  slabMinSize: number;
  /** The segmented LRU's settings (-o lru_maintainer, hot_lru_pct, ...); memcached's defaults otherwise. */
  lru?: LruConfig;
  /** -o slab_chunk_max, in bytes (default half a page). */
  slabChunkMax?: number;
  /** -o hashpower (default 16). */
  hashPower?: number;
  /** -o no_slab_reassign turns this off: pages are then charged only their chunks. */
  slabReassign?: boolean;
  /** -L: a page per class at start. */
  preallocate?: boolean;
  /** Bytes counted as allocated before the first page: memcached's T_MEMD_INITIAL_MALLOC. */
  initialMalloced?: number;
  /** The LRU crawler's settings; memcached's defaults when absent. */
  crawler?: CrawlerSettings;
  /** -o slab_reassign, slab_automove, slab_automove_ratio, slab_automove_window: the slab page mover. */
  rebalance?: RebalanceSettings;
}

/**
 * The one view a SlabStore hands out: its getters read the arena at `ref`, so
 * it is valid until the next call into the store (store.ts's contract), which
 * may point it at another item. The value is only ever copied out of its
 * chunk(s), never referenced: a chunk is reused as soon as its item goes.
 */
class SlabItemView implements ItemView {
  ref = 0;
  /** The last copyValue(), of the item at sharedRef with CAS sharedCas. */
  private shared: Buffer | null = null;
  private sharedRef = 0;
  private sharedCas = 0;

  constructor(private readonly arena: SlabArena) {}

  /** Points the view at an item; returns it. */
  at(ref: number): this {
    this.ref = ref;
    return this;
  }

  get valueLength(): number {
    return this.arena.valueLength(this.ref);
  }

  copyValueTo(target: Buffer, offset: number): number {
    return this.arena.copyValueTo(this.ref, target, offset);
  }

  /**
   * The last copy is handed out again while its item is unchanged, so a large
   * value asked for by many clients (replies queue it) is copied once. Every
   * change of a value gives its item a new CAS, and so does every new item in a
   * chunk; under -C every CAS is 0, and each call makes a copy of its own.
   */
  copyValue(): Buffer {
    const arena = this.arena;
    const ref = this.ref;
    const cas = arena.cas(ref);
    if (cas !== 0 && ref === this.sharedRef && cas === this.sharedCas && this.shared !== null) return this.shared;
    const value = Buffer.allocUnsafe(arena.valueLength(ref));
    arena.copyValueTo(ref, value, 0);
    if (cas !== 0) {
      this.shared = value;
      this.sharedRef = ref;
      this.sharedCas = cas;
    }
    return value;
  }

  /** The key as a latin1 string: only for the eviction log and the change feed, never on the memory-only path. */
  get key(): string {
    const pages = this.arena.pages;
    const start = pages.offsetOf(this.ref) + KEY_OFFSET;
    return pages.bytes[(this.ref >>> 16) - 1]!.toString('latin1', start, start + this.arena.keyLength(this.ref));
  }

  get flags(): number {
    return this.arena.clientFlags(this.ref);
  }

  get exptime(): number {
    return this.arena.exptime(this.ref);
  }

  get cas(): number {
    return this.arena.cas(this.ref);
  }

  get fetched(): boolean {
    return this.arena.hasFlag(this.ref, ITEM_FETCHED);
  }

  get lastAccess(): number {
    return this.arena.time(this.ref);
  }

  get stale(): boolean {
    return this.arena.hasFlag(this.ref, ITEM_STALE);
  }

  get tokenSent(): boolean {
    return this.arena.hasFlag(this.ref, ITEM_TOKEN_SENT);
  }

  get binaryKey(): boolean {
    return this.arena.hasFlag(this.ref, ITEM_KEY_BINARY);
  }

  get size(): number {
    const arena = this.arena;
    const ref = this.ref;
    return memcachedItemTotal(arena.keyLength(ref), arena.valueLength(ref), arena.clientFlags(ref), arena.useCas);
  }

  get sizeClass(): number {
    return this.arena.classId(this.ref);
  }
}

/** The store's segmented LRU as `stats` and the `lru` command see it. */
class SlabLru implements StoreLru {
  constructor(
    private readonly arena: SlabArena,
    private readonly maintainer: LruMaintainer,
  ) {}

  get settings(): LruConfig {
    return this.arena.lruSettings;
  }

  get juggles(): number {
    return this.maintainer.juggles;
  }

  get bumpsDropped(): number {
    return this.arena.bumpsDropped;
  }

  classStats(id: number): LruClassStats {
    return this.arena.itemStats(id);
  }
}

/**
 * The Store on slab memory (issue 15): items live in a SlabArena's chunks, found
 * by a hash over their key bytes, with no JS object, string or Buffer per item.
 * It keeps memcached's rules — counters, flush_all with a delay, expiry, CAS,
 * incr/decr in place — and reports to the change feed and reads misses from the
 * tier below; -m counts slab pages, and a full class evicts from its own LRU.
 *
 * Keys reach the feed and the tier below as latin1 strings (their interfaces take
 * strings today); they are built only when a feed or a tier is attached.
 */
export class SlabStore implements Store, EvictionListener, CrawlerOwner, RebalanceListener {
  readonly arena: SlabArena;
  /** `slabs reassign`, `slabs automove` and their `stats`: memcached's slab page mover. */
  readonly rebalancer: SlabRebalancer;
  readonly lru: StoreLru;
  /** memcached's LRU maintainer: juggles the segments and moves hit COLD items to WARM, a bounded run at a time. */
  readonly maintainer: LruMaintainer;
  /** memcached's LRU crawler; its autocrawls reclaim expired items nobody asks for. */
  readonly crawler: LruCrawler;
  private readonly view: SlabItemView;
  private casCounter = 0;
  private lastClassId = 0;
  private memoryLimit: number;
  private flushPending = false;
  private readonly classStats: ClassStats[] = [];
  private feed: ChangeFeed | null = null;
  private lower: LowerTier | null = null;
  /** Reclaims (and unfetched ones) in the arena's per-class figures already added to the counters. */
  private reclaimedCounted = 0;
  private expiredUnfetchedCounted = 0;
  /** Reused for incr/decr: a counter's bytes and its new digits. */
  private scratch = Buffer.allocUnsafeSlow(64);

  /** Told of each item evicted to make room (memcached's `watch evictions`); the item is valid during the call. */
  onEviction: ((item: ItemView & { readonly key: string }) => void) | null = null;

  constructor(
    private readonly options: SlabStoreOptions,
    private readonly clock: Clock,
    private readonly counters: Counters,
  ) {
    this.memoryLimit = options.memoryLimit;
    this.arena = new SlabArena({
      memoryLimit: options.memoryLimit,
      maxItemSize: options.maxItemSize,
      growthFactor: options.slabGrowthFactor,
      minSize: options.slabMinSize,
      evictions: options.evictions,
      useCas: options.casEnabled,
      slabChunkMax: options.slabChunkMax,
      lru: { ...DEFAULTS.lru, ...options.lru },
      hashPower: options.hashPower,
      slabReassign: options.slabReassign,
      preallocate: options.preallocate,
      initialMalloced: options.initialMalloced,
    });
    this.maintainer = new LruMaintainer(this.arena);
    this.lru = new SlabLru(this.arena, this.maintainer);
    if (this.arena.lruSettings.maintainer) this.maintainer.start();
    this.arena.evictionListener = this;
    this.rebalancer = new SlabRebalancer(this.arena, options.rebalance ?? { reassign: true, automove: 1, ratio: 0.8, window: 30 });
    this.rebalancer.listener = this;
    this.arena.now = clock.now;
    this.view = new SlabItemView(this.arena);
    this.crawler = new LruCrawler(this.arena, this, options.crawler ?? {
      enabled: DEFAULTS.lruCrawler, sleep: DEFAULTS.lruCrawlerSleep, tocrawl: DEFAULTS.lruCrawlerToCrawl, background: DEFAULTS.lru.maintainer,
    });
    const pages = this.arena.pages;
    for (let id = 0; id <= this.arena.classes.largest; id++) {
      this.classStats.push({
        id,
        chunkSize: id === 0 ? 0 : pages.chunkSize[id]!,
        perPage: id === 0 ? 0 : pages.perPage[id]!,
        number: 0,
        mem_requested: 0,
        evicted: 0,
        evicted_time: 0,
        evicted_unfetched: 0,
        expired_unfetched: 0,
        reclaimed: 0,
        outofmemory: 0,
        evicted_nonzero: 0,
        total_pages: 0,
        used_chunks: 0,
        free_chunks: 0,
      });
    }
    clock.onTick((now) => this.onTick(now));
    // memcached's maintainer crawls every class once as it starts.
    this.crawler.tick();
  }

  /** Stops the maintainer's runs (the server is closing). */
  stop(): void {
    this.maintainer.stop();
  }

  reportTo(feed: ChangeFeed): void {
    this.feed = feed;
  }

  readFrom(lower: LowerTier): void {
    this.lower = lower;
  }

  /**
   * Puts a record from the tier below into memory without reporting it as a
   * change, and without evicting what is loaded already. False when it does not fit.
   */
  restore(name: string, record: StoredRecord): boolean {
    if (record.cas > this.casCounter) this.casCounter = record.cas;
    const arena = this.arena;
    arena.now = this.clock.now;
    const key = Buffer.from(name, 'latin1');
    if (arena.find(key, 0, key.length) !== 0) return false;
    const evictions = arena.evictions;
    arena.evictions = false;
    const ref = arena.allocate(key.length, record.value.length, record.flags, record.exptime);
    arena.evictions = evictions;
    if (ref <= 0) return false;
    arena.writeKey(ref, key, 0, key.length);
    arena.writeValue(ref, 0, record.value, 0, record.value.length);
    arena.setCas(ref, record.cas);
    if (record.binaryKey) arena.setFlag(ref, ITEM_KEY_BINARY);
    arena.link(ref);
    return true;
  }

  /**
   * The arena's state and the store's own numbers (the CAS counter, a pending
   * flush_all), by name, for a warm restart (-e, warm-restart.ts).
   */
  stateEntries(): StateEntry[] {
    return [
      ...this.arena.stateEntries(),
      ...this.rebalancer.stateEntries(),
      { kind: 'scalar', name: 'store.casCounter', get: () => this.casCounter, set: (value) => (this.casCounter = value) },
      { kind: 'scalar', name: 'store.flushPending', get: () => Number(this.flushPending), set: (value) => (this.flushPending = value !== 0) },
    ];
  }

  /** Before the state is saved. */
  prepareSave(): void {
    // Queued COLD hits hold their items: done now, nothing of them is saved.
    this.arena.processBumps(Number.POSITIVE_INFINITY);
    // A page move under way ends now if no holder keeps it going (its state is saved either way).
    this.rebalancer.finishNow();
  }

  /** After the state was loaded: nothing of the old process's readers or copies is left. */
  stateLoaded(): void {
    const arena = this.arena;
    arena.now = this.clock.now;
    arena.stateLoaded();
    this.rebalancer.stateLoaded();
    // The per-class reclaim figures came back; the global counters start from 0 as a new process's.
    let reclaimed = 0;
    let expiredUnfetched = 0;
    for (let id = 1; id <= arena.classes.largest; id++) {
      reclaimed += arena.reclaimed[id]!;
      expiredUnfetched += arena.expiredUnfetched[id]!;
    }
    this.reclaimedCounted = reclaimed;
    this.expiredUnfetchedCounted = expiredUnfetched;
  }

  get itemCount(): number {
    return this.arena.currItems;
  }

  /** memcached's `bytes`: what the items in the chunks asked for. */
  get bytesUsed(): number {
    const requested = this.arena.pages.requested;
    let sum = 0;
    for (let id = 1; id <= this.arena.classes.largest; id++) sum += requested[id]!;
    return sum;
  }

  get bytesLimit(): number {
    return this.memoryLimit;
  }

  /**
   * Pages already given to classes stay theirs; the new limit bounds pages handed
   * out from now on. Refused when -L preallocated the pages, as memcached refuses.
   */
  setMemoryLimit(bytes: number): boolean {
    if (this.options.preallocate === true) return false;
    this.memoryLimit = bytes;
    this.arena.setMemoryLimit(bytes);
    return true;
  }

  sizeClassOf(keyLength: number, valueLength: number, flags: number): number {
    const total = memcachedItemTotal(keyLength, valueLength, flags, this.options.casEnabled);
    return total > this.options.maxItemSize ? 0 : this.arena.classes.classOf(total);
  }

  get lastClass(): number {
    return this.lastClassId;
  }

  fits(keyLength: number, valueLength: number, flags: number): boolean {
    return this.sizeOf(keyLength, valueLength, flags) <= this.options.maxItemSize;
  }

  sizeClassStats(): readonly ClassStats[] {
    const arena = this.arena;
    for (let id = 1; id < this.classStats.length; id++) {
      const stats = this.classStats[id]!;
      stats.number = arena.lru.classCount(id);
      stats.mem_requested = arena.pages.requested[id]!;
      stats.evicted = arena.evicted[id]!;
      stats.evicted_time = arena.evictedTime[id]!;
      stats.evicted_unfetched = arena.evictedUnfetched[id]!;
      stats.expired_unfetched = arena.expiredUnfetched[id]!;
      stats.reclaimed = arena.reclaimed[id]!;
      stats.outofmemory = arena.outOfMemory[id]!;
      stats.evicted_nonzero = arena.evictedNonzero[id]!;
      stats.total_pages = arena.pages.totalPages[id]!;
      stats.used_chunks = arena.pages.usedChunks(id);
      stats.free_chunks = arena.pages.freeChunks(id);
    }
    return this.classStats;
  }

  memoryStats(): MemoryStats {
    const arena = this.arena;
    return {
      hash_power_level: arena.hashPower,
      hash_bytes: arena.hashBytes,
      hash_is_expanding: arena.isExpanding,
      total_malloced: arena.totalMalloced,
      malloc_fails: arena.mallocFails,
    };
  }

  /** `stats reset`, with the counters: the arena's per-class figures start again from 0. */
  resetStats(): void {
    this.arena.resetItemStats();
    this.rebalancer.resetStats();
    this.reclaimedCounted = 0;
    this.expiredUnfetchedCounted = 0;
  }

  dump(visit: (item: ItemDump) => boolean): void {
    const arena = this.arena;
    const now = this.clock.now;
    arena.now = now;
    const view = this.view;
    for (let ref = arena.nextItem(0); ref !== 0; ref = arena.nextItem(ref)) {
      const exptime = arena.exptime(ref);
      if ((exptime !== 0 && exptime <= now) || arena.isFlushed(ref)) continue;
      view.at(ref);
      const more = visit({
        key: view.key,
        exptime,
        lastAccess: arena.time(ref),
        cas: arena.cas(ref),
        fetched: arena.hasFlag(ref, ITEM_FETCHED),
        sizeClass: arena.classId(ref),
        size: view.size,
        valueLength: arena.valueLength(ref),
      });
      if (!more) return;
    }
  }

  private sizeOf(keyLength: number, valueLength: number, flags: number): number {
    return memcachedItemTotal(keyLength, valueLength, flags, this.options.casEnabled);
  }

  prefetch(key: Buffer, starts: Int32Array, ends: Int32Array, from: number, to: number): void {
    this.arena.prefetch(key, starts, ends, from, to);
  }

  get(key: Buffer, keyStart: number, keyEnd: number): ItemView | null {
    const ref = this.lookup(key, keyStart, keyEnd, true);
    if (ref === 0) return null;
    // A fetch hit: fetched/active marks, no relink (the maintainer moves items; see SlabArena.bump).
    this.arena.bump(ref);
    return this.view.at(ref);
  }

  peek(key: Buffer, keyStart: number, keyEnd: number): ItemView | null {
    const ref = this.lookup(key, keyStart, keyEnd, true);
    return ref === 0 ? null : this.view.at(ref);
  }

  markAccessed(item: ItemView, asGet: boolean): void {
    this.arena.bump((item as SlabItemView).ref, asGet);
  }

  setExptime(item: ItemView, exptime: number): void {
    const view = item as SlabItemView;
    this.arena.setExptime(view.ref, this.clock.expiryFrom(exptime));
    if (this.feed !== null) this.feed.emit(CHANGE_TOUCHED, view.key, view, 0);
  }

  setTokenSent(item: ItemView): void {
    this.arena.setFlag((item as SlabItemView).ref, ITEM_TOKEN_SENT);
  }

  invalidate(item: ItemView): void {
    const view = item as SlabItemView;
    const arena = this.arena;
    arena.setFlag(view.ref, ITEM_STALE);
    arena.clearFlag(view.ref, ITEM_TOKEN_SENT);
    arena.setCas(view.ref, this.nextCas());
    if (this.feed !== null) this.feed.emit(CHANGE_INVALIDATED, view.key, view, 0);
  }

  vivify(key: Buffer, keyStart: number, keyEnd: number, exptime: number, binaryKey: boolean): ItemView | null {
    const ref = this.put(0, key, keyStart, keyEnd, key, 0, 0, 0, this.clock.expiryFrom(exptime), binaryKey);
    return ref === 0 ? null : this.view.at(ref);
  }

  getAndTouch(key: Buffer, keyStart: number, keyEnd: number, exptime: number): ItemView | null {
    const ref = this.lookup(key, keyStart, keyEnd, true);
    if (ref === 0) return null;
    const view = this.view.at(ref);
    this.arena.setExptime(ref, this.clock.expiryFrom(exptime));
    if (this.feed !== null) this.feed.emit(CHANGE_TOUCHED, view.key, view, 0);
    // A touch marks the item as a fetch does, but memcached counts it in touch_hits, not the LRU's hits.
    this.arena.bump(ref, false);
    return view;
  }

  store(
    mode: StoreMode,
    key: Buffer, keyStart: number, keyEnd: number,
    data: Buffer, dataStart: number, dataEnd: number,
    flags: number, exptime: number, casUnique: number, options = 0,
  ): StoreResult {
    if (!this.writable) return 'no_memory';
    const arena = this.arena;
    // memcached allocates the new item before it looks for the old one, and in a flat LRU
    // an allocation first reclaims dead items at its class's tail: an expired or flushed
    // item there is counted reclaimed (issue_183.t), not found and counted get_flushed.
    if (!arena.lruSettings.segmented && mode !== 'append' && mode !== 'prepend') {
      const id = this.sizeClassOf(keyEnd - keyStart, dataEnd - dataStart, flags);
      if (id !== 0 && arena.pullTail(id, COLD_LRU, 0, 0, 0) > 0) this.countArenaReclaims();
    }
    // A plain set replaces whatever the disk holds: no need to read it first.
    const existing = this.lookup(key, keyStart, keyEnd, mode !== 'set');
    const binaryKey = (options & STORE_BINARY_KEY) !== 0;
    let markStale = false;
    switch (mode) {
      case 'add':
        if (existing !== 0) {
          // memcached updates the item's place in the LRU (do_item_update) but does not count this as a fetch.
          arena.update(existing);
          return 'not_stored';
        }
        break;
      case 'replace':
        if (existing === 0) return 'not_stored';
        break;
      case 'append':
      case 'prepend':
        if (existing === 0) return 'not_stored';
        if (casUnique !== 0 && arena.cas(existing) !== casUnique) return 'exists';
        break;
      case 'cas':
        if (existing === 0) return 'not_found';
        this.lastClassId = arena.classId(existing);
        if (this.options.casEnabled && arena.cas(existing) === casUnique) break;
        // Meta I: an older CAS still stores the value, marked stale; under -C nothing matches.
        if (this.options.casEnabled && (options & STORE_INVALIDATE) !== 0 && casUnique < arena.cas(existing)) {
          markStale = true;
          break;
        }
        return 'exists';
      case 'set':
        break;
    }

    if (existing !== 0 && (mode === 'append' || mode === 'prepend')) {
      // Appending keeps the old item's flags and expiry, as memcached does.
      const oldFlags = arena.clientFlags(existing);
      const oldLength = arena.valueLength(existing);
      const added = dataEnd - dataStart;
      if (this.sizeOf(keyEnd - keyStart, oldLength + added, oldFlags) > this.options.maxItemSize) return 'not_stored';
      // Held while the new item is allocated, so that eviction cannot take the bytes being joined.
      arena.pin(existing);
      const ref = arena.allocate(keyEnd - keyStart, oldLength + added, oldFlags, arena.exptime(existing));
      arena.unpin(existing);
      if (ref <= 0) {
        this.refused(existing, key, keyStart, keyEnd);
        return 'no_memory';
      }
      arena.writeKey(ref, key, keyStart, keyEnd);
      this.copyValue(existing, ref, mode === 'append' ? 0 : added);
      arena.writeValue(ref, mode === 'append' ? oldLength : 0, data, dataStart, dataEnd);
      return this.linkNew(existing, ref, key, keyStart, keyEnd, binaryKey) !== 0 ? 'stored' : 'no_memory';
    }

    const size = this.sizeOf(keyEnd - keyStart, dataEnd - dataStart, flags);
    if (size > this.options.maxItemSize) return 'too_large';
    if (!markStale) {
      const ref = this.put(existing, key, keyStart, keyEnd, data, dataStart, dataEnd, flags, this.clock.expiryFrom(exptime), binaryKey);
      return ref === 0 ? 'no_memory' : 'stored';
    }
    // A stale write keeps the TTL and the win-token state of the item it replaces.
    const keptExptime = arena.exptime(existing);
    const tokenSent = arena.hasFlag(existing, ITEM_TOKEN_SENT);
    const ref = this.put(existing, key, keyStart, keyEnd, data, dataStart, dataEnd, flags, keptExptime, binaryKey, true, tokenSent);
    return ref === 0 ? 'no_memory' : 'stored';
  }

  get writable(): boolean {
    return this.lower === null || this.lower.writable;
  }

  get lastCas(): number {
    return this.casCounter;
  }

  delete(key: Buffer, keyStart: number, keyEnd: number): boolean {
    const ref = this.lookup(key, keyStart, keyEnd, true);
    if (ref === 0) return false;
    const name = this.feed === null ? '' : key.toString('latin1', keyStart, keyEnd);
    this.lastClassId = this.arena.classId(ref);
    this.arena.free(ref);
    if (this.feed !== null) this.feed.emit(CHANGE_DELETED, name, null, 0);
    return true;
  }

  applyDelta(key: Buffer, keyStart: number, keyEnd: number, delta: bigint, incr: boolean, casUnique = 0): DeltaResult {
    if (!this.writable) return 'no_memory';
    const arena = this.arena;
    const ref = this.lookup(key, keyStart, keyEnd, true);
    if (ref === 0) return 'not_found';
    const length = arena.valueLength(ref);
    // memcached refuses an empty value before it compares the CAS, other non-numbers after.
    if (length === 0) return 'non_numeric';
    if (casUnique !== 0 && arena.cas(ref) !== casUnique) return 'exists';
    this.lastClassId = arena.classId(ref);
    // strtoull skips any run of leading spaces and zeros, so a long value may still be a number:
    // such a value (rare) is read through a buffer of its own.
    const scratch = length <= this.scratch.length ? this.scratch : Buffer.allocUnsafe(length);
    arena.copyValueTo(ref, scratch, 0);
    const current = parseU64(scratch, 0, length);
    if (current === null) return 'non_numeric';
    let next: bigint;
    if (incr) next = BigInt.asUintN(64, current + delta);
    else next = current < delta ? 0n : current - delta;

    // memcached rewrites a number that fits in place and pads the rest with spaces,
    // so a shrinking counter keeps its length ("10" decr 1 -> "9 ").
    const digits = next.toString();
    const newLength = Math.max(digits.length, length);
    scratch.write(digits, 0, 'latin1');
    scratch.fill(SPACE, digits.length, newLength);
    if (newLength === length) {
      // In place, as memcached: the item keeps its fetched, stale and win-token state.
      arena.writeValue(ref, 0, scratch, 0, newLength);
      arena.setCas(ref, this.nextCas());
      if (this.feed !== null) {
        const view = this.view.at(ref);
        this.feed.emit(CHANGE_STORED, view.key, view, 0);
      }
      return next;
    }
    const stored = this.put(ref, key, keyStart, keyEnd, scratch, 0, newLength, arena.clientFlags(ref), arena.exptime(ref), arena.hasFlag(ref, ITEM_KEY_BINARY));
    return stored !== 0 ? next : 'no_memory';
  }

  flushAll(delay: number): void {
    const now = this.clock.now;
    const arena = this.arena;
    arena.now = now;
    // Items an earlier immediate flush left in place go now: a new oldestLive would bring them back.
    if (arena.oldestCas !== 0) {
      this.clearFlushed();
      arena.oldestCas = 0;
    }
    if (delay <= 0 && arena.useCas) {
      // memcached's way with CAS on: nothing is freed here. What was stored before
      // now has an older CAS than the flush's (the second alone would also take
      // items stored after the flush in the same second): a get that finds one
      // counts get_flushed and removes it, a set of its key reclaims it, and the LRU
      // tails and the crawler's next runs reclaim the rest.
      arena.oldestLive = now - 1;
      arena.oldestCas = this.casCounter + 1;
      this.flushPending = false;
      if (this.feed !== null) this.feed.emit(CHANGE_FLUSHED, '', null, 0);
      return;
    }
    // memcached's oldest_live: the second before the flush's with CAS on, the flush's own
    // second without. With no CAS to draw an exact line, items stored later in that same
    // second are flushed too, as memcached's are (flush-all.t checks that it happens).
    const flushTime = delay > 0 ? this.clock.expiryFrom(delay) : now;
    const oldestLive = arena.useCas ? flushTime - 1 : flushTime;
    arena.oldestLive = oldestLive;
    this.flushPending = oldestLive > now;
    if (delay <= 0) {
      this.clear();
      if (this.feed !== null) this.feed.emit(CHANGE_FLUSHED, '', null, 0);
      return;
    }
    if (this.feed !== null) this.feed.emit(CHANGE_FLUSH_SCHEDULED, '', null, this.clock.expiryFrom(delay));
    if (!this.flushPending) this.flushDue();
  }

  /** The arena is about to evict an item to make room: count it and tell the log and the feed. */
  evicting(arena: SlabArena, ref: number): void {
    this.counters.evictions++;
    if (!arena.hasFlag(ref, ITEM_FETCHED)) this.counters.evicted_unfetched++;
    // slab_automove 2: every eviction asks for a page for its class (a move starts on the next turn of the loop).
    if (this.rebalancer.settings.automove === 2) this.rebalancer.evicted(arena.classId(ref));
    if (this.onEviction === null && this.feed === null) return;
    const view = this.view.at(ref);
    if (this.onEviction !== null) this.onEviction(view);
    if (this.feed !== null) this.feed.emit(CHANGE_EVICTED, view.key, view, 0);
  }

  /** The slab mover lets go of an item: not an eviction in `stats`, but memory no longer has it. */
  dropping(ref: number, dead: boolean): void {
    if (this.feed !== null) {
      const view = this.view.at(ref);
      this.feed.emit(dead ? CHANGE_REMOVED : CHANGE_EVICTED, view.key, dead ? null : view, 0);
    }
  }

  private flushDue(): void {
    this.flushPending = false;
    this.clear();
    if (this.feed !== null) this.feed.emit(CHANGE_FLUSH_DUE, '', null, 0);
  }

  /** The live item with the key, or 0; an expired or flushed one is removed on the way. */
  private lookup(key: Buffer, keyStart: number, keyEnd: number, fromBacking: boolean): number {
    const arena = this.arena;
    const now = this.clock.now;
    arena.now = now;
    let ref = arena.find(key, keyStart, keyEnd);
    if (ref === 0) {
      if (!fromBacking || this.lower === null) return 0;
      return this.fetchFromBacking(key, keyStart, keyEnd);
    }
    if (arena.isFlushed(ref)) {
      this.counters.get_flushed++;
      this.remove(ref);
      return 0;
    }
    const exptime = arena.exptime(ref);
    if (exptime !== 0 && exptime <= now) {
      this.counters.get_expired++;
      this.reclaim(ref);
      return 0;
    }
    return ref;
  }

  /** A miss in memory: the tier below may hold the item (evicted earlier, or not loaded). */
  private fetchFromBacking(key: Buffer, keyStart: number, keyEnd: number): number {
    const name = key.toString('latin1', keyStart, keyEnd);
    const record = this.lower!.fetch(name);
    if (record === null) return 0;
    if (record.exptime !== 0 && record.exptime <= this.clock.now) {
      if (this.feed !== null) this.feed.emit(CHANGE_REMOVED, name, null, 0);
      return 0;
    }
    const arena = this.arena;
    const ref = arena.allocate(keyEnd - keyStart, record.value.length, record.flags, record.exptime);
    if (ref <= 0) return 0;
    if (record.cas > this.casCounter) this.casCounter = record.cas;
    arena.writeKey(ref, key, keyStart, keyEnd);
    arena.writeValue(ref, 0, record.value, 0, record.value.length);
    arena.setCas(ref, record.cas);
    if (record.binaryKey) arena.setFlag(ref, ITEM_KEY_BINARY);
    arena.link(ref);
    this.counters.disk_promotions++;
    return ref;
  }

  private nextCas(): number {
    return this.options.casEnabled ? ++this.casCounter : 0;
  }

  /**
   * Stores a new item in place of `existing` (0: none): the old item goes first, so its room counts as free. The new ref, or 0 when there
   * was no room (the old item is then gone too, and the tier below told so).
   */
  private put(
    existing: number,
    key: Buffer, keyStart: number, keyEnd: number,
    data: Buffer, dataStart: number, dataEnd: number,
    flags: number, exptime: number, binaryKey: boolean, stale = false, tokenSent = false,
  ): number {
    const arena = this.arena;
    // The data may be the scratch of applyDelta or a request buffer; neither lives in the arena.
    if (existing !== 0) arena.free(existing);
    const ref = arena.allocate(keyEnd - keyStart, dataEnd - dataStart, flags, exptime);
    if (ref <= 0) return this.refused(existing === 0 ? 0 : -1, key, keyStart, keyEnd);
    arena.writeKey(ref, key, keyStart, keyEnd);
    arena.writeValue(ref, 0, data, dataStart, dataEnd);
    if (stale) arena.setFlag(ref, ITEM_STALE);
    if (tokenSent) arena.setFlag(ref, ITEM_TOKEN_SENT);
    return this.linkNew(0, ref, key, keyStart, keyEnd, binaryKey);
  }

  /** Links an item written in full (replacing `existing`, if not 0), gives it a CAS and reports it. */
  private linkNew(existing: number, ref: number, key: Buffer, keyStart: number, keyEnd: number, binaryKey: boolean): number {
    const arena = this.arena;
    if (binaryKey) arena.setFlag(ref, ITEM_KEY_BINARY);
    arena.setCas(ref, this.nextCas());
    if (existing !== 0) arena.replace(existing, ref);
    else arena.link(ref);
    this.counters.total_items++;
    if (this.feed !== null) this.feed.emit(CHANGE_STORED, key.toString('latin1', keyStart, keyEnd), this.view.at(ref), 0);
    return ref;
  }

  /**
   * No room for a new item: an old one (existing > 0: still linked, freed here;
   * -1: freed already) is gone from memory and must not come back from the tier below.
   */
  private refused(existing: number, key: Buffer, keyStart: number, keyEnd: number): 0 {
    if (existing > 0) this.arena.free(existing);
    if (existing !== 0 && this.feed !== null) this.feed.emit(CHANGE_REMOVED, key.toString('latin1', keyStart, keyEnd), null, 0);
    return 0;
  }

  /** Copies an item's whole value into another's at byte `at`, a chunk at a time through the scratch buffer. */
  private copyValue(from: number, to: number, at: number): void {
    const arena = this.arena;
    const length = arena.valueLength(from);
    if (this.scratch.length < Math.min(length, 65536)) this.scratch = Buffer.allocUnsafeSlow(Math.min(length, 65536));
    const scratch = this.scratch;
    for (let done = 0; done < length; ) {
      const n = Math.min(scratch.length, length - done);
      arena.copyValueTo(from, scratch, 0, done, done + n);
      arena.writeValue(to, at + done, scratch, 0, n);
      done += n;
    }
  }

  private reclaim(ref: number): void {
    this.countReclaim(ref);
    this.remove(ref);
  }

  /** Counts a dead item's memory as reclaimed (memcached's reclaimed, expired_unfetched). */
  private countReclaim(ref: number): void {
    const arena = this.arena;
    const id = arena.classId(ref);
    this.counters.reclaimed++;
    arena.reclaimed[id]!++;
    this.reclaimedCounted++;
    if (!arena.hasFlag(ref, ITEM_FETCHED)) {
      this.counters.expired_unfetched++;
      arena.expiredUnfetched[id]!++;
      this.expiredUnfetchedCounted++;
    }
  }

  /** Frees an item that is gone without a delete (expired, flushed), reporting it. */
  private remove(ref: number): void {
    const name = this.feed === null ? '' : this.view.at(ref).key;
    this.arena.free(ref);
    if (this.feed !== null) this.feed.emit(CHANGE_REMOVED, name, null, 0);
  }

  /** Frees the items a lazy flush (flushAll) left in place. */
  private clearFlushed(): void {
    const arena = this.arena;
    for (let ref = arena.nextItem(0); ref !== 0; ) {
      const next = arena.nextItem(ref);
      if (arena.isFlushed(ref)) {
        this.countReclaim(ref);
        arena.free(ref);
      }
      ref = next;
    }
  }

  /**
   * Frees every item; the caller reports the flush. memcached leaves flushed items
   * to be reclaimed as it comes upon them; their memory comes back here at once,
   * and is counted as reclaimed then.
   */
  private clear(): void {
    const arena = this.arena;
    for (let ref = arena.nextItem(0); ref !== 0; ) {
      const next = arena.nextItem(ref);
      this.countReclaim(ref);
      arena.free(ref);
      ref = next;
    }
  }

  private onTick(now: number): void {
    this.arena.now = now;
    this.countArenaReclaims();
    // cache_memlimit lowered -m below what is charged: pages with no chunk in use go back.
    const pages = this.arena.pages;
    if (pages.releasePending) pages.releaseFreePages();
    if (this.flushPending && this.arena.oldestLive <= now) this.flushDue();
    this.crawler.tick();
    this.rebalancer.tick(now);
  }

  /** The crawler found a dead item: free it and report it, its expired_unfetched in the counters now. */
  reclaimCrawled(ref: number, unfetched: boolean): void {
    if (unfetched) {
      this.counters.expired_unfetched++;
      this.expiredUnfetchedCounted++;
    }
    this.remove(ref);
  }

  /**
   * The arena reclaims dead items at an LRU tail on its own when it needs a chunk
   * (not through lookup or the crawler): add them to the global counters,
   * once a tick, from its per-class figures.
   */
  private countArenaReclaims(): void {
    const arena = this.arena;
    let reclaimed = 0;
    let expiredUnfetched = 0;
    for (let id = 1; id <= arena.classes.largest; id++) {
      reclaimed += arena.reclaimed[id]!;
      expiredUnfetched += arena.expiredUnfetched[id]!;
    }
    this.counters.reclaimed += reclaimed - this.reclaimedCounted;
    this.counters.expired_unfetched += expiredUnfetched - this.expiredUnfetchedCounted;
    this.reclaimedCounted = reclaimed;
    this.expiredUnfetchedCounted = expiredUnfetched;
  }
}
