import type { SizeClasses } from '../size-classes.js';
import { H_META, ITEM_SLABBED, MAX_CHUNKS_PER_PAGE, MAX_PAGES } from './layout.js';
import { fixedArray, scalarField, type StateEntry } from './state.js';

/** What a released page's slot holds until newPage fills it again. */
const RELEASED_PAGE = new SharedArrayBuffer(0);
const RELEASED_BYTES = Buffer.from(RELEASED_PAGE);
const RELEASED_WORDS = new Uint32Array(RELEASED_PAGE);

/** The page-pool class (memcached's SLAB_GLOBAL_PAGE_POOL): pages no class holds. */
export const GLOBAL_PAGE_POOL = 0;

/** The most classes size-classes.ts makes (memcached's MAX_NUMBER_OF_SLAB_CLASSES - 1), plus the unused 0. */
export const CLASS_SLOTS = 64;

/** How SlabPages counts and hands out pages beyond -m and the page size. */
export interface SlabPagesOptions {
  /**
   * Bytes counted as allocated before the first page (memcached's
   * T_MEMD_INITIAL_MALLOC, which its test suite uses to fake a 4 GiB heap).
   */
  initialMalloced?: number;
  /**
   * False as memcached without slab_reassign and without chunked items: a page
   * is charged only its chunks (chunk size × chunks per page), not the page size.
   */
  chargeWholePages?: boolean;
}


/**
 * Slab pages and classes, as memcached's slabs.c: `-m` is carved into pages
 * allocated when a class first needs one, each page given to one size class
 * and cut into that class's chunks. Each class keeps a free list of chunks
 * (doubly linked through a free chunk's u32 0, next, and u32 1, previous, so
 * that the slab mover can take one chunk out of it) and the unused tail of its
 * newest page, cut a chunk at a time so untouched memory stays untouched.
 *
 * A page leaves its class only through the slab mover (rebalancer.ts) or
 * releaseFreePages, to another class or to the global page pool (class 0),
 * which new pages are taken from before any more memory is allocated
 * (memcached's get_page_from_global_pool). Pool pages stay charged in
 * `malloced`; while more is charged than -m allows, the pool gives their memory
 * back (memcached's memory_release) and the slot waits, released, for newPage.
 *
 * Every page is its own SharedArrayBuffer (so a page can be handed to a worker
 * thread and -m need not be reserved up front); the tables are typed arrays on
 * SharedArrayBuffers too.
 */
