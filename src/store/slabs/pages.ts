import type { SizeClasses } from '../size-classes.js';
import { H_META, ITEM_SLABBED, MAX_CHUNKS_PER_PAGE, MAX_PAGES } from './layout.js';

/** The most classes size-classes.ts makes (memcached's MAX_NUMBER_OF_SLAB_CLASSES - 1), plus the unused 0. */
export const CLASS_SLOTS = 64;

/** The page-pool class (memcached's SLAB_GLOBAL_PAGE_POOL): pages no class holds. */
export const GLOBAL_PAGE_POOL = 0;

/**
 * Slab pages and classes, as memcached's slabs.c: `-m` is carved into pages
 * allocated when a class first needs one, each page given to one size class
 * and cut into that class's chunks. Each class keeps a free list of chunks
 * (doubly linked through a free chunk's u32 0, next, and u32 1, previous, so
 * that the slab mover can take one chunk out of it) and the unused tail of its
 * newest page, cut a chunk at a time so untouched memory stays untouched.
 *
 * A page leaves its class only through the slab mover (rebalancer.ts), to
 * another class or to the global page pool, which new pages are taken from
 * before any more memory is allocated (memcached's get_page_from_global_pool).
 *
 * Every page is its own SharedArrayBuffer (so a page can be handed to a worker
 * thread and -m need not be reserved up front); the tables are typed arrays on
 * SharedArrayBuffers too.
 */
export class SlabPages {
  readonly pageSize: number;
  /** Pages `-m` allows; a class with no page may still take one past it, as memcached's do_slabs_newslab allows. */
  maxPages: number;
  /** Page slots used so far (pages in classes, in the pool, and slots whose memory was released). */
  pageCount = 0;
  /** memcached's mem_malloced in pages: pages allocated and not released (in classes or in the pool). */
  mallocedPages = 0;
  /** The global page pool, a stack of page indexes, and the slots whose memory was given back (memory_release). */
  readonly poolPages = new Uint32Array(new SharedArrayBuffer(MAX_PAGES * 4));
  poolCount = 0;
  readonly releasedPages = new Uint32Array(new SharedArrayBuffer(MAX_PAGES * 4));
  releasedCount = 0;
  /** Per page: the page as a Buffer (copies by range without allocating), and as u32 words. */
  readonly bytes: Buffer[] = [];
  readonly words: Uint32Array[] = [];
  readonly buffers: SharedArrayBuffer[] = [];
  readonly pageClass = new Uint8Array(new SharedArrayBuffer(MAX_PAGES));
  readonly pageChunkSize = new Uint32Array(new SharedArrayBuffer(MAX_PAGES * 4));

  /** Per class (index = class id). */
  readonly chunkSize = new Uint32Array(new SharedArrayBuffer(CLASS_SLOTS * 4));
  readonly perPage = new Uint32Array(new SharedArrayBuffer(CLASS_SLOTS * 4));
  readonly totalPages = new Uint32Array(new SharedArrayBuffer(CLASS_SLOTS * 4));
  readonly freeHead = new Uint32Array(new SharedArrayBuffer(CLASS_SLOTS * 4));
  readonly freeCount = new Uint32Array(new SharedArrayBuffer(CLASS_SLOTS * 4));
  readonly carveNext = new Uint32Array(new SharedArrayBuffer(CLASS_SLOTS * 4));
  readonly carveLeft = new Uint32Array(new SharedArrayBuffer(CLASS_SLOTS * 4));
  /** memcached's mem_requested: bytes asked for by the items in the class's chunks. */
  readonly requested = new Float64Array(new SharedArrayBuffer(CLASS_SLOTS * 8));
  readonly largestClass: number;

  constructor(
    readonly classes: SizeClasses,
    memoryLimit: number,
    pageSize: number,
    /** Bytes counted as allocated before any page (memcached's T_MEMD_INITIAL_MALLOC, for its 64bit.t). */
    readonly initialMalloced = 0,
  ) {
    this.pageSize = pageSize;
    this.maxPages = this.pagesWithin(memoryLimit);
    this.largestClass = classes.largest;
    for (let id = 1; id <= classes.largest; id++) {
      const size = classes.chunkSizes[id]!;
      if (size > pageSize) throw new RangeError(`slab class ${id}: chunk size ${size} exceeds the page size ${pageSize}`);
      const perPage = Math.floor(pageSize / size);
      if (perPage > MAX_CHUNKS_PER_PAGE) throw new RangeError(`slab class ${id}: ${perPage} chunks per page exceed ${MAX_CHUNKS_PER_PAGE}`);
      this.chunkSize[id] = size;
      this.perPage[id] = perPage;
    }
  }

