import type { SlabArena } from './arena.js';

/** memcached's MIN_LRU_MAINTAINER_SLEEP and MAX_LRU_MAINTAINER_SLEEP, in microseconds. */
const MIN_SLEEP_US = 1000;
const MAX_SLEEP_US = 1_000_000;
/** Queued COLD hits moved to WARM per run: bounded, so a run is never a pause. */
const BUMPS_PER_RUN = 4096;
/** Rounds of pullTail pairs per class per run (memcached's 500 per juggle). */
const ROUNDS_PER_CLASS = 500;
/**
 * Rounds over all classes per run: memcached juggles on a thread of its own,
 * here a run shares the event loop with requests, so it stops after this many
 * (well under a millisecond) and the classes not reached go first next time.
 */
const ROUNDS_PER_RUN = 2000;

/**
 * memcached's lru_maintainer_thread as a unit of work on the event loop: each
 * run juggles the classes that are due (arena.juggle), then moves the queued
 * COLD hits to WARM, and says how long to wait before the next run. Each
 * class backs off on its own as memcached's (1 ms up to 1 s while it has
 * nothing to move), so an idle cache costs about one run a second.
 */
export class LruMaintainer {
  /** memcached's lru_maintainer_juggles: runs so far. */
  juggles = 0;
  /** Per class: microseconds until its next juggle, and its current backoff (memcached's next_juggles, backoff_juggles). */
  private readonly nextJuggle: Float64Array;
  private readonly backoff: Float64Array;
  /** The class a run starts at: the first one the last run did not reach. */
  private startClass = 1;
  private timer: NodeJS.Timeout | null = null;
  private lastSleepUs = MIN_SLEEP_US;

  constructor(private readonly arena: SlabArena) {
    const slots = arena.classes.largest + 1;
    this.nextJuggle = new Float64Array(new SharedArrayBuffer(slots * 8));
    this.backoff = new Float64Array(new SharedArrayBuffer(slots * 8));
  }

  get running(): boolean {
    return this.timer !== null;
  }

  /** Schedules runs until stop(); the timer does not keep the process alive. */
  start(): void {
    if (this.timer !== null) return;
    this.schedule(MIN_SLEEP_US);
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /** One run; the microseconds until the next one is due. lastSleepUs: how long since the previous run. */
  run(lastSleepUs: number): number {
    const arena = this.arena;
    let toSleep = MAX_SLEEP_US;
    const slept = Math.max(lastSleepUs, MIN_SLEEP_US);
    this.juggles++;
    const largest = arena.classes.largest;
    let budget = ROUNDS_PER_RUN;
    for (let n = 0, id = this.startClass; n < largest; n++, id = id === largest ? 1 : id + 1) {
      const next = this.nextJuggle[id]! > slept ? this.nextJuggle[id]! - slept : 0;
      this.nextJuggle[id] = next;
      if (next > 0) {
        if (next < toSleep) toSleep = next;
        continue;
      }
      if (budget <= 0) {
        // Out of this run's work: this class goes first in the next run, due at once.
        this.startClass = id;
        toSleep = MIN_SLEEP_US;
        break;
      }
      const didMoves = arena.juggle(id, Math.min(ROUNDS_PER_CLASS, budget));
      budget -= didMoves + 1;
      let backoff = this.backoff[id]!;
      if (didMoves === 0) {
        backoff = backoff !== 0 ? backoff + backoff / 8 : MIN_SLEEP_US;
        if (backoff > MAX_SLEEP_US) backoff = MAX_SLEEP_US;
      } else if (backoff > 0) {
        backoff /= 2;
        if (backoff < MIN_SLEEP_US) backoff = 0;
      }
      this.backoff[id] = backoff;
      this.nextJuggle[id] = backoff;
      if (backoff < toSleep) toSleep = backoff;
    }
    // Run again soon while hits on COLD wait to be moved.
    if (arena.processBumps(BUMPS_PER_RUN) > 0 && toSleep > MIN_SLEEP_US) toSleep = MIN_SLEEP_US;
    return toSleep;
  }

  private schedule(sleepUs: number): void {
    this.lastSleepUs = Math.max(sleepUs, MIN_SLEEP_US);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.schedule(this.run(this.lastSleepUs));
    }, Math.max(1, Math.round(this.lastSleepUs / 1000)));
    this.timer.unref();
  }
}
