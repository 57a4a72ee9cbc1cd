import type { SlabArena } from './arena.js';
import {
  D_HEAD,
  D_NEXT,
  D_PREV,
  H_HOLDS,
  H_LRU_NEXT,
  H_LRU_PREV,
  H_META,
  ITEM_CHUNKED,
  ITEM_DATA_CHUNK,
  ITEM_LINKED,
  ITEM_SLABBED,
  MAX_CHUNKS_PER_PAGE,
  dataRefOffset,
} from './layout.js';
import { GLOBAL_PAGE_POOL } from './pages.js';
import { SlabAutomove } from './slab-automove.js';
import { fixedArray, type StateEntry } from './state.js';

/** `slabs reassign` answers, as memcached's reassign_result_type. */
export const REASSIGN_OK = 0;
export const REASSIGN_RUNNING = 1;
export const REASSIGN_BADCLASS = 2;
export const REASSIGN_NOSPARE = 3;
export const REASSIGN_SRC_DST_SAME = 4;
export type ReassignResult = 0 | 1 | 2 | 3 | 4;

/** memcached's SLAB_MOVE_MAX_LOOPS: passes over a page with busy items before those are unlinked. */
const SLAB_MOVE_MAX_LOOPS = 1000;
/** Chunks looked at per slice of a page move (a slice is one turn of the event loop). */
const CHUNKS_PER_SLICE = 512;
/** Bytes copied per slice at most (rescues of large chunks). */
const BYTES_PER_SLICE = 1024 * 1024;

/** memcached's slab_reassign, slab_automove, slab_automove_ratio and slab_automove_window. */
export interface RebalanceSettings {
  reassign: boolean;
  automove: number;
  ratio: number;
  window: number;
  /** memcached runs automove 1 in its LRU maintainer thread: off with -o no_lru_maintainer. */
  lruMaintainer?: boolean;
}

/** Told about items the mover lets go of (the store reports them on its change feed). */
export interface RebalanceListener {
  /** The item leaves memory: dead (expired or flushed) or not (no room to rescue it, or busy too long). Still readable. */
  dropping(ref: number, dead: boolean): void;
}

/**
 * memcached's slab page mover (slabs.c: slab_rebalance_start/move/finish) and
 * its automover (slab_automove.c, and automove 2 in items.c), on the event loop.
 *
 * `slabs reassign <src> <dst>` picks the source class's first page and empties
 * it a bounded slice at a time (CHUNKS_PER_SLICE chunks, then the loop runs
 * again): a free chunk is cut from the free list; a live item is copied into a
 * free chunk of its class elsewhere (a rescue; a data chunk of a chunked item
 * likewise, relinked into its chain) or, with no free chunk, evicted whole; an
 * expired or flushed item is dropped; a pinned item is busy and the page is
 * walked again until it lets go (after SLAB_MOVE_MAX_LOOPS walks it is
 * unlinked, and its chunk is freed when the holder lets go). The emptied page
 * then goes to the destination class, or to the global page pool (class 0),
 * which gives back memory past -m.
 *
 * Items keep their place in the LRU and their last-access time when rescued
 * (memcached relinks them at the head): an item moved is not made younger.
 */
export class SlabRebalancer {
  readonly settings: RebalanceSettings;
  listener: RebalanceListener | null = null;

  /** `stats` counters. */
  rescues = 0;
  chunkRescues = 0;
  evictionsNomem = 0;
  inlineReclaim = 0;
  busyItems = 0;
  busyDeletes = 0;
  slabsMoved = 0;

  // The move under way (memcached's slab_rebal).
  private running = false;
  private src = 0;
  private dst = 0;
  private page = -1;
  private pos = 0;
  private end = 0;
  private chunkSize = 0;
  private passBusy = 0;
  private busyLoops = 0;
  private moveRescues = 0;
  private moveChunkRescues = 0;
  private moveEvictionsNomem = 0;
  private moveInlineReclaim = 0;
  private moveBusyDeletes = 0;
  /** Chunks of the page already emptied (memcached's slab_rebal.completed). */
  private readonly completed = new Uint8Array(new SharedArrayBuffer(MAX_CHUNKS_PER_PAGE));
  private slice: NodeJS.Immediate | NodeJS.Timeout | null = null;
  private readonly runSlice = (): void => this.step();

