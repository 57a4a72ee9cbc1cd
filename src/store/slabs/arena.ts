import { SizeClasses } from '../size-classes.js';
import { HashTable, DEFAULT_HASH_POWER, PREFETCH_MAX } from './hash-table.js';
import {
  DATA_CHUNK_HEADER,
  D_HEAD,
  D_NEXT,
  D_PREV,
  H_CAS_HIGH,
  H_CAS_LOW,
  H_CLIENT_FLAGS,
  H_EXPTIME,
  H_HASH,
  H_HASH_NEXT,
  H_HOLDS,
  H_LRU_NEXT,
  H_LRU_PREV,
  H_META,
  H_TIME,
  H_VALUE_LENGTH,
  ITEM_ACTIVE,
  ITEM_CHUNKED,
  ITEM_DATA_CHUNK,
  ITEM_FETCHED,
  ITEM_FREE_ON_RELEASE,
  ITEM_LINKED,
  ITEM_SLABBED,
  KEY_OFFSET,
  dataRefOffset,
  memcachedChunkedHeaderTotal,
  memcachedItemTotal,
} from './layout.js';
import { CLASS_MASK, COLD_LRU, HOT_LRU, LRU_IDS, SegmentedLru, TEMP_LRU, WARM_LRU } from './lru.js';
import { DEFAULTS, type LruConfig } from '../../config/config.js';
import type { LruClassStats } from '../store.js';
import { murmur3 } from './murmur3.js';
import { CLASS_SLOTS, SlabPages } from './pages.js';
import { fixedArray, scalarField, type StateEntry } from './state.js';

/** allocate(): the item can never fit (memcached's "object too large for cache"). */
export const TOO_LARGE = -1;
/** allocate(): no chunk free, no page left, nothing evictable (memcached's "out of memory storing object"). */
export const NO_MEMORY = 0;

/** memcached's KEY_MAX_LENGTH. */
export const MAX_KEY_LENGTH = 250;
/** Items looked at from an LRU's tail per eviction, as memcached's lru_pull_tail. */
const TAIL_SEARCH = 5;
/** Chunk allocation rounds of evict-then-retry, as memcached's do_item_alloc_pull. */
const ALLOC_TRIES = 10;
/** lru_pull_tail flags, as memcached's. */
export const LRU_PULL_EVICT = 1;
/** memcached's ITEM_UPDATE_INTERVAL: in flat mode a hit relinks an item at most once a minute. */
const ITEM_UPDATE_INTERVAL = 60;
/** Hits on COLD items waiting for the maintainer to move them to WARM (memcached's per-thread LRU_BUMP_BUF_SIZE). */
const BUMP_QUEUE_SIZE = 8192;
/** Rounds of one class's juggle per run, as memcached's lru_maintainer_juggle. */
const JUGGLE_ROUNDS = 500;
const TWO_32 = 4294967296;
/** Values up to this many bytes are copied out by a loop rather than Buffer.copy (measured with bench/slabs-lookup.ts). */
const SHORT_COPY = 64;

export interface SlabArenaOptions {
  /** -m, in bytes. */
  memoryLimit: number;
  /** -f */
  growthFactor?: number;
  /** -n */
  minSize?: number;
  /** -I, in bytes. */
  maxItemSize?: number;
  /** -o slab_page_size, in bytes. */
  pageSize?: number;
  /** -o slab_chunk_max, in bytes: the largest chunk; items past it are chunked. memcached's default, half a page, whatever -I is. */
  slabChunkMax?: number;
  /** -o hashpower */
  hashPower?: number;
  /** false under -M: a full class refuses instead of evicting. */
  evictions?: boolean;
  /** false under -C: items are charged 8 bytes less, as memcached's. */
  useCas?: boolean;
  /** The segmented LRU's settings (shared with whoever changes them: the `lru` command); memcached's defaults if not given. */
  lru?: LruConfig;
  /** memcached's slab_reassign (default on): with it, or with chunked items, every page is charged whole against -m. */
  slabReassign?: boolean;
  /** Bytes counted as allocated before the first page (memcached's T_MEMD_INITIAL_MALLOC, for its test suite). */
  initialMalloced?: number;
  /** -L: give every class its first page at start, as memcached's slabs_preallocate. */
  preallocate?: boolean;
}

/** Told about each item about to be evicted (not about expired ones reclaimed); the item is still readable. */
export interface EvictionListener {
  evicting(arena: SlabArena, ref: number): void;
}

/** `stats items` for one class: the segmented LRU's figures and the class's counters. */
export interface ItemClassStats extends LruClassStats {
  number: number;
  evicted: number;
  evicted_unfetched: number;
  evicted_time: number;
  outofmemory: number;
  reclaimed: number;
  expired_unfetched: number;
  evicted_nonzero: number;
}

/** `stats slabs` for one class. */
export interface SlabClassStats {
  chunk_size: number;
  chunks_per_page: number;
  total_pages: number;
  total_chunks: number;
  used_chunks: number;
  free_chunks: number;
  mem_requested: number;
}

/** SlabArena.prefetch's key hashes: scratch, not state (calls never interleave). */
const prefetchHashes = new Uint32Array(PREFETCH_MAX);

/**
 * Item memory in memcached's shape: items live in slab chunks (pages.ts), are
 * found through a hash table over their key bytes (hash-table.ts) and age in
 * a per-class LRU (lru.ts). An item is a chunk reference (a u32, 0 = none);
 * every operation takes keys and values as (buffer, start, end) and copies
 * bytes in or out, so no JS object, string or Buffer exists per item and a
 * lookup allocates nothing.
 *
 * The life of an item: allocate (may evict) -> writeKey, writeValue -> link
 * (into hash and LRU) -> ... -> unlink -> free. An item is readable from
 * allocate until free. A holder that must read an item later (a reply queued
 * by reference) pins it: eviction passes pinned items by, and free of a pinned
 * item is deferred until its last unpin, as memcached's refcount.
 *
 * Time is whatever the store's clock says (memcached's rel_time_t or unix
 * seconds): set `now` each tick; exptime 0 means never.
 */
