import type { SlabArena } from './arena.js';
import { COLD_LRU } from './lru.js';
import { CLASS_SLOTS } from './pages.js';

/** memcached's slab_automove.c: a class is a source only with more pages than this. */
const MIN_PAGES_FOR_SOURCE = 2;
/** ... and gives a page to the global pool with more free chunks than this many pages' worth. */
const MIN_PAGES_FOR_RECLAIM = 2.5;

/** A decision: move a page from src to dst (0: the global page pool), or src -1 for none. */
export interface AutomoveDecision {
  src: number;
  dst: number;
}

/**
 * memcached 1.6.18's default automover (slab_automove.c), run once a second by
 * the rebalancer when `slab_automove` is 1. It keeps a window of the last
 * `slab_automove_window` runs per class: the age of the class's LRU tail, and
 * whether the class evicted (and what share of all evictions), ran out of
 * memory or took a page. Then:
 * - a class with more than 2.5 pages of free chunks and a clean window gives a
 *   page to the global pool;
 * - otherwise, once the window has filled, the class with the youngest tail
 *   that keeps evicting takes a page from the class with the oldest tail (and
 *   more than 2 pages), when the youngest age is below ratio × the oldest.
 */
export class SlabAutomove {
  private readonly windowSize: number;
  private readonly ratio: number;
  private windowCur = 0;
  private readonly age: Float64Array;
  private readonly dirty: Uint8Array;
  private readonly evictedRatio: Float32Array;
  private readonly evictedSeen: Uint8Array;
  /** The counters at the previous run, per class. */
  private readonly evictedBefore = new Float64Array(CLASS_SLOTS);
  private readonly outOfMemoryBefore = new Float64Array(CLASS_SLOTS);
  private readonly pagesBefore = new Float64Array(CLASS_SLOTS);
  private readonly evictedAfter = new Float64Array(CLASS_SLOTS);
  private readonly decision: AutomoveDecision = { src: -1, dst: -1 };

  constructor(
    private readonly arena: SlabArena,
    windowSize: number,
    ratio: number,
  ) {
    this.windowSize = windowSize;
    this.ratio = ratio;
    this.age = new Float64Array(windowSize * CLASS_SLOTS);
    this.dirty = new Uint8Array(windowSize * CLASS_SLOTS);
    this.evictedRatio = new Float32Array(windowSize * CLASS_SLOTS);
    this.evictedSeen = new Uint8Array(windowSize * CLASS_SLOTS);
    // A dry run fills the "before" figures, as slab_automove_init does.
    this.snapshot();
  }

  /** One run (memcached's slab_automove_run); the decision is reused between runs. */
  run(): AutomoveDecision {
    const arena = this.arena;
    const pages = arena.pages;
    const largest = arena.classes.largest;
    const windowSize = this.windowSize;
    const decision = this.decision;
    decision.src = -1;
    decision.dst = -1;
    let evictedTotal = 0;
    for (let n = 1; n <= largest; n++) {
      this.evictedAfter[n] = arena.evicted[n]!;
      evictedTotal += this.evictedAfter[n]! - this.evictedBefore[n]!;
    }
    this.windowCur++;
    let oldest = -1;
    let oldestAge = 0;
    let youngest = -1;
    let youngestAge = Infinity;
    let youngestEvicting = false;
    for (let n = 1; n <= largest; n++) {
      const base = n * windowSize;
      const slot = base + (this.windowCur % windowSize);
      this.age[slot] = 0;
      this.dirty[slot] = 0;
      this.evictedRatio[slot] = 0;
      this.evictedSeen[slot] = 0;
      const evictedDelta = this.evictedAfter[n]! - this.evictedBefore[n]!;
      if (evictedDelta > 0) {
        this.evictedRatio[slot] = evictedDelta / evictedTotal;
        this.evictedSeen[slot] = 1;
        this.dirty[slot] = 1;
      }
      if (arena.outOfMemory[n]! - this.outOfMemoryBefore[n]! > 0) this.dirty[slot] = 1;
      if (pages.totalPages[n]! - this.pagesBefore[n]! > 0) this.dirty[slot] = 1;
      this.age[slot] = this.tailAge(n);

      let ageSum = 0;
      let dirtySum = 0;
      let ratioSum = 0;
      let seenSum = 0;
      for (let x = base; x < base + windowSize; x++) {
        ageSum += this.age[x]!;
        dirtySum += this.dirty[x]!;
        ratioSum += this.evictedRatio[x]!;
        seenSum += this.evictedSeen[x]!;
      }
      // memcached sums ages as integers and divides as integers.
      const age = Math.floor(ageSum / windowSize);

      if (pages.freeChunks(n) > pages.perPage[n]! * MIN_PAGES_FOR_RECLAIM && dirtySum === 0) {
        decision.src = n;
        decision.dst = 0;
        youngest = oldest = -1;
        break;
      }
      if (age > oldestAge && pages.totalPages[n]! > MIN_PAGES_FOR_SOURCE) {
        oldest = n;
        oldestAge = age;
      }
      if (age < youngestAge && (seenSum > windowSize / 2 || ratioSum / windowSize > 0.25)) {
        youngest = n;
        youngestAge = age;
        youngestEvicting = this.evictedSeen[slot] !== 0;
      }
    }
    this.snapshot();
    if (youngest !== -1 && oldest !== -1 && this.windowCur > windowSize) {
      if (youngestAge < oldestAge * this.ratio && youngestEvicting) {
        decision.src = oldest;
        decision.dst = youngest;
      }
    }
    return decision;
  }

  /** Seconds since the last access of the item at the class's LRU tail (memcached reads its COLD tail), 0 when empty. */
  private tailAge(id: number): number {
    // Items age into COLD (flat mode keeps every item there), so its tail is the class's oldest.
    const tail = this.arena.lruTail(id | COLD_LRU);
    return tail === 0 ? 0 : Math.max(0, this.arena.now - this.arena.time(tail));
  }

  private snapshot(): void {
    const arena = this.arena;
    for (let n = 1; n <= arena.classes.largest; n++) {
      this.evictedBefore[n] = arena.evicted[n]!;
      this.outOfMemoryBefore[n] = arena.outOfMemory[n]!;
      this.pagesBefore[n] = arena.pages.totalPages[n]!;
    }
  }
}