  private automover: SlabAutomove | null = null;
  private automoverRatio = 0;
  private automoverWindow = 0;
  private lastAutomoveCheck = -1;
  /** A page just went to the pool: the automover runs again soon rather than next second (as memcached's). */
  private automoveAgain: NodeJS.Timeout | null = null;
  private readonly runAutomoveAgain = (): void => {
    this.automoveAgain = null;
    this.automove();
  };
  /** slabs_reassign_pick_any's place. */
  private pickCursor = 0;
  private stopped = false;

  constructor(
    private readonly arena: SlabArena,
    settings: RebalanceSettings,
  ) {
    this.settings = { ...settings };
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** `stats` lines, in memcached's order (it lists them when slab_reassign is on). */
  stats(): Array<[string, number]> {
    return [
      ['slab_reassign_rescues', this.rescues],
      ['slab_reassign_chunk_rescues', this.chunkRescues],
      ['slab_reassign_evictions_nomem', this.evictionsNomem],
      ['slab_reassign_inline_reclaim', this.inlineReclaim],
      ['slab_reassign_busy_items', this.busyItems],
      ['slab_reassign_busy_deletes', this.busyDeletes],
      ['slab_reassign_running', this.running ? 1 : 0],
      ['slabs_moved', this.slabsMoved],
    ];
  }

  /** `stats reset`: memcached zeroes these with the rest of its stats struct. */
  resetStats(): void {
    this.rescues = this.chunkRescues = this.evictionsNomem = this.inlineReclaim = 0;
    this.busyItems = this.busyDeletes = this.slabsMoved = 0;
  }

  /**
   * The move under way, for a warm restart (state.ts): a save finishes the move
   * first when it can (finishNow), but a page whose items are held stays
   * half-emptied, and is taken up where it was after the load, its own counts
   * with it. The `stats` counters start from 0, as every other counter does.
   */
  stateEntries(): StateEntry[] {
    const scalar = (name: string, get: () => number, set: (value: number) => void): StateEntry => ({ kind: 'scalar', name: `mover.${name}`, get, set });
    return [
      scalar('running', () => Number(this.running), (v) => (this.running = v !== 0)),
      scalar('src', () => this.src, (v) => (this.src = v)),
      scalar('dst', () => this.dst, (v) => (this.dst = v)),
      scalar('page', () => this.page, (v) => (this.page = v)),
      scalar('pos', () => this.pos, (v) => (this.pos = v)),
      scalar('end', () => this.end, (v) => (this.end = v)),
      scalar('chunkSize', () => this.chunkSize, (v) => (this.chunkSize = v)),
      scalar('passBusy', () => this.passBusy, (v) => (this.passBusy = v)),
      scalar('busyLoops', () => this.busyLoops, (v) => (this.busyLoops = v)),
      scalar('moveRescues', () => this.moveRescues, (v) => (this.moveRescues = v)),
      scalar('moveChunkRescues', () => this.moveChunkRescues, (v) => (this.moveChunkRescues = v)),
      scalar('moveEvictionsNomem', () => this.moveEvictionsNomem, (v) => (this.moveEvictionsNomem = v)),
      scalar('moveInlineReclaim', () => this.moveInlineReclaim, (v) => (this.moveInlineReclaim = v)),
      scalar('moveBusyDeletes', () => this.moveBusyDeletes, (v) => (this.moveBusyDeletes = v)),
      fixedArray('mover.completed', this.completed),
    ];
  }

  /** After a warm restart's load: a move that was under way goes on. */
  stateLoaded(): void {
    if (this.running) this.schedule(false);
  }

  /** Pages in the global pool (`stats` slab_global_page_pool). */
  get globalPagePool(): number {
    return this.arena.pages.poolCount;
  }

  /** memcached's slabs_reassign: starts moving one page of src (-1: any class with a spare page) to dst. */
  reassign(src: number, dst: number): ReassignResult {
    if (this.running) return REASSIGN_RUNNING;
    if (src === dst) return REASSIGN_SRC_DST_SAME;
    const largest = this.arena.classes.largest;
    if (src === -1) src = this.pickAny(dst);
    if (src < GLOBAL_PAGE_POOL || src > largest || dst < GLOBAL_PAGE_POOL || dst > largest) return REASSIGN_BADCLASS;
    if (this.arena.pages.pagesOf(src) < 2) return REASSIGN_NOSPARE;
    this.start(src, dst);
    return REASSIGN_OK;
  }

  /** Automove 2: an eviction in a class pulls a page to it from any class with a spare one. */
  evicted(id: number): void {
    if (this.settings.automove === 2 && this.settings.reassign) this.reassign(-1, id);
  }

  /** Once per clock second, as memcached's LRU maintainer runs the automover. */
  tick(now: number): void {
    if (now === this.lastAutomoveCheck) return;
    this.automove();
  }

  /** Ends timers; a move under way is left where it is (its page keeps its class). */
  stop(): void {
    this.stopped = true;
    if (this.slice !== null) {
      clearImmediate(this.slice as NodeJS.Immediate);
      clearTimeout(this.slice as NodeJS.Timeout);
    }
    if (this.automoveAgain !== null) clearTimeout(this.automoveAgain);
    this.slice = null;
    this.automoveAgain = null;
  }

  /**
   * Runs the move under way to its end now (tests; a shutdown that must leave the
   * arena whole). False when held items kept it from ending.
   */
  finishNow(maxPasses = SLAB_MOVE_MAX_LOOPS + 2): boolean {
    for (let passes = 0; this.running && passes < maxPasses; passes++) this.step(true);
    return !this.running;
  }

  private automove(): void {
    const settings = this.settings;
    if (settings.automove !== 1 || !settings.reassign || settings.lruMaintainer === false || this.stopped) {
      this.automover = null;
      return;
    }
    if (this.automover === null || this.automoverRatio !== settings.ratio || this.automoverWindow !== settings.window) {
      this.automover = new SlabAutomove(this.arena, settings.window, settings.ratio);
      this.automoverRatio = settings.ratio;
      this.automoverWindow = settings.window;
    }
    const decision = this.automover.run();
    if (decision.src !== -1 && decision.dst !== -1) this.reassign(decision.src, decision.dst);
    if (decision.dst !== 0) {
      this.lastAutomoveCheck = this.arena.now;
    } else if (this.automoveAgain === null) {
      // memcached's maintainer sleeps 1 ms instead of a second after sending a page to the pool.
      this.automoveAgain = setTimeout(this.runAutomoveAgain, 1);
      this.automoveAgain.unref();
    }
  }

  private pickAny(dst: number): number {
    const largest = this.arena.classes.largest;
    for (let tries = largest; tries > 0; tries--) {
      this.pickCursor++;
      if (this.pickCursor > largest) this.pickCursor = 1;
      if (this.pickCursor === dst) continue;
      if (this.arena.pages.totalPages[this.pickCursor]! > 1) return this.pickCursor;
    }
    return -1;
  }

  private start(src: number, dst: number): void {
    const pages = this.arena.pages;
    this.src = src;
    this.dst = dst;
    this.running = true;
    this.passBusy = 0;
    this.busyLoops = 0;
    if (src === GLOBAL_PAGE_POOL) {
      // A pool page holds nothing: it only changes hands.
      this.page = pages.takeFromPool();
      this.pos = this.end = 0;
    } else {
      const page = pages.firstPageOf(src);
      this.page = page;
      this.chunkSize = pages.chunkSize[src]!;
      this.end = pages.perPage[src]!;
      this.pos = 0;
      const uncarved = pages.uncarvedFrom(page);
      pages.stopCarving(page);
      const completed = this.completed;
      completed.fill(0, 0, uncarved);
      completed.fill(1, uncarved, this.end);
    }
    this.schedule(false);
  }

  private schedule(busy: boolean): void {
    if (this.stopped) return;
    if (busy) {
      // Busy items wait for their holders: come back after a pause (memcached backs off up to 1 ms).
      const timer = setTimeout(this.runSlice, 1);
      timer.unref();
      this.slice = timer;
    } else {
      this.slice = setImmediate(this.runSlice);
    }
  }

  /** One slice of the move; finishes it when the page is empty. */
  private step(all = false): void {
    this.slice = null;
    if (!this.running) return;
    let busy = 0;
    let copied = 0;
    const completed = this.completed;
    for (let n = 0; (all || (n < CHUNKS_PER_SLICE && copied < BYTES_PER_SLICE)) && this.pos < this.end; n++) {
      const index = this.pos++;
      if (completed[index] !== 0) continue;
      const result = this.moveChunk(index);
      if (result < 0) busy++;
      else copied += result;
    }
    this.passBusy += busy;
    if (this.pos >= this.end) {
      if (this.passBusy > 0) {
        this.busyItems += this.passBusy;
        this.passBusy = 0;
        this.busyLoops++;
        this.pos = 0;
      } else {
        this.finish();
        return;
      }
    }
    if (!all) this.schedule(busy > 0);
  }

  /**
   * Empties one chunk of the page (memcached's slab_rebalance_move): -1 when it is
   * busy (to be looked at again), otherwise the bytes copied (0 when none).
   */
  private moveChunk(index: number): number {
    const arena = this.arena;
    const pages = arena.pages;
    const page = this.page;
    const ref = ((page + 1) << 16) | index;
    const words = pages.words[page]!;
    const field = (index * this.chunkSize) >>> 2;
    const flags = words[field + H_META]! >>> 16;
    if ((flags & ITEM_DATA_CHUNK) !== 0) return this.moveDataChunk(ref, index, words[field + D_HEAD]!);
    if ((flags & ITEM_SLABBED) !== 0) {
      pages.cut(ref);
      this.completed[index] = 1;
      return 0;
    }
    if ((flags & ITEM_LINKED) === 0) return -1; // unlinked but held: freed when its holder lets go
    if (words[field + H_HOLDS] !== 0) return this.busy(ref);
    if (arena.isDead(ref)) return this.dropItem(ref, ref, index, true);
    const target = this.rescueChunk();
    if (target === 0) {
      this.moveEvictionsNomem++;
      return this.dropItem(ref, ref, index, false);
    }
    this.relocateItem(ref, target, (flags & ITEM_CHUNKED) !== 0);
    this.moveRescues++;
    this.completed[index] = 1;
    return this.chunkSize;
  }

  /** A data chunk of a chunked item whose header is `head`. */
  private moveDataChunk(ref: number, index: number, head: number): number {
    const arena = this.arena;
    if (!arena.isLinked(head)) return -1; // its item was unlinked while held: freed when the holder lets go
    if (this.word(head, H_HOLDS) !== 0) return this.busy(head);
    if (arena.isDead(head)) return this.dropItem(head, ref, index, true);
    const target = this.rescueChunk();
    if (target === 0) {
      this.moveEvictionsNomem++;
      return this.dropItem(head, ref, index, false);
    }
    this.relocateDataChunk(ref, target);
    this.moveChunkRescues++;
    this.completed[index] = 1;
    return this.chunkSize;
  }

  /** A linked item someone holds: looked at again later, or unlinked after too many walks (memcached's busy_deletes). */
  private busy(head: number): number {
    if (this.busyLoops > SLAB_MOVE_MAX_LOOPS) {
      this.moveBusyDeletes++;
      if (this.listener !== null) this.listener.dropping(head, false);
      this.arena.free(head);
    }
    return -1;
  }

  /** Unlinks and frees an item (its chunks go on their free lists; the caller cuts the one in this page). */
  private drop(head: number, dead: boolean): void {
    if (this.listener !== null) this.listener.dropping(head, dead);
    this.arena.free(head);
  }

  /** Lets go of the item whose chunk `ref` on the page is (dead, or no room to rescue it) and takes that chunk out of use. */
  private dropItem(head: number, ref: number, index: number, dead: boolean): number {
    this.drop(head, dead);
    this.arena.pages.cut(ref);
    this.completed[index] = 1;
    return 0;
  }

  /**
   * A free chunk of the source class outside the page (memcached's
   * slab_rebalance_alloc): chunks of the page itself that come off the free
   * list are set aside as emptied. 0 when the class has none.
   */
  private rescueChunk(): number {
    const pages = this.arena.pages;
    const page = this.page;
    for (let tries = 0; tries < this.end; tries++) {
      const ref = pages.allocNoNewPage(this.src);
      if (ref === 0) return 0;
      if ((ref >>> 16) - 1 !== page) return ref;
      this.completed[ref & 0xffff] = 1;
      this.moveInlineReclaim++;
    }
    return 0;
  }

  /** Copies an item's header chunk to `target` and puts it in the item's place in the hash table and the LRU. */
  private relocateItem(ref: number, target: number, chunked: boolean): void {
    const arena = this.arena;
    const pages = arena.pages;
    const size = this.chunkSize;
    const from = pages.offsetOf(ref);
    pages.bytes[(ref >>> 16) - 1]!.copy(pages.bytes[(target >>> 16) - 1]!, pages.offsetOf(target), from, from + size);
    // The LRU: the copy takes the original's place between its neighbours, in the LRU its header names (class | segment).
    const lruId = arena.lruId(ref);
    const lru = arena.lru;
    const newer = this.word(ref, H_LRU_PREV);
    const older = this.word(ref, H_LRU_NEXT);
    if (newer !== 0) this.setWord(newer, H_LRU_NEXT, target);
    else lru.head[lruId] = target;
    if (older !== 0) this.setWord(older, H_LRU_PREV, target);
    else lru.tail[lruId] = target;
    // The hash table: out with the original, in with the copy (its H_HASH came with the bytes).
    arena.hashTable.remove(ref);
    arena.hashTable.insert(target);
    if (chunked) {
      const refWord = dataRefOffset(arena.keyLength(target)) >>> 2;
      let chunk = this.word(target, refWord);
      if (chunk !== 0) this.setWord(chunk, D_PREV, target);
      for (; chunk !== 0; chunk = this.word(chunk, D_NEXT)) this.setWord(chunk, D_HEAD, target);
    }
    this.setWord(ref, H_META, ITEM_SLABBED << 16);
  }

  /** Copies a data chunk to `target` and relinks its chain through the copy. */
  private relocateDataChunk(ref: number, target: number): void {
    const pages = this.arena.pages;
    const from = pages.offsetOf(ref);
    pages.bytes[(ref >>> 16) - 1]!.copy(pages.bytes[(target >>> 16) - 1]!, pages.offsetOf(target), from, from + this.chunkSize);
    const prev = this.word(ref, D_PREV);
    const next = this.word(ref, D_NEXT);
    const head = this.word(ref, D_HEAD);
    if (prev === head) this.setWord(head, dataRefOffset(this.arena.keyLength(head)) >>> 2, target);
    else this.setWord(prev, D_NEXT, target);
    if (next !== 0) this.setWord(next, D_PREV, target);
    this.setWord(ref, H_META, ITEM_SLABBED << 16);
  }

  /** memcached's slab_rebalance_finish: the page changes hands and the move's counts reach `stats`. */
  private finish(): void {
    const pages = this.arena.pages;
    if (this.page !== -1) pages.reassignPage(this.page, this.dst);
    this.running = false;
    this.page = -1;
    this.slabsMoved++;
    this.rescues += this.moveRescues;
    this.chunkRescues += this.moveChunkRescues;
    this.evictionsNomem += this.moveEvictionsNomem;
    this.inlineReclaim += this.moveInlineReclaim;
    this.busyDeletes += this.moveBusyDeletes;
    this.moveRescues = this.moveChunkRescues = this.moveEvictionsNomem = this.moveInlineReclaim = this.moveBusyDeletes = 0;
  }

  private word(ref: number, field: number): number {
    const pages = this.arena.pages;
    return pages.words[(ref >>> 16) - 1]![(pages.offsetOf(ref) >>> 2) + field]!;
  }

  private setWord(ref: number, field: number, value: number): void {
    const pages = this.arena.pages;
    pages.words[(ref >>> 16) - 1]![(pages.offsetOf(ref) >>> 2) + field] = value;
  }
}