export class SlabArena {
  readonly classes: SizeClasses;
  readonly pages: SlabPages;
  readonly hashTable: HashTable;
  readonly lru: SegmentedLru;
  readonly lruSettings: LruConfig;
  readonly maxItemSize: number;
  readonly useCas: boolean;
  evictions: boolean;
  now = 0;
  /** flush_all: items last stored at or before it are dead once it has come (memcached's settings.oldest_live). */
  oldestLive = 0;
  /** An immediate flush_all's first CAS (memcached's oldest_cas): items with a lower one are flushed; 0 for none. */
  oldestCas = 0;
  evictionListener: EvictionListener | null = null;
  totalItems = 0;
  /** What prefetch read, kept only so that its reads are not optimized away. */
  prefetched = 0;

  readonly evicted = new Float64Array(new SharedArrayBuffer(CLASS_SLOTS * 8));
  readonly evictedUnfetched = new Float64Array(new SharedArrayBuffer(CLASS_SLOTS * 8));
  /** Evicted items that had an expiry time (memcached's evicted_nonzero). */
  readonly evictedNonzero = new Float64Array(new SharedArrayBuffer(CLASS_SLOTS * 8));
  readonly evictedTime = new Float64Array(new SharedArrayBuffer(CLASS_SLOTS * 8));
  readonly outOfMemory = new Float64Array(new SharedArrayBuffer(CLASS_SLOTS * 8));
  readonly reclaimed = new Float64Array(new SharedArrayBuffer(CLASS_SLOTS * 8));
  readonly expiredUnfetched = new Float64Array(new SharedArrayBuffer(CLASS_SLOTS * 8));
  readonly evictedActive = new Float64Array(new SharedArrayBuffer(CLASS_SLOTS * 8));
  readonly lrutailReflocked = new Float64Array(new SharedArrayBuffer(CLASS_SLOTS * 8));
  readonly movesToCold = new Float64Array(new SharedArrayBuffer(CLASS_SLOTS * 8));
  readonly movesToWarm = new Float64Array(new SharedArrayBuffer(CLASS_SLOTS * 8));
  readonly movesWithinLru = new Float64Array(new SharedArrayBuffer(CLASS_SLOTS * 8));
  readonly directReclaims = new Float64Array(new SharedArrayBuffer(CLASS_SLOTS * 8));
  /** memcached's lru_hits: hits per LRU id (class | segment). */
  readonly hits = new Float64Array(new SharedArrayBuffer(LRU_IDS * 8));
  /**
   * Hits that made a COLD item active, waiting for processBumps to move it to
   * WARM (memcached's lru_bump_buf): a ring of pinned refs, so none is reused while queued.
   */
  readonly bumpQueue = new Uint32Array(new SharedArrayBuffer(BUMP_QUEUE_SIZE * 4));
  private bumpStart = 0;
  bumpLength = 0;
  /** memcached's lru_bumps_dropped: active COLD hits not queued because the queue was full. */
  bumpsDropped = 0;

  private readonly chunkMax: number;

  constructor(options: SlabArenaOptions) {
    const maxItemSize = options.maxItemSize ?? 1024 * 1024;
    const pageSize = options.pageSize ?? 1024 * 1024;
    // SizeClasses ends its classes at half of the size it is given: give it twice the chunk max, so the
    // classes are memcached's for any -I (memcached's slab_chunk_size_max does not follow -I).
    const slabChunkMax = Math.min(options.slabChunkMax ?? pageSize / 2, pageSize);
    this.classes = new SizeClasses(options.growthFactor ?? 1.25, options.minSize ?? 48, 2 * slabChunkMax);
    this.pages = new SlabPages(this.classes, options.memoryLimit, pageSize, {
      initialMalloced: options.initialMalloced,
      chargeWholePages: (options.slabReassign ?? true) || slabChunkMax !== pageSize,
    });
    this.hashTable = new HashTable(this.pages, options.hashPower ?? DEFAULT_HASH_POWER);
    this.lru = new SegmentedLru(this.pages);
    this.lruSettings = options.lru ?? { ...DEFAULTS.lru };
    this.maxItemSize = maxItemSize;
    this.useCas = options.useCas ?? true;
    this.evictions = options.evictions ?? true;
    this.chunkMax = this.classes.chunkSizes[this.classes.largest]!;
    if (options.preallocate === true) {
      for (let id = 1; id <= this.classes.largest; id++) {
        if (!this.pages.newPage(id)) {
          throw new RangeError(`max memory must be at least ${this.classes.largest} megabytes to preallocate a page per slab class`);
        }
      }
    }
  }

  // ---- lookup ----

  /** The linked item with this key, or 0 (dead items too: the caller checks isDead). */
  find(key: Uint8Array, start: number, end: number): number {
    return this.hashTable.find(key, start, end, murmur3(key, start, end));
  }

  /** find() with the key's hash already computed by hashKey(). */
  findHashed(key: Uint8Array, start: number, end: number, hash: number): number {
    return this.hashTable.find(key, start, end, hash);
  }

  hashKey(key: Uint8Array, start: number, end: number): number {
    return murmur3(key, start, end);
  }

  /**
   * Brings what finding and replying to each key key[starts[i], ends[i]) for i
   * in [from, to) will read into the CPU cache (its bucket, chain, and the
   * item's header, key and value), changing nothing. A multi-get calls it before
   * its finds: one after another, each find waits for its own misses (bucket,
   * then header: ~0.3 µs each on this VM with 100k+ items); read here side by
   * side, they overlap. Up to PREFETCH_MAX keys per call.
   */
  prefetch(key: Uint8Array, starts: Int32Array, ends: Int32Array, from: number, to: number): void {
    const hashes = prefetchHashes;
    const count = Math.min(to - from, PREFETCH_MAX);
    for (let i = 0; i < count; i++) hashes[i] = murmur3(key, starts[from + i]!, ends[from + i]!);
    this.prefetched = this.hashTable.prefetch(hashes, count);
  }

