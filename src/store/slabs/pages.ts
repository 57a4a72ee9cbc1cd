import type { SizeClasses } from '../size-classes.js';
import { MAX_CHUNKS_PER_PAGE, MAX_PAGES } from './layout.js';
import { fixedArray, type StateEntry } from './state.js';

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
export class SlabPages {
  readonly pageSize: number;
  /** Pages `-m` allows; a class with no page may still take one past it, as memcached's do_slabs_newslab allows. */
  maxPages: number;
  pageCount = 0;
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
  ) {
    this.pageSize = pageSize;
    this.maxPages = Math.min(MAX_PAGES, Math.floor(memoryLimit / pageSize));
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

  setMemoryLimit(memoryLimit: number): void {
    this.maxPages = Math.min(MAX_PAGES, Math.floor(memoryLimit / this.pageSize));
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
        blocks: () => this.bytes,
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
    ];
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

  private newPage(id: number): boolean {
    if (this.pageCount >= MAX_PAGES) return false;
    if (this.pageCount >= this.maxPages && this.totalPages[id]! > 0) return false;
    const page = this.pageCount++;
    const buffer = new SharedArrayBuffer(this.pageSize);
    this.buffers.push(buffer);
    this.bytes.push(Buffer.from(buffer));
    this.words.push(new Uint32Array(buffer));
    this.pageClass[page] = id;
    this.pageChunkSize[page] = this.chunkSize[id]!;
    this.totalPages[id]!++;
    this.carveNext[id] = (page + 1) * 65536;
    this.carveLeft[id] = this.perPage[id]!;
    return true;
  }
}
