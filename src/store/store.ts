/**
 * The one storage interface every protocol talks to. Backends (memory now; disk and
 * tiered later) keep their item layout private and hand out read-only views.
 *
 * Calls are synchronous: a backend that must wait for the disk exposes that wait
 * separately so the connection can hold the reply, never the command.
 */
import type { LruConfig } from '../config/config.js';

/**
 * What a read sees of a stored item. Valid until the next call into the store.
 * The value is not handed out as a reference to the item's memory, which is
 * reused once the item goes: a reply copies a small value straight into its
 * output chunk (copyValueTo), so a hit allocates nothing; a holder that keeps
 * the bytes past the call (a reply's large value, the change log, a replication
 * frame) takes a copy (copyValue).
 */
export interface ItemView {
  readonly valueLength: number;
  /** Copies the value into target at offset (target has room); returns the offset after it. */
  copyValueTo(target: Buffer, offset: number): number;
  /**
   * A Buffer holding a copy of the value, never the item's memory. The same Buffer
   * may be handed out again for the same version of the item, so holders may keep
   * it but must not write to it.
   */
  copyValue(): Buffer;
  readonly flags: number;
  /** Absolute unix seconds, 0 for never. */
  readonly exptime: number;
  readonly cas: number;
  /** Read at least once since it was stored (meta `h`). */
  readonly fetched: boolean;
  /** Clock second of the last store or access (meta `l`). */
  readonly lastAccess: number;
  /** Marked invalid by meta `I`: still served, flagged X, and a refresher may win it. */
  readonly stale: boolean;
  /** A meta win token (W) was handed out for it (later readers see Z). */
  readonly tokenSent: boolean;
  /** Stored under a base64 (b) key: meta returns the key base64-encoded. */
  readonly binaryKey: boolean;
  /** Bytes charged for it, and its size class (meta `me`). */
  readonly size: number;
  readonly sizeClass: number;
}

/** store() options, as bits. */
export const STORE_BINARY_KEY = 1;
/** Meta `I` with a CAS: an older CAS still stores, but marks the item stale. */
export const STORE_INVALIDATE = 2;

/** Per size class figures for `stats items` and `stats slabs` (see size-classes.ts). */
export interface ClassStats {
  readonly id: number;
  readonly chunkSize: number;
  readonly perPage: number;
  number: number;
  mem_requested: number;
  evicted: number;
  /** Seconds since the last access of the most recently evicted item. */
  evicted_time: number;
  evicted_unfetched: number;
  expired_unfetched: number;
  reclaimed: number;
  outofmemory: number;
  /** Evicted items that had an expiry time. */
  evicted_nonzero: number;
  /** Pages given to the class, and its chunks in use and free (`stats slabs`). */
  total_pages: number;
  used_chunks: number;
  free_chunks: number;
}

/** `stats` figures about the store's memory, as memcached names them. */
export interface MemoryStats {
  /** The hash table: power of two of its buckets, bytes of bucket tables, whether it is doubling now. */
  hash_power_level: number;
  hash_bytes: number;
  hash_is_expanding: boolean;
  /** Bytes charged for pages handed to classes (`stats slabs`). */
  total_malloced: number;
  /** Pages whose memory could not be had. */
  malloc_fails: number;
}

/** A class's segmented-LRU figures in `stats items`. */
export interface LruClassStats {
  number_hot: number;
  number_warm: number;
  number_cold: number;
  number_temp: number;
  age_hot: number;
  age_warm: number;
  /** Seconds since the last access of COLD's tail item. */
  age: number;
  evicted_active: number;
  lrutail_reflocked: number;
  moves_to_cold: number;
  moves_to_warm: number;
  moves_within_lru: number;
  direct_reclaims: number;
  hits_to_hot: number;
  hits_to_warm: number;
  hits_to_cold: number;
  hits_to_temp: number;
}

/** A store with memcached's segmented LRU (the slab store). */
export interface StoreLru {
  /** Live settings: changing them changes what the store does next. */
  readonly settings: LruConfig;
  /** memcached's lru_maintainer_juggles. */
  readonly juggles: number;
  /** memcached's lru_bumps_dropped. */
  readonly bumpsDropped: number;
  classStats(id: number): LruClassStats;
}