  // ---- allocation and linking ----

  /**
   * An unlinked item with room for the key and value, its header set (time =
   * now, CAS 0), or TOO_LARGE / NO_MEMORY. Evicts from the tail of the class's
   * LRU as needed, unless evictions are off.
   */
  allocate(keyLength: number, valueLength: number, clientFlags: number, exptime: number): number {
    const total = memcachedItemTotal(keyLength, valueLength, clientFlags, this.useCas);
    if (keyLength < 1 || keyLength > MAX_KEY_LENGTH || total > this.maxItemSize) return TOO_LARGE;
    const pages = this.pages;
    if (total <= this.chunkMax) {
      const id = this.classes.classOf(total);
      const ref = this.allocChunk(id);
      if (ref === 0) {
        this.outOfMemory[id]!++;
        return NO_MEMORY;
      }
      pages.requested[id]! += total;
      this.initHeader(ref, id | this.segmentOf(exptime), 0, keyLength, valueLength, clientFlags, exptime);
      return ref;
    }
    // A chunked item: header and key in a small chunk, the value over a chain of data chunks.
    // It ages in the largest class's LRU, as memcached's.
    const lruId = this.classes.largest;
    const headerTotal = memcachedChunkedHeaderTotal(keyLength, clientFlags, this.useCas);
    const headerId = this.classes.classOf(headerTotal);
    const head = this.allocChunk(headerId);
    if (head === 0) {
      this.outOfMemory[lruId]!++;
      return NO_MEMORY;
    }
    pages.requested[headerId]! += headerTotal;
    this.initHeader(head, lruId | this.segmentOf(exptime), ITEM_CHUNKED, keyLength, valueLength, clientFlags, exptime);
    const refWord = (pages.offsetOf(head) + dataRefOffset(keyLength)) >>> 2;
    const headWords = pages.words[(head >>> 16) - 1]!;
    headWords[refWord] = 0;
    // Sized on the value and its "\r\n", as memcached's do_item_alloc_chunk, so the same chunks are taken.
    let remaining = valueLength + 2;
    let previous = 0;
    while (remaining > 0) {
      const size = Math.min(remaining + DATA_CHUNK_HEADER, this.chunkMax);
      let id = this.classes.classOf(size);
      let chunk = this.allocChunk(id);
      if (chunk === 0 && id !== lruId) {
        // As memcached's do_item_alloc_chunk: no room for a fitted last chunk, so a largest one (evicting there).
        id = lruId;
        chunk = this.allocChunk(id);
      }
      if (chunk === 0) {
        this.releaseChunks(head);
        this.outOfMemory[lruId]!++;
        return NO_MEMORY;
      }
      // A data chunk is charged whole (it holds one item's bytes only).
      pages.requested[id]! += pages.chunkSize[id]!;
      this.setWord(chunk, D_NEXT, 0);
      this.setWord(chunk, D_PREV, previous === 0 ? head : previous);
      this.setWord(chunk, D_HEAD, head);
      this.setWord(chunk, H_META, ITEM_DATA_CHUNK << 16);
      if (previous === 0) headWords[refWord] = chunk;
      else this.setWord(previous, D_NEXT, chunk);
      previous = chunk;
      remaining -= pages.chunkSize[id]! - DATA_CHUNK_HEADER;
    }
    return head;
  }

  /** Links an allocated item, its key written, into the hash table and at the head of its LRU. */
  link(ref: number): void {
    const page = (ref >>> 16) - 1;
    const field = this.pages.offsetOf(ref) >>> 2;
    const words = this.pages.words[page]!;
    const meta = words[field + H_META]!;
    if (((meta >>> 16) & (ITEM_LINKED | ITEM_SLABBED)) !== 0) throw new Error('slab arena: link of a linked or freed item');
    const keyStart = (field << 2) + KEY_OFFSET;
    words[field + H_HASH] = murmur3(this.pages.bytes[page]!, keyStart, keyStart + (meta & 0xff));
    words[field + H_META] = meta | (ITEM_LINKED << 16);
    words[field + H_TIME] = this.now;
    this.hashTable.insert(ref);
    this.lru.linkAtHead((meta >>> 8) & 0xff, ref, this.itemTotal(ref));
    this.totalItems++;
  }

  /** memcached's item_replace: the new item (allocated and written) takes the old one's place, which is freed. */
  replace(oldRef: number, newRef: number): void {
    this.free(oldRef);
    this.link(newRef);
  }

  /** Takes a linked item out of the hash table and its LRU; false when it was not linked. It stays allocated. */
  unlink(ref: number): boolean {
    const meta = this.getWord(ref, H_META);
    if (((meta >>> 16) & ITEM_LINKED) === 0) return false;
    this.hashTable.remove(ref);
    this.lru.unlink((meta >>> 8) & 0xff, ref, this.itemTotal(ref));
    this.setWord(ref, H_META, meta & ~(ITEM_LINKED << 16));
    return true;
  }

  /** Returns an item's chunks (unlinking it first if linked); deferred to the last unpin when pinned. */
  free(ref: number): void {
    this.unlink(ref);
    if (this.getWord(ref, H_HOLDS) !== 0) {
      this.setFlag(ref, ITEM_FREE_ON_RELEASE);
      return;
    }
    this.releaseChunks(ref);
  }

  /** Holds an item against eviction and reuse of its chunks until unpin. */
  pin(ref: number): void {
    this.setWord(ref, H_HOLDS, this.getWord(ref, H_HOLDS) + 1);
  }

