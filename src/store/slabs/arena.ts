import { SizeClasses } from '../size-classes.js';
import { HashTable, DEFAULT_HASH_POWER } from './hash-table.js';
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
import { ClassLru } from './lru.js';
import { murmur3 } from './murmur3.js';
import { CLASS_SLOTS, SlabPages } from './pages.js';

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
  /** Bytes counted as allocated before any page (memcached's T_MEMD_INITIAL_MALLOC test hook). */
  initialMalloced?: number;
}

/** Told about each item about to be evicted (not about expired ones reclaimed); the item is still readable. */
export interface EvictionListener {
  evicting(arena: SlabArena, ref: number): void;
}

/** `stats items` for one class. */
export interface ItemClassStats {
  number: number;
  evicted: number;
  evicted_unfetched: number;
  evicted_time: number;
  outofmemory: number;
  reclaimed: number;
  expired_unfetched: number;
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
  readonly lru: ClassLru;
  readonly maxItemSize: number;
  readonly useCas: boolean;
  evictions: boolean;
  now = 0;
  /** flush_all: items last stored at or before it are dead once it has come (memcached's settings.oldest_live). */
  oldestLive = 0;
  evictionListener: EvictionListener | null = null;
  totalItems = 0;

  readonly evicted = new Float64Array(new SharedArrayBuffer(CLASS_SLOTS * 8));
  readonly evictedUnfetched = new Float64Array(new SharedArrayBuffer(CLASS_SLOTS * 8));
  readonly evictedTime = new Float64Array(new SharedArrayBuffer(CLASS_SLOTS * 8));
  readonly outOfMemory = new Float64Array(new SharedArrayBuffer(CLASS_SLOTS * 8));
  readonly reclaimed = new Float64Array(new SharedArrayBuffer(CLASS_SLOTS * 8));
  readonly expiredUnfetched = new Float64Array(new SharedArrayBuffer(CLASS_SLOTS * 8));

  private readonly chunkMax: number;

  constructor(options: SlabArenaOptions) {
    const maxItemSize = options.maxItemSize ?? 1024 * 1024;
    const pageSize = options.pageSize ?? 1024 * 1024;
    // SizeClasses ends its classes at half of the size it is given: give it twice the chunk max, so the
    // classes are memcached's for any -I (memcached's slab_chunk_size_max does not follow -I).
    const slabChunkMax = options.slabChunkMax ?? pageSize / 2;
    this.classes = new SizeClasses(options.growthFactor ?? 1.25, options.minSize ?? 48, 2 * slabChunkMax);
    this.pages = new SlabPages(this.classes, options.memoryLimit, pageSize, options.initialMalloced ?? 0);
    this.hashTable = new HashTable(this.pages, options.hashPower ?? DEFAULT_HASH_POWER);
    this.lru = new ClassLru(this.pages);
    this.maxItemSize = maxItemSize;
    this.useCas = options.useCas ?? true;
    this.evictions = options.evictions ?? true;
    this.chunkMax = this.classes.chunkSizes[this.classes.largest]!;
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
      this.initHeader(ref, id, 0, keyLength, valueLength, clientFlags, exptime);
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
    this.initHeader(head, lruId, ITEM_CHUNKED, keyLength, valueLength, clientFlags, exptime);
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
    this.lru.linkAtHead((meta >>> 8) & 0xff, ref);
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
    this.lru.unlink((meta >>> 8) & 0xff, ref);
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

  /** Moves a linked item to the head of its LRU and stamps its access time. */
  bump(ref: number): void {
    const meta = this.getWord(ref, H_META);
    if (((meta >>> 16) & ITEM_LINKED) === 0) return;
    this.lru.moveToHead((meta >>> 8) & 0xff, ref);
    this.setWord(ref, H_TIME, this.now);
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

  /** Flag bits: ITEM_FETCHED, ITEM_STALE, ITEM_TOKEN_SENT, ITEM_KEY_BINARY (ITEM_LINKED, ITEM_CHUNKED read only). */
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

  /** Expired, or stored at or before a flush_all that has come. */
  isDead(ref: number): boolean {
    const exptime = this.getWord(ref, H_EXPTIME);
    if (exptime !== 0 && exptime <= this.now) return true;
    const oldestLive = this.oldestLive;
    return oldestLive !== 0 && oldestLive <= this.now && this.getWord(ref, H_TIME) <= oldestLive;
  }

  // ---- iteration (dumps, crawlers): LRU order, newest first ----

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
    let id = 1;
    if (ref !== 0) {
      const older = this.older(ref);
      if (older !== 0) return older;
      id = this.classId(ref) + 1;
    }
    for (; id <= this.classes.largest; id++) {
      const head = this.lru.head[id]!;
      if (head !== 0) return head;
    }
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

  /** memcached's total_malloced: bytes of pages handed to classes. */
  get totalMalloced(): number {
    return this.pages.initialMalloced + this.pages.mallocedPages * this.pages.pageSize;
  }

  get totalEvictions(): number {
    let sum = 0;
    for (let id = 1; id <= this.classes.largest; id++) sum += this.evicted[id]!;
    return sum;
  }

  itemStats(id: number): ItemClassStats {
    return {
      number: this.lru.count[id]!,
      evicted: this.evicted[id]!,
      evicted_unfetched: this.evictedUnfetched[id]!,
      evicted_time: this.evictedTime[id]!,
      outofmemory: this.outOfMemory[id]!,
      reclaimed: this.reclaimed[id]!,
      expired_unfetched: this.expiredUnfetched[id]!,
    };
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

  // ---- inside ----

  /** A chunk of class id: free, carved from a page, or freed by reclaiming or evicting from the class's LRU tail. */
  private allocChunk(id: number): number {
    for (let tries = 0; tries < ALLOC_TRIES; tries++) {
      const ref = this.pages.alloc(id);
      if (ref !== 0) return ref;
      if (!this.pullTail(id)) return 0;
    }
    return 0;
  }

  /**
   * Frees room in a class, as memcached's lru_pull_tail: of the few items at
   * the LRU's tail, dead ones are reclaimed; only when none is, the oldest
   * unpinned item is evicted (unless evictions are off). Whether anything went.
   */
  private pullTail(id: number): boolean {
    let removed = 0;
    let ref = this.lru.tail[id]!;
    for (let i = 0; i < TAIL_SEARCH && ref !== 0; i++) {
      const newer = this.newer(ref);
      if (this.getWord(ref, H_HOLDS) === 0 && this.isDead(ref)) {
        this.reclaimed[id]!++;
        if (!this.hasFlag(ref, ITEM_FETCHED)) this.expiredUnfetched[id]!++;
        this.free(ref);
        removed++;
      }
      ref = newer;
    }
    if (removed > 0) return true;
    if (!this.evictions) return false;
    ref = this.lru.tail[id]!;
    for (let i = 0; i < TAIL_SEARCH && ref !== 0; i++) {
      if (this.getWord(ref, H_HOLDS) === 0) {
        this.evicted[id]!++;
        this.evictedTime[id] = this.now - this.getWord(ref, H_TIME);
        if (!this.hasFlag(ref, ITEM_FETCHED)) this.evictedUnfetched[id]!++;
        if (this.evictionListener !== null) this.evictionListener.evicting(this, ref);
        this.free(ref);
        return true;
      }
      ref = this.newer(ref);
    }
    return false;
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