/** One live item as `lru_crawler metadump` and `stats cachedump` list it. */
export interface ItemDump {
  key: string;
  exptime: number;
  lastAccess: number;
  cas: number;
  fetched: boolean;
  sizeClass: number;
  size: number;
  valueLength: number;
}

/** An item as a lower tier keeps it. */
export interface StoredRecord {
  value: Buffer;
  flags: number;
  /** Absolute unix seconds, 0 for never. */
  exptime: number;
  cas: number;
  /** Stored under a base64 (b) key: meta returns the key base64-encoded (see ItemView). */
  binaryKey: boolean;
}

export type StoreMode = 'set' | 'add' | 'replace' | 'append' | 'prepend' | 'cas';

export type StoreResult = 'stored' | 'not_stored' | 'exists' | 'not_found' | 'too_large' | 'no_memory';

/** incr/decr answer: the new value, or why there is none. */
export type DeltaResult = bigint | 'not_found' | 'non_numeric' | 'no_memory' | 'exists';

export interface Store {
  /**
   * A hint before several lookups, changing nothing: the keys key[starts[i],
   * ends[i]) for i in [from, to) will be looked up next (a multi-get's keys).
   */
  prefetch(key: Buffer, starts: Int32Array, ends: Int32Array, from: number, to: number): void;
  /** The item, or null when missing, expired or flushed. Counts as an access for the LRU. */
  get(key: Buffer, keyStart: number, keyEnd: number): ItemView | null;
  /** get and set a new expiry in one step (gat, touch). exptime is the protocol's value. */
  getAndTouch(key: Buffer, keyStart: number, keyEnd: number, exptime: number): ItemView | null;
  /** The item without counting an access: meta commands read its state from before the access. */
  peek(key: Buffer, keyStart: number, keyEnd: number): ItemView | null;
  /**
   * Counts an access to an item from peek(): fetched, last access, LRU position;
   * and, when asGet, a hit in its LRU segment's hits (memcached counts an mg with T as a touch, not there).
   */
  markAccessed(item: ItemView, asGet: boolean): void;
  /** A new expiry for an item from peek(), as the protocol's exptime. */
  setExptime(item: ItemView, exptime: number): void;
  /** Records that a meta win token was handed out for the item. */
  setTokenSent(item: ItemView): void;
  /** Meta `md I`: keeps the item but marks it stale, lets a refresher win again, gives a new CAS. */
  invalidate(item: ItemView): void;
  /** Meta `N` on a miss: an empty placeholder item with the given exptime; null when there is no room. */
  vivify(key: Buffer, keyStart: number, keyEnd: number, exptime: number, binaryKey: boolean): ItemView | null;
  /**
   * Stores data[dataStart, dataEnd) under the key; the store copies what it keeps.
   * casUnique is read in 'cas' mode, and by append/prepend when not 0.
   * options: STORE_BINARY_KEY, STORE_INVALIDATE.
   */
  store(
    mode: StoreMode,
    key: Buffer, keyStart: number, keyEnd: number,
    data: Buffer, dataStart: number, dataEnd: number,
    flags: number, exptime: number, casUnique: number, options?: number,
  ): StoreResult;
  /**
   * False while the tier below refuses changes (a full disk). store() and
   * applyDelta() then answer 'no_memory'; the protocols refuse delete, touch and
   * flush_all themselves, before looking at the item, the same way.
   */
  readonly writable: boolean;
  /** The CAS the last successful store() gave its item. */
  readonly lastCas: number;
  /** Removes the item; false when there was none. */
  delete(key: Buffer, keyStart: number, keyEnd: number): boolean;
  /**
   * Unsigned 64-bit add or subtract on a decimal value, as memcached does. A
   * casUnique other than 0 must match the item's ('exists' otherwise).
   */
  applyDelta(key: Buffer, keyStart: number, keyEnd: number, delta: bigint, incr: boolean, casUnique?: number): DeltaResult;
  /** Invalidates every item now (delay 0) or at the given protocol exptime. */
  flushAll(delay: number): void;
  /** The size class an item of these lengths is filed under (memcached's slabs_clsid); 0 when it can never be stored. */
  sizeClassOf(keyLength: number, valueLength: number, flags: number): number;
  /**
   * The size class of the item the last delete(), applyDelta() or 'cas' store()
   * found (for a 'cas', the item it compared against), for memcached's per-class
   * counters; valid until the next call.
   */
  readonly lastClass: number;
  /** True when a value of this length under a key of this length can ever be stored (memcached's -I). */
  fits(keyLength: number, valueLength: number, flags: number): boolean;
  /** `cache_memlimit`: a new -m, in bytes; false when -m cannot move (memory preallocated with -L). */
  setMemoryLimit(bytes: number): boolean;
  /** Per size class figures, indexed by class id (0 unused). */
  sizeClassStats(): readonly ClassStats[];
  /** The segmented LRU: its settings (`lru`, `stats settings`) and counters. */
  readonly lru: StoreLru;
  memoryStats(): MemoryStats;
  /** `stats reset`: the per-class counters (evicted, reclaimed, ...) back to 0. */
  resetStats(): void;
  /** Visits live items until visit returns false. */
  dump(visit: (item: ItemDump) => boolean): void;
  /** memcached's LRU crawler (`lru_crawler`). */
  readonly crawler: ItemCrawler;
  /** Gauges for `stats`: items now, bytes they take, and the limit. */
  readonly itemCount: number;
  readonly bytesUsed: number;
  readonly bytesLimit: number;
}