  unpin(ref: number): void {
    const holds = this.getWord(ref, H_HOLDS) - 1;
    this.setWord(ref, H_HOLDS, holds);
    if (holds === 0 && this.hasFlag(ref, ITEM_FREE_ON_RELEASE)) this.releaseChunks(ref);
  }

  /**
   * A fetch hit, as memcached's do_item_bump. Segmented: nothing is relinked
   * here; the first hit marks the item fetched, the next one active (and stamps
   * its time), and an active COLD item is queued for processBumps to move to
   * WARM. Flat: fetched, and do_item_update's once-a-minute relink. A fetch
   * counts in its segment's hits (memcached's lru_hits); a touch does not.
   */
  bump(ref: number, countHit = true): void {
    const page = (ref >>> 16) - 1;
    const words = this.pages.words[page]!;
    const field = ((ref & 0xffff) * this.pages.pageChunkSize[page]!) >>> 2;
    const meta = words[field + H_META]!;
    const lruId = (meta >>> 8) & 0xff;
    if (countHit) this.hits[lruId]!++;
    if (!this.lruSettings.segmented) {
      words[field + H_META] = meta | (ITEM_FETCHED << 16);
      this.update(ref);
      return;
    }
    const flags = meta >>> 16;
    if ((flags & ITEM_ACTIVE) !== 0) return;
    if ((flags & ITEM_FETCHED) === 0) {
      words[field + H_META] = meta | (ITEM_FETCHED << 16);
      return;
    }
    words[field + H_META] = meta | (ITEM_ACTIVE << 16);
    if ((lruId & ~CLASS_MASK) !== COLD_LRU) words[field + H_TIME] = this.now;
    else if (!this.queueBump(ref)) words[field + H_META] = meta;
  }

  /**
   * An item was used other than by a fetch (an `add` that found it), or a
   * queued COLD hit comes due: memcached's do_item_update. Segmented: an active
   * COLD item moves to WARM, any other is stamped. Flat: relinked at the head,
   * at most once per ITEM_UPDATE_INTERVAL.
   */
  update(ref: number): void {
    const meta = this.getWord(ref, H_META);
    if (((meta >>> 16) & ITEM_LINKED) === 0) return;
    const now = this.now;
    const lruId = (meta >>> 8) & 0xff;
    if (this.lruSettings.segmented) {
      this.setWord(ref, H_TIME, now);
      if ((lruId & ~CLASS_MASK) === COLD_LRU && ((meta >>> 16) & ITEM_ACTIVE) !== 0) {
        this.setWord(ref, H_META, meta & ~(ITEM_ACTIVE << 16));
        this.relink(ref, WARM_LRU);
        this.movesToWarm[lruId & CLASS_MASK]!++;
      }
      return;
    }
    if (this.getWord(ref, H_TIME) < now - ITEM_UPDATE_INTERVAL) {
      this.setWord(ref, H_TIME, now);
      this.relink(ref, lruId & ~CLASS_MASK);
    }
  }

  /** Moves the queued COLD hits (up to limit) to WARM, as memcached's lru_maintainer_bumps. How many were done. */
  processBumps(limit: number): number {
    let done = 0;
    const queue = this.bumpQueue;
    while (this.bumpLength > 0 && done < limit) {
      const ref = queue[this.bumpStart]!;
      this.bumpStart = (this.bumpStart + 1) % BUMP_QUEUE_SIZE;
      this.bumpLength--;
      // Unlinked while queued (deleted, evicted, replaced): its chunk is still held, so the header reads true.
      if (this.isLinked(ref)) this.update(ref);
      this.unpin(ref);
      done++;
    }
    return done;
  }

  private queueBump(ref: number): boolean {
    if (this.bumpLength === BUMP_QUEUE_SIZE) {
      this.bumpsDropped++;
      return false;
    }
    this.pin(ref);
    this.bumpQueue[(this.bumpStart + this.bumpLength) % BUMP_QUEUE_SIZE] = ref;
    this.bumpLength++;
    return true;
  }

  /** The segment a new item starts in (memcached's do_item_alloc): TEMP for a short TTL, HOT, or COLD when flat. */
  private segmentOf(exptime: number): number {
    const settings = this.lruSettings;
    if (settings.tempLru && exptime !== 0 && exptime >= this.now && exptime - this.now <= settings.temporaryTtl) return TEMP_LRU;
    return settings.segmented ? HOT_LRU : COLD_LRU;
  }

  /** Takes a linked item from its LRU to the head of another segment of its class. */
  private relink(ref: number, segment: number): void {
    const meta = this.getWord(ref, H_META);
    const from = (meta >>> 8) & 0xff;
    const to = (from & CLASS_MASK) | segment;
    const total = this.itemTotal(ref);
    this.lru.unlink(from, ref, total);
    this.setWord(ref, H_META, (meta & ~0xff00) | (to << 8));
    this.lru.linkAtHead(to, ref, total);
  }

  /** What memcached charges the item (its ITEM_ntotal): the bytes it counts in its LRU's sizes_bytes. */
  private itemTotal(ref: number): number {
    return memcachedItemTotal(this.getWord(ref, H_META) & 0xff, this.getWord(ref, H_VALUE_LENGTH), this.getWord(ref, H_CLIENT_FLAGS), this.useCas);
  }

  // ---- bytes in and out ----

  writeKey(ref: number, key: Buffer, start: number, end: number): void {
    if (end - start !== this.keyLength(ref)) throw new RangeError('slab arena: key length differs from the allocated one');
    const bytes = this.pages.bytes[(ref >>> 16) - 1]!;
    let at = this.pages.offsetOf(ref) + KEY_OFFSET;
    for (let i = start; i < end; i++) bytes[at++] = key[i]!;
  }

