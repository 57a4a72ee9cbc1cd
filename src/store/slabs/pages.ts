import type { SizeClasses } from '../size-classes.js';
import { MAX_CHUNKS_PER_PAGE, MAX_PAGES } from './layout.js';
import { fixedArray, scalarField, type StateEntry } from './state.js';

/** What a released page's slot holds until newPage fills it again. */
const RELEASED_PAGE = new SharedArrayBuffer(0);
const RELEASED_BYTES = Buffer.from(RELEASED_PAGE);
const RELEASED_WORDS = new Uint32Array(RELEASED_PAGE);

/** The most classes size-classes.ts makes (memcached's MAX_NUMBER_OF_SLAB_CLASSES - 1), plus the unused 0. */
export const CLASS_SLOTS = 64;

/**
 * Slab pages and classes, as memcached's slabs.c: `-m` is carved into pages
 * allocated when a class first needs one, each page given to one size class
 * for good and cut into that class's chunks. Each class keeps a free list of
 * chunks (linked through a chunk's first u32) and the unused tail of its
 * newest page, cut a chunk at a time so untouched memory stays untouched.
 *
 * Every page is its own SharedArrayBuffer (so a page can be handed to a worker
 * thread and -m need not be reserved up front); the tables are typed arrays on
 * SharedArrayBuffers too.
 */
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

export class SlabPages {
  readonly pageSize: number;
  /** -m in bytes (memcached's mem_limit); 0: none. */
  memoryLimit: number;
  /**
   * Bytes charged for pages handed to classes (memcached's mem_malloced, which
   * `stats slabs` shows as total_malloced): a class with no page may take one
   * past -m, as memcached's do_slabs_newslab allows.
   */
  malloced: number;
  /** Pages whose memory could not be had (memcached's malloc_fails). */
  mallocFails = 0;
  /** Page slots used so far (released ones included: their slots are reused first). */
  pageCount = 0;
  /** Slots of pages given back by releaseEmptyClasses, for newPage to fill again. */
  private readonly releasedSlots: number[] = [];
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

  /** cache_memlimit: pages already given stay their classes'; the limit bounds pages handed out from now on. */
  setMemoryLimit(memoryLimit: number): void {
    this.memoryLimit = memoryLimit;
  }

  /** What a new page of the class is charged against -m (memcached's do_slabs_newslab len). */
  pageCharge(id: number): number {
    return this.chargeWholePages ? this.pageSize : this.chunkSize[id]! * this.perPage[id]!;
  }

  /** A free chunk of the class, or 0 when the class has none and may not take another page. */
  alloc(id: number): number {
    let ref = this.freeHead[id]!;
    if (ref !== 0) {
      this.freeHead[id] = this.words[(ref >>> 16) - 1]![((ref & 0xffff) * this.chunkSize[id]!) >>> 2]!;
      this.freeCount[id]!--;
      return ref;
    }
    if (this.carveLeft[id] === 0 && !this.newPage(id)) return 0;
    ref = this.carveNext[id]!;
    this.carveNext[id] = ref + 1;
    this.carveLeft[id]!--;
    return ref;
  }