/**
 * What the protocols see of memcached's LRU crawler (crawler.c): a walk over
 * the items of some classes, run in the background a bounded batch at a time,
 * that either reclaims the dead ones (`lru_crawler crawl`) or lists the live
 * ones to a client (`lru_crawler metadump`).
 */
export interface ItemCrawler {
  /** memcached's settings.lru_crawler: `lru_crawler enable|disable`, -o no_lru_crawler. */
  readonly enabled: boolean;
  /** -o lru_crawler_sleep, `lru_crawler sleep`: microseconds to pause per 1000 items looked at. */
  sleep: number;
  /** -o lru_crawler_tocrawl, `lru_crawler tocrawl`: items looked at per class per crawl, 0 for all. */
  tocrawl: number;
  /** A crawl or a metadump is under way (memcached's lru_crawler_running). */
  readonly running: boolean;
  /** Crawls started, by request and by the autocrawl (memcached's lru_crawler_starts). */
  readonly starts: number;
  /** False when it was on already (memcached: "ERROR failed to start lru crawler thread"). */
  enable(): boolean;
  /** Turns it off; a crawl under way still finishes. */
  disable(): void;
  /** Starts reclaiming the expired and flushed items of `classes` ("all", or ids joined by commas). */
  crawl(classes: string): CrawlStart;
  /** Starts listing the live items of `classes` ("all", ids, or "hash": every item) to the client. */
  metadump(classes: string, client: CrawlerClient): CrawlStart;
  /** `stats items` crawler_reclaimed and crawler_items_checked of a class. */
  reclaimedIn(id: number): number;
  checkedIn(id: number): number;
}

export interface CrawlerSettings {
  /** memcached's settings.lru_crawler at start (-o no_lru_crawler, no_modern, lru_crawler). */
  enabled: boolean;
  /** -o lru_crawler_sleep, microseconds. */
  sleep: number;
  /** -o lru_crawler_tocrawl, 0 for no limit. */
  tocrawl: number;
  /** The LRU maintainer runs (memcached's autocrawl is scheduled from its thread). */
  background: boolean;
}

/** How a crawl request was taken, as memcached's enum crawler_result_type. */
export type CrawlStart = 'ok' | 'busy' | 'badclass' | 'notstarted' | 'error';

/** Where a metadump goes: the connection that asked for it. */
export interface CrawlerClient {
  /** One live item; the object is reused for the next one. */
  item(item: ItemDump): void;
  /**
   * The end of a batch: send what item() gave. False when the client is behind
   * on reading: the walk then waits until the client calls `resume`.
   */
  flush(resume: () => void): boolean;
  /** The client has gone: the walk stops. */
  readonly gone: boolean;
  /** The walk is over (done, or stopped because the client went). */
  end(): void;
}