  /** Copies source[start, end) into the value at byte `at` (a value may arrive in pieces). */
  writeValue(ref: number, at: number, source: Buffer, start: number, end: number): void {
    if (at < 0 || at + (end - start) > this.valueLength(ref)) throw new RangeError('slab arena: write past the value');
    const pages = this.pages;
    const base = pages.offsetOf(ref);
    const keyLength = this.keyLength(ref);
    if (!this.hasFlag(ref, ITEM_CHUNKED)) {
      const bytes = pages.bytes[(ref >>> 16) - 1]!;
      let to = base + KEY_OFFSET + keyLength + at;
      if (end - start > SHORT_COPY) source.copy(bytes, to, start, end);
      else for (let i = start; i < end; i++) bytes[to++] = source[i]!;
      return;
    }
    let chunk = pages.words[(ref >>> 16) - 1]![(base + dataRefOffset(keyLength)) >>> 2]!;
    while (start < end) {
      const page = (chunk >>> 16) - 1;
      const capacity = pages.pageChunkSize[page]! - DATA_CHUNK_HEADER;
      if (at < capacity) {
        const n = Math.min(capacity - at, end - start);
        source.copy(pages.bytes[page]!, pages.offsetOf(chunk) + DATA_CHUNK_HEADER + at, start, start + n);
        start += n;
        at = 0;
      } else {
        at -= capacity;
      }
      chunk = this.getWord(chunk, 0);
    }
  }

  /** Copies value bytes [from, to) (default: all) into target at offset; returns the offset after them. */
  copyValueTo(ref: number, target: Buffer, offset: number, from = 0, to = this.valueLength(ref)): number {
    const pages = this.pages;
    const base = pages.offsetOf(ref);
    const keyLength = this.keyLength(ref);
    if (!this.hasFlag(ref, ITEM_CHUNKED)) {
      const valueStart = base + KEY_OFFSET + keyLength;
      const bytes = pages.bytes[(ref >>> 16) - 1]!;
      if (to - from > SHORT_COPY) return offset + bytes.copy(target, offset, valueStart + from, valueStart + to);
      // Short values: a loop costs less than the call into Buffer.copy.
      for (let i = valueStart + from, last = valueStart + to; i < last; i++) target[offset++] = bytes[i]!;
      return offset;
    }
    let chunk = pages.words[(ref >>> 16) - 1]![(base + dataRefOffset(keyLength)) >>> 2]!;
    while (from < to) {
      const page = (chunk >>> 16) - 1;
      const capacity = pages.pageChunkSize[page]! - DATA_CHUNK_HEADER;
      if (from < capacity) {
        const n = Math.min(capacity, to) - from;
        const dataStart = pages.offsetOf(chunk) + DATA_CHUNK_HEADER;
        offset += pages.bytes[page]!.copy(target, offset, dataStart + from, dataStart + from + n);
        to -= from + n;
        from = 0;
      } else {
        from -= capacity;
        to -= capacity;
      }
      chunk = this.getWord(chunk, 0);
    }
    return offset;
  }

  copyKeyTo(ref: number, target: Buffer, offset: number): number {
    const start = this.pages.offsetOf(ref) + KEY_OFFSET;
    return offset + this.pages.bytes[(ref >>> 16) - 1]!.copy(target, offset, start, start + this.keyLength(ref));
  }

  keyEquals(ref: number, key: Uint8Array, start: number, end: number): boolean {
    if (end - start !== this.keyLength(ref)) return false;
    const bytes = this.pages.bytes[(ref >>> 16) - 1]!;
    let at = this.pages.offsetOf(ref) + KEY_OFFSET;
    for (let i = start; i < end; i++, at++) if (bytes[at] !== key[i]) return false;
    return true;
  }

  // ---- header fields ----

  keyLength(ref: number): number {
    return this.getWord(ref, H_META) & 0xff;
  }

  valueLength(ref: number): number {
    return this.getWord(ref, H_VALUE_LENGTH);
  }

  /** The class whose LRU and `stats items` the item belongs to. */
  classId(ref: number): number {
    return (this.getWord(ref, H_META) >>> 8) & CLASS_MASK;
  }

  /** The LRU the item is in: its class | HOT_LRU, WARM_LRU, COLD_LRU or TEMP_LRU. */
  lruId(ref: number): number {
    return (this.getWord(ref, H_META) >>> 8) & 0xff;
  }

  clientFlags(ref: number): number {
    return this.getWord(ref, H_CLIENT_FLAGS);
  }

  setClientFlags(ref: number, flags: number): void {
    this.setWord(ref, H_CLIENT_FLAGS, flags);
  }

  exptime(ref: number): number {
    return this.getWord(ref, H_EXPTIME);
  }

  setExptime(ref: number, exptime: number): void {
    this.setWord(ref, H_EXPTIME, exptime);
  }

  /** Last access (link or bump). */
  time(ref: number): number {
    return this.getWord(ref, H_TIME);
  }

  setTime(ref: number, time: number): void {
    this.setWord(ref, H_TIME, time);
  }

  /** The CAS, exact below 2^53. */
  cas(ref: number): number {
    return this.getWord(ref, H_CAS_HIGH) * TWO_32 + this.getWord(ref, H_CAS_LOW);
  }

  setCas(ref: number, cas: number): void {
    this.setWord(ref, H_CAS_LOW, cas % TWO_32);
    this.setWord(ref, H_CAS_HIGH, Math.floor(cas / TWO_32));
  }

  /** Flag bits: ITEM_FETCHED, ITEM_ACTIVE, ITEM_STALE, ITEM_TOKEN_SENT, ITEM_KEY_BINARY (ITEM_LINKED, ITEM_CHUNKED read only). */
  hasFlag(ref: number, bit: number): boolean {
    return ((this.getWord(ref, H_META) >>> 16) & bit) !== 0;
  }

  setFlag(ref: number, bit: number): void {
    this.setWord(ref, H_META, this.getWord(ref, H_META) | (bit << 16));
  }

  clearFlag(ref: number, bit: number): void {
    this.setWord(ref, H_META, this.getWord(ref, H_META) & ~(bit << 16));
  }