  /** Returns a chunk to its class's free list. */
  free(ref: number): void {
    const page = (ref >>> 16) - 1;
    const id = this.pageClass[page]!;
    this.words[page]![((ref & 0xffff) * this.chunkSize[id]!) >>> 2] = this.freeHead[id]!;
    this.freeHead[id] = ref;
    this.freeCount[id]!++;
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
      scalarField('pages.malloced', this, 'malloced'),
    ];
  }

  /** After a warm restart's load: slots that belong to no class were released pages, and are so again. */
  stateLoaded(): void {
    this.releasedSlots.length = 0;
    for (let page = 0; page < this.pageCount; page++) {
      if (this.pageClass[page] !== 0) continue;
      this.buffers[page] = RELEASED_PAGE;
      this.bytes[page] = RELEASED_BYTES;
      this.words[page] = RELEASED_WORDS;
      this.releasedSlots.push(page);
    }
  }

  /** Drops every page for `count` new zeroed ones (a warm restart fills them). */
  private replacePages(count: number): Buffer[] {
    if (count > MAX_PAGES) throw new RangeError(`${count} pages exceed ${MAX_PAGES}`);
    this.buffers.length = 0;
    this.bytes.length = 0;
    this.words.length = 0;
    this.releasedSlots.length = 0;
    for (let page = 0; page < count; page++) {
      const buffer = new SharedArrayBuffer(this.pageSize);
      this.buffers.push(buffer);
      this.bytes.push(Buffer.from(buffer));
      this.words.push(new Uint32Array(buffer));
    }
    this.pageCount = count;
    return this.bytes;
  }

  /** Gives the class a page, as memcached's do_slabs_newslab; false past -m (unless the class has none yet). */
  newPage(id: number): boolean {
    const reuse = this.releasedSlots.length > 0;
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
    const page = reuse ? this.releasedSlots.pop()! : this.pageCount++;
    this.buffers[page] = buffer;
    this.bytes[page] = Buffer.from(buffer);
    this.words[page] = new Uint32Array(buffer);
    this.pageClass[page] = id;
    this.pageChunkSize[page] = this.chunkSize[id]!;
    this.totalPages[id]!++;
    this.carveNext[id] = (page + 1) * 65536;
    this.carveLeft[id] = this.perPage[id]!;
    return true;
  }

  /**
   * While more is charged than -m allows (cache_memlimit lowered it), gives back
   * pages with no chunk in use, down to the limit, as memcached's page mover and
   * memory_release return free pages to the OS (a page still holding an item
   * stays: moving items out of a page is the rebalancer's). Bytes freed.
   */
  releaseFreePages(): number {
    let freed = 0;
    for (let id = 1; id <= this.largestClass && this.memoryLimit !== 0 && this.malloced > this.memoryLimit; id++) {
      if (this.totalPages[id]! === 0) continue;
      const size = this.chunkSize[id]!;
      const perPage = this.perPage[id]!;
      // Free chunks per page: those on the free list, and the uncut rest of the newest page.
      const freeIn = new Uint32Array(this.pageCount);
      const freeList: number[] = [];
      for (let ref = this.freeHead[id]!; ref !== 0; ref = this.words[(ref >>> 16) - 1]![((ref & 0xffff) * size) >>> 2]!) {
        freeIn[(ref >>> 16) - 1]!++;
        freeList.push(ref);
      }
      const carvePage = this.carveLeft[id]! > 0 ? (this.carveNext[id]! >>> 16) - 1 : -1;
      if (carvePage >= 0) freeIn[carvePage]! += this.carveLeft[id]!;
      const charge = this.pageCharge(id);
      let released = 0;
      for (let page = 0; page < this.pageCount && this.malloced > this.memoryLimit; page++) {
        if (this.pageClass[page] !== id || freeIn[page] !== perPage) continue;
        this.pageClass[page] = 0;
        this.pageChunkSize[page] = 0;
        this.buffers[page] = RELEASED_PAGE;
        this.bytes[page] = RELEASED_BYTES;
        this.words[page] = RELEASED_WORDS;
        this.releasedSlots.push(page);
        this.totalPages[id]!--;
        this.malloced -= charge;
        freed += charge;
        released++;
        freeIn[page] = 0xffffffff;
      }
      if (released === 0) continue;
      // The free list ran through the released pages: keep only the chunks of pages still there.
      this.freeHead[id] = 0;
      this.freeCount[id] = 0;
      for (let i = freeList.length - 1; i >= 0; i--) {
        const ref = freeList[i]!;
        if (freeIn[(ref >>> 16) - 1] !== 0xffffffff) this.free(ref);
      }
      if (carvePage >= 0 && freeIn[carvePage] === 0xffffffff) {
        this.carveNext[id] = 0;
        this.carveLeft[id] = 0;
      }
    }
    return freed;
  }
}
