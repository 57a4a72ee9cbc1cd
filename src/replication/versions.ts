import { compareVersions } from './hlc.js';

/** How long a delete's tombstone is kept to beat writes older than it that arrive late. */
export const TOMBSTONE_SECONDS = 3600;
/** Entries the background prune looks at per second. */
const PRUNE_PER_TICK = 20_000;

/** A key's version: its last change here, or its tombstone. Mutated in place on a new change. */
export class Version {
  constructor(
    public hlc: number,
    public node: number,
    public tomb: boolean,
    /** Unix seconds the tombstone was made (0 for a live item). */
    public since: number,
  ) {}
}

/**
 * The side map of versions (key -> version of its last change, tombstones included)
 * and the version of the newest flush_all: a key with no entry is as old as that.
 * Entries of items that left memory (expired, evicted) are pruned slowly; tombstones
 * after TOMBSTONE_SECONDS.
 */
export class VersionTable {
  readonly map = new Map<string, Version>();
  flushHlc = -1;
  flushNode = 0;
  tombstones = 0;
  private pruning: Iterator<[string, Version]> | null = null;

  /** True when (hlc, node) is later than what the key holds here. */
  isNewer(key: string, hlc: number, node: number): boolean {
    const entry = this.map.get(key);
    if (entry !== undefined) return compareVersions(hlc, node, entry.hlc, entry.node) > 0;
    return compareVersions(hlc, node, this.flushHlc, this.flushNode) > 0;
  }

  set(key: string, hlc: number, node: number, tomb: boolean, now: number): void {
    const entry = this.map.get(key);
    if (entry === undefined) {
      this.map.set(key, new Version(hlc, node, tomb, tomb ? now : 0));
      if (tomb) this.tombstones++;
      return;
    }
    if (entry.tomb !== tomb) this.tombstones += tomb ? 1 : -1;
    entry.hlc = hlc;
    entry.node = node;
    entry.tomb = tomb;
    entry.since = tomb ? now : 0;
  }

  get(key: string): Version | undefined {
    return this.map.get(key);
  }

  /** flush_all at (hlc, node): entries older than it are covered by the flush and dropped. */
  flush(hlc: number, node: number): void {
    if (compareVersions(hlc, node, this.flushHlc, this.flushNode) <= 0) return;
    this.flushHlc = hlc;
    this.flushNode = node;
    for (const [key, entry] of this.map) {
      if (compareVersions(entry.hlc, entry.node, hlc, node) < 0) {
        if (entry.tomb) this.tombstones--;
        this.map.delete(key);
      }
    }
  }

  /**
   * A slice of the background prune: drops old tombstones, and entries of live
   * items that are gone (gone(key) says so), so the map does not grow without bound.
   */
  prune(now: number, gone: ((key: string) => boolean) | null): void {
    if (this.pruning === null) this.pruning = this.map.entries();
    for (let seen = 0; seen < PRUNE_PER_TICK; seen++) {
      const next = this.pruning.next();
      if (next.done) {
        this.pruning = null;
        return;
      }
      const [key, entry] = next.value;
      if (entry.tomb ? now - entry.since > TOMBSTONE_SECONDS : gone !== null && gone(key)) {
        if (entry.tomb) this.tombstones--;
        this.map.delete(key);
      }
    }
  }
}