  isLinked(ref: number): boolean {
    return this.hasFlag(ref, ITEM_LINKED);
  }

  /** Expired, or flushed. */
  isDead(ref: number): boolean {
    const exptime = this.getWord(ref, H_EXPTIME);
    if (exptime !== 0 && exptime <= this.now) return true;
    return this.isFlushed(ref);
  }

  /**
   * Gone by a flush_all that has come, as memcached's item_is_flushed: stored at or
   * before oldestLive, or (an immediate flush with CAS on) given a CAS older than
   * the flush's, which also takes items stored earlier in the flush's own second.
   */
  isFlushed(ref: number): boolean {
    const oldestLive = this.oldestLive;
    if (oldestLive === 0 || oldestLive > this.now) return false;
    if (this.getWord(ref, H_TIME) <= oldestLive) return true;
    const oldestCas = this.oldestCas;
    if (oldestCas === 0) return false;
    const cas = this.cas(ref);
    return cas !== 0 && cas < oldestCas;
  }

  // ---- iteration (dumps, crawlers): LRU order, newest first ----

  /** The newest item of an LRU id (a class id alone is its HOT segment), or 0. */
  lruHead(id: number): number {
    return this.lru.head[id]!;
  }

  lruTail(id: number): number {
    return this.lru.tail[id]!;
  }

  /** The next older item in the same LRU, or 0. */
  older(ref: number): number {
    return this.getWord(ref, H_LRU_NEXT);
  }

  /** The next newer item in the same LRU, or 0. */
  newer(ref: number): number {
    return this.getWord(ref, H_LRU_PREV);
  }

  /** Every linked item once: nextItem(0) is the first, 0 follows the last. Not stable across unlinks of `ref`. */
  nextItem(ref: number): number {
    let id = 0;
    if (ref !== 0) {
      const older = this.older(ref);
      if (older !== 0) return older;
      id = this.lruId(ref) + 1;
    }
    // In LRU id order: every class's HOT, then WARM, COLD and TEMP (empty ids have head 0).
    for (const head = this.lru.head; id < LRU_IDS; id++) if (head[id] !== 0) return head[id]!;
    return 0;
  }

  // ---- stats ----

  get currItems(): number {
    return this.hashTable.count;
  }

  get hashPower(): number {
    return this.hashTable.hashPower;
  }

  get hashBytes(): number {
    return this.hashTable.hashBytes;
  }

  get isExpanding(): boolean {
    return this.hashTable.isExpanding;
  }

  /** memcached's total_malloced: bytes charged for pages handed to classes. */
  get totalMalloced(): number {
    return this.pages.malloced;
  }

  /** Pages whose memory could not be had (memcached's malloc_fails). */
  get mallocFails(): number {
    return this.pages.mallocFails;
  }

  get totalEvictions(): number {
    let sum = 0;
    for (let id = 1; id <= this.classes.largest; id++) sum += this.evicted[id]!;
    return sum;
  }

  itemStats(id: number): ItemClassStats {
    const count = this.lru.count;
    return {
      number: this.lru.classCount(id),
      evicted: this.evicted[id]!,
      evicted_unfetched: this.evictedUnfetched[id]!,
      evicted_time: this.evictedTime[id]!,
      outofmemory: this.outOfMemory[id]!,
      reclaimed: this.reclaimed[id]!,
      expired_unfetched: this.expiredUnfetched[id]!,
      number_hot: count[id | HOT_LRU]!,
      number_warm: count[id | WARM_LRU]!,
      number_cold: count[id | COLD_LRU]!,
      number_temp: count[id | TEMP_LRU]!,
      age_hot: this.tailAge(id | HOT_LRU),
      age_warm: this.tailAge(id | WARM_LRU),
      age: this.tailAge(id | COLD_LRU),
      evicted_nonzero: this.evictedNonzero[id]!,
      evicted_active: this.evictedActive[id]!,
      lrutail_reflocked: this.lrutailReflocked[id]!,
      moves_to_cold: this.movesToCold[id]!,
      moves_to_warm: this.movesToWarm[id]!,
      moves_within_lru: this.movesWithinLru[id]!,
      direct_reclaims: this.directReclaims[id]!,
      hits_to_hot: this.hits[id | HOT_LRU]!,
      hits_to_warm: this.hits[id | WARM_LRU]!,
      hits_to_cold: this.hits[id | COLD_LRU]!,
      hits_to_temp: this.hits[id | TEMP_LRU]!,
    };
  }

  /** `stats reset`: memcached's item_stats_reset (and, for the hits, its thread stats reset) zeroes the per-class counters. */
  resetItemStats(): void {
    for (const counter of [
      this.evicted, this.evictedUnfetched, this.evictedTime, this.outOfMemory, this.reclaimed, this.expiredUnfetched,
      this.evictedNonzero, this.evictedActive, this.lrutailReflocked, this.movesToCold, this.movesToWarm,
      this.movesWithinLru, this.directReclaims, this.hits,
    ]) counter.fill(0);
  }

  private tailAge(lruId: number): number {
    const tail = this.lru.tail[lruId]!;
    return tail === 0 ? 0 : Math.max(0, this.now - this.getWord(tail, H_TIME));
  }

  slabStats(id: number): SlabClassStats {
    const pages = this.pages;
    return {
      chunk_size: pages.chunkSize[id]!,
      chunks_per_page: pages.perPage[id]!,
      total_pages: pages.totalPages[id]!,
      total_chunks: pages.totalPages[id]! * pages.perPage[id]!,
      used_chunks: pages.usedChunks(id),
      free_chunks: pages.freeChunks(id),
      mem_requested: pages.requested[id]!,
    };
  }

  setMemoryLimit(bytes: number): void {
    this.pages.setMemoryLimit(bytes);
  }

  // ---- warm restart (-e) ----

