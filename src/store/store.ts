/**
 * The one storage interface every protocol talks to. Backends (memory now; disk and
 * tiered later) keep their item layout private and hand out read-only views.
 *
 * Calls are synchronous: a backend that must wait for the disk exposes that wait
 * separately so the connection can hold the reply, never the command.
 */

/** What a read sees of a stored item. Valid until the next call into the store. */
export interface ItemView {
  readonly value: Buffer;
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
  /** Slab pages the class holds and its chunks in use and free (the slab store; undefined on the heap store). */
  totalPages?: number;
  usedChunks?: number;
  freeChunks?: number;
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
  /** The item, or null when missing, expired or flushed. Counts as an access for the LRU. */
  get(key: Buffer, keyStart: number, keyEnd: number): ItemView | null;
  /** get and set a new expiry in one step (gat, touch). exptime is the protocol's value. */
  getAndTouch(key: Buffer, keyStart: number, keyEnd: number, exptime: number): ItemView | null;
  /** The item without counting an access: meta commands read its state from before the access. */
  peek(key: Buffer, keyStart: number, keyEnd: number): ItemView | null;
  /** Counts an access to an item from peek(): fetched, last access, LRU position. */
  markAccessed(item: ItemView): void;
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
  /** True when a value of this length under a key of this length can ever be stored (memcached's -I). */
  fits(keyLength: number, valueLength: number, flags: number): boolean;
  /** `cache_memlimit`: a new -m, in bytes; evicts at once if the store is over it. */
  setMemoryLimit(bytes: number): void;
  /** Per size class figures, indexed by class id (0 unused). */
  sizeClassStats(): readonly ClassStats[];
  /** Visits live items until visit returns false. */
  dump(visit: (item: ItemDump) => boolean): void;
  /** Gauges for `stats`: items now, bytes they take, and the limit. */
  readonly itemCount: number;
  readonly bytesUsed: number;
  readonly bytesLimit: number;
  /** memcached's total_malloced: bytes of slab pages allocated (the slab store; undefined on the heap store). */
  readonly totalMalloced?: number;
}