  /** A lower limit also gives back pool pages past it (memcached's do_slabs_adjust_mem_limit). */
  setMemoryLimit(memoryLimit: number): void {
    this.maxPages = this.pagesWithin(memoryLimit);
    this.releaseExcess();
  }

  private pagesWithin(memoryLimit: number): number {
    return Math.max(0, Math.min(MAX_PAGES, Math.floor((memoryLimit - this.initialMalloced) / this.pageSize)));
  }

  /** A free chunk of the class, or 0 when the class has none and may not take another page. */
  alloc(id: number): number {
    const ref = this.allocNoNewPage(id);
    if (ref !== 0) return ref;
    if (!this.newPage(id)) return 0;
    return this.allocNoNewPage(id);
  }

  /** A free chunk of the class without taking a page (memcached's SLABS_ALLOC_NO_NEWPAGE), or 0. */
  allocNoNewPage(id: number): number {
    let ref = this.freeHead[id]!;
    if (ref !== 0) {
      const next = this.words[(ref >>> 16) - 1]![((ref & 0xffff) * this.chunkSize[id]!) >>> 2]!;
      this.freeHead[id] = next;
      if (next !== 0) this.words[(next >>> 16) - 1]![(((next & 0xffff) * this.chunkSize[id]!) >>> 2) + 1] = 0;
      this.freeCount[id]!--;
      return ref;
    }
    if (this.carveLeft[id] === 0) return 0;
    ref = this.carveNext[id]!;
    this.carveNext[id] = ref + 1;
    this.carveLeft[id]!--;
    return ref;
  }

  /** Returns a chunk to its class's free list. */
  free(ref: number): void {
    const page = (ref >>> 16) - 1;
    const id = this.pageClass[page]!;
    const size = this.chunkSize[id]!;
    const head = this.freeHead[id]!;
    const at = ((ref & 0xffff) * size) >>> 2;
    this.words[page]![at] = head;
    this.words[page]![at + 1] = 0;
    if (head !== 0) this.words[(head >>> 16) - 1]![(((head & 0xffff) * size) >>> 2) + 1] = ref;
    this.freeHead[id] = ref;
    this.freeCount[id]!++;
  }

  /** Takes a free chunk out of its class's free list (memcached's slab_rebalance_cut_free). */
  cut(ref: number): void {
    const page = (ref >>> 16) - 1;
    const id = this.pageClass[page]!;
    const size = this.chunkSize[id]!;
    const at = ((ref & 0xffff) * size) >>> 2;
    const words = this.words[page]!;
    const next = words[at]!;
    const prev = words[at + 1]!;
    if (this.freeHead[id] === ref) this.freeHead[id] = next;
    if (next !== 0) this.words[(next >>> 16) - 1]![(((next & 0xffff) * size) >>> 2) + 1] = prev;
    if (prev !== 0) this.words[(prev >>> 16) - 1]![((prev & 0xffff) * size) >>> 2] = next;
    words[at] = 0;
    words[at + 1] = 0;
    this.freeCount[id]!--;
  }

  /**
   * The first chunk of a page never cut from the class's newest page (so on no
   * free list), or the page's chunk count when the whole page was cut.
   */
  uncarvedFrom(page: number): number {
    const id = this.pageClass[page]!;
    const next = this.carveNext[id]!;
    if (this.carveLeft[id] === 0 || (next >>> 16) - 1 !== page) return this.perPage[id]!;
    return next & 0xffff;
  }

  /** Stops cutting new chunks from a page (it is being emptied); its uncut chunks are simply unused. */
  stopCarving(page: number): void {
    const id = this.pageClass[page]!;
    if ((this.carveNext[id]! >>> 16) - 1 === page) this.carveLeft[id] = 0;
  }

  /** Pages that a class (or the pool, class 0) holds. */
  pagesOf(id: number): number {
    return id === 0 ? this.poolCount : this.totalPages[id]!;
  }