  /**
   * Every typed array, page and number that makes up the arena's state, by name:
   * the memory file (memory-file.ts) saves and loads by this list. Whatever is
   * added to the arena (or its pages, hash table, LRU) must be listed here;
   * test/warm-restart.test.ts fails on a typed array that is not.
   */
  stateEntries(): StateEntry[] {
    const lru = this.lru;
    return [
      ...this.pages.stateEntries(),
      ...this.hashTable.stateEntries(),
      fixedArray('lru.head', lru.head),
      fixedArray('lru.tail', lru.tail),
      fixedArray('lru.count', lru.count),
      fixedArray('arena.evicted', this.evicted),
      fixedArray('arena.evictedUnfetched', this.evictedUnfetched),
      fixedArray('arena.evictedTime', this.evictedTime),
      fixedArray('arena.outOfMemory', this.outOfMemory),
      fixedArray('arena.reclaimed', this.reclaimed),
      fixedArray('arena.expiredUnfetched', this.expiredUnfetched),
      fixedArray('lru.bytes', lru.bytes),
      fixedArray('arena.evictedNonzero', this.evictedNonzero),
      fixedArray('arena.evictedActive', this.evictedActive),
      fixedArray('arena.lrutailReflocked', this.lrutailReflocked),
      fixedArray('arena.movesToCold', this.movesToCold),
      fixedArray('arena.movesToWarm', this.movesToWarm),
      fixedArray('arena.movesWithinLru', this.movesWithinLru),
      fixedArray('arena.directReclaims', this.directReclaims),
      fixedArray('arena.hits', this.hits),
      // Drained before a save (SlabStore.prepareSave), so it loads empty and its holds are gone.
      fixedArray('arena.bumpQueue', this.bumpQueue),
      scalarField('arena.oldestLive', this, 'oldestLive'),
      scalarField('arena.oldestCas', this, 'oldestCas'),
      scalarField('arena.totalItems', this, 'totalItems'),
    ];
  }

  /**
   * After a warm restart's load: released page slots are released again, and
   * holds belonged to the old process's readers, so none is left (as
   * memcached's restart_fixup clears refcounts).
   */
  stateLoaded(): void {
    this.pages.stateLoaded();
    for (let ref = this.nextItem(0); ref !== 0; ref = this.nextItem(ref)) {
      this.setWord(ref, H_HOLDS, 0);
      this.clearFlag(ref, ITEM_FREE_ON_RELEASE);
    }
  }

  // ---- inside ----

  /**
   * A chunk of class id: free, carved from a page, or freed from the class's
   * LRUs, as memcached's do_item_alloc_pull: flat, reclaim at the COLD tail
   * first; when no chunk is free, evict from the COLD tail, and (segmented)
   * when COLD has nothing to give, push the HOT tail down into COLD and retry.
   */
  private allocChunk(id: number): number {
    const segmented = this.lruSettings.segmented;
    let ref = 0;
    let tries = 0;
    for (; tries < ALLOC_TRIES; tries++) {
      if (!segmented) this.pullTail(id, COLD_LRU, 0, 0, 0);
      ref = this.pages.alloc(id);
      if (ref !== 0) break;
      if (this.pullTail(id, COLD_LRU, 0, LRU_PULL_EVICT, 0) <= 0) {
        if (!segmented) break;
        this.pullTail(id, HOT_LRU, 0, 0, 0);
      }
    }
    if (tries > 0) this.directReclaims[id]! += tries;
    return ref;
  }

  /**
   * memcached's lru_pull_tail on one LRU (classId | segment): of the few items
   * at its tail, dead ones are reclaimed; the first live one decides. HOT and
   * WARM: an active item is rescued (HOT to WARM, WARM to its own head), one
   * past the segment's share of totalBytes or idle longer than maxAge goes to
   * COLD. COLD: with LRU_PULL_EVICT it is evicted (unless -M), else an active
   * one moves to WARM. TEMP: reclaims only. Pinned items (held by a reply or the
   * bump queue; memcached's lrutail_reflocked) may move but are neither
   * reclaimed nor evicted here. The number of items removed or moved.
   */
  pullTail(classId: number, segment: number, totalBytes: number, flags: number, maxAge: number): number {
    const id = classId | segment;
    const lru = this.lru;
    const settings = this.lruSettings;
    let removed = 0;
    let search = lru.tail[id]!;
    for (let tries = TAIL_SEARCH; tries > 0 && search !== 0; tries--) {
      const next = lru.newer(search);
      if (this.getWord(search, H_HOLDS) !== 0) {
        this.lrutailReflocked[classId]!++;
        // A held item may move between segments (a queued COLD hit is held), but is not freed here:
        // its chunk would not come free until the last hold goes.
        if (segment === COLD_LRU && (flags & LRU_PULL_EVICT) !== 0) {
          search = next;
          continue;
        }
      } else if (this.isDead(search)) {
        this.reclaimed[classId]!++;
        if (!this.hasFlag(search, ITEM_FETCHED)) this.expiredUnfetched[classId]!++;
        this.free(search);
        removed++;
        search = next;
        continue;
      }
      const active = this.hasFlag(search, ITEM_ACTIVE);
      if (segment === HOT_LRU || segment === WARM_LRU) {
        if (active) {
          this.clearFlag(search, ITEM_ACTIVE);
          removed++;
          if (segment === WARM_LRU) {
            // Rescued within WARM: back to its head, and look at the next one.
            this.movesWithinLru[classId]!++;
            this.relink(search, WARM_LRU);
            search = next;
            continue;
          }
          this.movesToWarm[classId]!++;
          this.relink(search, WARM_LRU);
        } else {
          let limit = segment === HOT_LRU ? Math.floor((totalBytes * settings.hotLruPct) / 100) : 0;
          // As memcached's switch falling through from HOT: a zero HOT limit takes WARM's.
          if (limit === 0) limit = Math.floor((totalBytes * settings.warmLruPct) / 100);
          if (lru.bytes[id]! > limit || this.now - this.getWord(search, H_TIME) > maxAge) {
            this.movesToCold[classId]!++;
            this.relink(search, COLD_LRU);
            removed++;
          }
        }
        break;
      }
      if (segment === COLD_LRU) {
        if ((flags & LRU_PULL_EVICT) !== 0) {
          if (!this.evictions) break;
          this.evicted[classId]!++;
          this.evictedTime[classId] = this.now - this.getWord(search, H_TIME);
          if (this.getWord(search, H_EXPTIME) !== 0) this.evictedNonzero[classId]!++;
          if (!this.hasFlag(search, ITEM_FETCHED)) this.evictedUnfetched[classId]!++;
          if (active) this.evictedActive[classId]!++;
          if (this.evictionListener !== null) this.evictionListener.evicting(this, search);
          this.free(search);
          removed++;
        } else if (active && settings.segmented) {
          this.movesToWarm[classId]!++;
          this.clearFlag(search, ITEM_ACTIVE);
          this.relink(search, WARM_LRU);
          removed++;
        }
      }
      // TEMP: only reclaims.
      break;
    }
    return removed;
  }