export class SlabPages {
  readonly pageSize: number;
  /** -m in bytes (memcached's mem_limit); 0: none. */
  memoryLimit: number;
  /**
   * Bytes charged for pages in classes and in the pool (memcached's mem_malloced,
   * which `stats slabs` shows as total_malloced): a class with no page may take
   * one past -m, as memcached's do_slabs_newslab allows.
   */
  malloced: number;
  /**
   * cache_memlimit was lowered below what is charged: free pages of classes go to
   * the pool (and their memory back) as they empty, until the charge is within it.
   * Not set by a class's first page past -m, which memcached lets stand.
   */
  releasePending = false;
  /** Pages whose memory could not be had (memcached's malloc_fails). */
  mallocFails = 0;
  /** Page slots used so far (pages in classes, in the pool, and released slots, which are reused first). */
  pageCount = 0;
  /** The global page pool (class 0), a stack of page indexes: emptied pages, memory still held and charged. */
  readonly poolPages = new Uint32Array(new SharedArrayBuffer(MAX_PAGES * 4));
  poolCount = 0;
  /** Slots whose memory was given back (memory_release), a stack for newPage to fill again. */
  readonly releasedSlots = new Uint32Array(new SharedArrayBuffer(MAX_PAGES * 4));
  releasedCount = 0;
  private readonly chargeWholePages: boolean;
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
    options: SlabPagesOptions = {},
  ) {
    this.pageSize = pageSize;
    this.memoryLimit = memoryLimit;
    this.malloced = options.initialMalloced ?? 0;
    this.chargeWholePages = options.chargeWholePages ?? true;
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

  /**
   * cache_memlimit: pages already given stay their classes'; the limit bounds pages
   * handed out from now on, and pool pages past it are given back at once.
   */
  setMemoryLimit(memoryLimit: number): void {
    this.memoryLimit = memoryLimit;
    this.releaseExcess();
    this.releasePending = memoryLimit !== 0 && this.malloced > memoryLimit;
  }

  /** What a new page of the class is charged against -m (memcached's do_slabs_newslab len). */
  pageCharge(id: number): number {
    return this.chargeWholePages ? this.pageSize : this.chunkSize[id]! * this.perPage[id]!;
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
    if (src !== GLOBAL_PAGE_POOL) {
      this.totalPages[src]!--;
      // A pool page is charged a whole page (it may go to any class); only no_slab_reassign charges less, and it moves no page.
      this.malloced += this.pageSize - this.pageCharge(src);
    }
    if (dst === GLOBAL_PAGE_POOL) {
      this.pageClass[page] = GLOBAL_PAGE_POOL;
      this.pageChunkSize[page] = 0;
      this.poolPages[this.poolCount++] = page;
      this.releaseExcess();
      return;
    }
    this.assign(page, dst);
  }

  /**
   * Page memory in the pool past -m goes back (memcached's memory_release, run
   * when a page reaches the pool and when cache_memlimit is lowered); bytes freed.
   */
  private releaseExcess(): number {
    let freed = 0;
    while (this.memoryLimit !== 0 && this.malloced > this.memoryLimit && this.poolCount > 0) {
      const page = this.poolPages[--this.poolCount]!;
      this.releaseSlot(page);
      this.malloced -= this.pageSize;
      freed += this.pageSize;
    }
    return freed;
  }

  private releaseSlot(page: number): void {
    this.buffers[page] = RELEASED_PAGE;
    this.bytes[page] = RELEASED_BYTES;
    this.words[page] = RELEASED_WORDS;
    this.releasedSlots[this.releasedCount++] = page;
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

  /** Everything the pages hold, for a warm restart (state.ts). */
  stateEntries(): StateEntry[] {
    return [
      {
        kind: 'blocks',
        name: 'pages.pages',
        blockSize: this.pageSize,
        // A released slot is saved as a zeroed page; stateLoaded() releases it again.
        blocks: () => this.bytes.map((bytes) => (bytes === RELEASED_BYTES ? Buffer.alloc(this.pageSize) : bytes)),
        allocate: (count) => this.replacePages(count),
      },
      fixedArray('pages.pageClass', this.pageClass),
      fixedArray('pages.pageChunkSize', this.pageChunkSize),
      fixedArray('pages.chunkSize', this.chunkSize),
      fixedArray('pages.perPage', this.perPage),
      fixedArray('pages.totalPages', this.totalPages),
      fixedArray('pages.freeHead', this.freeHead),
      fixedArray('pages.freeCount', this.freeCount),
      fixedArray('pages.carveNext', this.carveNext),
      fixedArray('pages.carveLeft', this.carveLeft),
      fixedArray('pages.requested', this.requested),
      fixedArray('pages.poolPages', this.poolPages),
      fixedArray('pages.releasedSlots', this.releasedSlots),
      scalarField('pages.malloced', this, 'malloced'),
      scalarField('pages.poolCount', this, 'poolCount'),
      scalarField('pages.releasedCount', this, 'releasedCount'),
      scalarField('pages.releasePending', this, 'releasePending'),
    ];
  }

  /** After a warm restart's load: the released slots (saved as zeroed pages) are released again; pool pages keep their memory. */
  stateLoaded(): void {
    for (let i = 0; i < this.releasedCount; i++) {
      const page = this.releasedSlots[i]!;
      this.buffers[page] = RELEASED_PAGE;
      this.bytes[page] = RELEASED_BYTES;
      this.words[page] = RELEASED_WORDS;
    }
  }

  /** Drops every page for `count` new zeroed ones (a warm restart fills them). */
  private replacePages(count: number): Buffer[] {
    if (count > MAX_PAGES) throw new RangeError(`${count} pages exceed ${MAX_PAGES}`);
    this.buffers.length = 0;
    this.bytes.length = 0;
    this.words.length = 0;
    for (let page = 0; page < count; page++) {
      const buffer = new SharedArrayBuffer(this.pageSize);
      this.buffers.push(buffer);
      this.bytes.push(Buffer.from(buffer));
      this.words.push(new Uint32Array(buffer));
    }
    this.pageCount = count;
    return this.bytes;
  }

  /**
   * Gives the class a page, as memcached's do_slabs_newslab: from the pool first,
   * else new memory while -m allows (or the class has none yet); false otherwise.
   */
  newPage(id: number): boolean {
    let page = this.poolCount > 0 ? this.poolPages[--this.poolCount]! : -1;
    if (page !== -1) {
      // A pool page was charged a whole page; the class is charged what it takes.
      this.malloced += this.pageCharge(id) - this.pageSize;
    } else {
      const reuse = this.releasedCount > 0;
      if (!reuse && this.pageCount >= MAX_PAGES) return false;
      const charge = this.pageCharge(id);
      if (this.memoryLimit !== 0 && this.malloced + charge > this.memoryLimit && this.totalPages[id]! > 0) return false;
      let buffer: SharedArrayBuffer;
      try {
        buffer = new SharedArrayBuffer(this.pageSize);
      } catch {
        this.mallocFails++;
        return false;
      }
      this.malloced += charge;
      page = reuse ? this.releasedSlots[--this.releasedCount]! : this.pageCount++;
      this.buffers[page] = buffer;
      this.bytes[page] = Buffer.from(buffer);
      this.words[page] = new Uint32Array(buffer);
    }
    // carveLeft is 0 here (the class asked for a page), so the page is cut from as needed.
    this.assign(page, id);
    return true;
  }

  /**
   * While more is charged than -m allows (cache_memlimit lowered it), moves pages
   * with no chunk in use to the global pool, which gives their memory back down
   * to the limit (memcached's page mover and memory_release; a page still holding
   * an item stays: moving items out of a page is the rebalancer's). Bytes freed.
   */
  releaseFreePages(): number {
    const before = this.malloced;
    this.releaseExcess();
    for (let id = 1; id <= this.largestClass && this.memoryLimit !== 0 && this.malloced > this.memoryLimit; id++) {
      if (this.totalPages[id]! === 0) continue;
      const size = this.chunkSize[id]!;
      const perPage = this.perPage[id]!;
      // Free chunks per page: those on the free list, and the uncut rest of the newest page.
      const freeIn = new Uint32Array(this.pageCount);
      for (let ref = this.freeHead[id]!; ref !== 0; ref = this.words[(ref >>> 16) - 1]![((ref & 0xffff) * size) >>> 2]!) {
        freeIn[(ref >>> 16) - 1]!++;
      }
      const carvePage = this.carveLeft[id]! > 0 ? (this.carveNext[id]! >>> 16) - 1 : -1;
      if (carvePage >= 0) freeIn[carvePage]! += this.carveLeft[id]!;
      for (let page = 0; page < this.pageCount && this.malloced > this.memoryLimit; page++) {
        if (this.pageClass[page] !== id || freeIn[page] !== perPage) continue;
        // Every chunk cut from the page is on the free list: take them out, then stop cutting it.
        const cutChunks = this.uncarvedFrom(page);
        for (let i = 0; i < cutChunks; i++) this.cut(((page + 1) << 16) | i);
        this.stopCarving(page);
        this.reassignPage(page, GLOBAL_PAGE_POOL);
      }
    }
    if (this.malloced <= this.memoryLimit || this.memoryLimit === 0) this.releasePending = false;
    return before - this.malloced;
  }
}