  /** Class id's (not the pool's) page to empty first: its lowest page index (pages are mostly taken in that order, so the oldest). */
  firstPageOf(id: number): number {
    for (let page = 0; page < this.pageCount; page++) {
      if (this.pageClass[page] === id) return page;
    }
    return -1;
  }

  /** Takes the pool's newest page out of it, or -1. */
  takeFromPool(): number {
    if (this.poolCount === 0) return -1;
    return this.poolPages[--this.poolCount]!;
  }

  /**
   * Gives an emptied page (no chunk of it in use or on a free list) to class dst,
   * or to the pool (dst 0), which then gives back memory past -m (memcached's
   * slab_rebalance_finish and memory_release).
   */
  reassignPage(page: number, dst: number): void {
    const src = this.pageClass[page]!;
    if (src !== GLOBAL_PAGE_POOL) this.totalPages[src]!--;
    if (dst === GLOBAL_PAGE_POOL) {
      this.pageClass[page] = GLOBAL_PAGE_POOL;
      this.pageChunkSize[page] = 0;
      this.poolPages[this.poolCount++] = page;
      this.releaseExcess();
      return;
    }
    this.assign(page, dst);
  }

  /** Page memory in the pool past -m goes back (memcached's memory_release). */
  private releaseExcess(): void {
    while (this.mallocedPages > this.maxPages && this.poolCount > 0) {
      const page = this.poolPages[--this.poolCount]!;
      const empty = new SharedArrayBuffer(0);
      this.buffers[page] = empty;
      this.bytes[page] = Buffer.from(empty);
      this.words[page] = new Uint32Array(empty);
      this.releasedPages[this.releasedCount++] = page;
      this.mallocedPages--;
    }
  }

  /**
   * Makes a page the class's: its chunks are cut from it as needed when the class
   * has no page being cut, otherwise they go on its free list at once.
   */
  private assign(page: number, id: number): void {
    this.pageClass[page] = id;
    this.pageChunkSize[page] = this.chunkSize[id]!;
    this.totalPages[id]!++;
    if (this.carveLeft[id] === 0) {
      this.carveNext[id] = (page + 1) * 65536;
      this.carveLeft[id] = this.perPage[id]!;
      return;
    }
    const size = this.chunkSize[id]!;
    const words = this.words[page]!;
    for (let i = this.perPage[id]! - 1; i >= 0; i--) {
      // A chunk on a free list is marked free (ITEM_SLABBED in the header's meta word), as the arena marks the chunks it frees.
      words[(((i * size) >>> 2)) + H_META] = ITEM_SLABBED << 16;
      this.free(((page + 1) << 16) | i);
    }
  }

  /** The class whose page holds the chunk. */
  classOfChunk(ref: number): number {
    return this.pageClass[(ref >>> 16) - 1]!;
  }

  /** Byte offset of the chunk in its page. */
  offsetOf(ref: number): number {
    return (ref & 0xffff) * this.pageChunkSize[(ref >>> 16) - 1]!;
  }

  usedChunks(id: number): number {
    return this.totalPages[id]! * this.perPage[id]! - this.freeChunks(id);
  }

  freeChunks(id: number): number {
    return this.freeCount[id]! + this.carveLeft[id]!;
  }

  /** A page for the class: from the pool first, else new memory while -m allows (or the class has none). */
  private newPage(id: number): boolean {
    let page = this.takeFromPool();
    if (page === -1) {
      if (this.mallocedPages >= this.maxPages && this.totalPages[id]! > 0) return false;
      const buffer = new SharedArrayBuffer(this.pageSize);
      if (this.releasedCount > 0) {
        page = this.releasedPages[--this.releasedCount]!;
        this.buffers[page] = buffer;
        this.bytes[page] = Buffer.from(buffer);
        this.words[page] = new Uint32Array(buffer);
      } else {
        if (this.pageCount >= MAX_PAGES) return false;
        page = this.pageCount++;
        this.buffers.push(buffer);
        this.bytes.push(Buffer.from(buffer));
        this.words.push(new Uint32Array(buffer));
      }
      this.mallocedPages++;
    }
    // carveLeft is 0 here (the class asked for a page), so the page is cut from as needed.
    this.assign(page, id);
    return true;
  }
}