  /**
   * One class's share of the maintainer's work, as memcached's
   * lru_maintainer_juggle: reclaim at the TEMP tail, then size HOT and WARM
   * against the class's bytes and COLD's age (flat mode drains them into COLD),
   * and rescue active items from COLD, up to `rounds` rounds. How many rounds moved something.
   */
  juggle(classId: number, rounds = JUGGLE_ROUNDS): number {
    const settings = this.lruSettings;
    const lru = this.lru;
    let didMoves = 0;
    if (settings.tempLru) {
      for (let i = 0; i < rounds; i++) {
        if (this.pullTail(classId, TEMP_LRU, 0, 0, 0) <= 0) break;
        didMoves++;
      }
    }
    let totalBytes = 0;
    let hotAge = 0;
    let warmAge = 0;
    if (settings.segmented) {
      const coldAge = this.tailAge(classId | COLD_LRU);
      totalBytes = lru.bytes[classId | COLD_LRU]! + lru.bytes[classId | HOT_LRU]! + lru.bytes[classId | WARM_LRU]!;
      hotAge = Math.floor(coldAge * settings.hotMaxFactor);
      warmAge = Math.floor(coldAge * settings.warmMaxFactor);
    }
    for (let i = 0; i < rounds; i++) {
      let doMore = 0;
      if (this.pullTail(classId, HOT_LRU, totalBytes, 0, hotAge) > 0 || this.pullTail(classId, WARM_LRU, totalBytes, 0, warmAge) > 0) doMore++;
      if (settings.segmented) doMore += this.pullTail(classId, COLD_LRU, totalBytes, 0, 0);
      if (doMore === 0) break;
      didMoves++;
    }
    return didMoves;
  }

  private initHeader(
    ref: number,
    id: number,
    flagBits: number,
    keyLength: number,
    valueLength: number,
    clientFlags: number,
    exptime: number,
  ): void {
    const words = this.pages.words[(ref >>> 16) - 1]!;
    const field = this.pages.offsetOf(ref) >>> 2;
    words[field + H_HASH_NEXT] = 0;
    words[field + H_LRU_PREV] = 0;
    words[field + H_LRU_NEXT] = 0;
    words[field + H_TIME] = this.now;
    words[field + H_EXPTIME] = exptime;
    words[field + H_CAS_LOW] = 0;
    words[field + H_CAS_HIGH] = 0;
    words[field + H_CLIENT_FLAGS] = clientFlags;
    words[field + H_VALUE_LENGTH] = valueLength;
    words[field + H_HASH] = 0;
    words[field + H_META] = keyLength | (id << 8) | (flagBits << 16);
    words[field + H_HOLDS] = 0;
  }

  /** Gives an unlinked, unpinned item's chunks back to their classes. */
  private releaseChunks(ref: number): void {
    const pages = this.pages;
    const meta = this.getWord(ref, H_META);
    const flagBits = meta >>> 16;
    if ((flagBits & ITEM_SLABBED) !== 0) throw new Error('slab arena: double free');
    const keyLength = meta & 0xff;
    const valueLength = this.getWord(ref, H_VALUE_LENGTH);
    const clientFlags = this.getWord(ref, H_CLIENT_FLAGS);
    if ((flagBits & ITEM_CHUNKED) === 0) {
      pages.requested[pages.classOfChunk(ref)]! -= memcachedItemTotal(keyLength, valueLength, clientFlags, this.useCas);
    } else {
      pages.requested[pages.classOfChunk(ref)]! -= memcachedChunkedHeaderTotal(keyLength, clientFlags, this.useCas);
      let chunk = pages.words[(ref >>> 16) - 1]![(pages.offsetOf(ref) + dataRefOffset(keyLength)) >>> 2]!;
      while (chunk !== 0) {
        const id = pages.classOfChunk(chunk);
        pages.requested[id]! -= pages.chunkSize[id]!;
        const next = this.getWord(chunk, D_NEXT);
        this.setWord(chunk, H_META, ITEM_SLABBED << 16);
        pages.free(chunk);
        chunk = next;
      }
    }
    this.setWord(ref, H_META, (meta & 0xffff) | (ITEM_SLABBED << 16));
    // pages.free overwrites word 0 (the hash-chain link) with the free-list link; the header stays readable otherwise.
    pages.free(ref);
  }

  private getWord(ref: number, field: number): number {
    const page = (ref >>> 16) - 1;
    return this.pages.words[page]![(((ref & 0xffff) * this.pages.pageChunkSize[page]!) >>> 2) + field]!;
  }

  private setWord(ref: number, field: number, value: number): void {
    const page = (ref >>> 16) - 1;
    this.pages.words[page]![(((ref & 0xffff) * this.pages.pageChunkSize[page]!) >>> 2) + field] = value;
  }
}
