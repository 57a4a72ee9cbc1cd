/**
 * Versions for last-writer-wins: a hybrid logical clock (wall milliseconds times
 * 1024 plus a counter, kept monotonic and pushed forward by every version seen from
 * a peer) and a node number that breaks ties. A version fits in two numbers.
 */

/** Counter values per millisecond before the clock runs ahead of the wall. */
const TICKS_PER_MS = 1024;
/** A peer's version time further ahead of the wall clock here than this is refused. */
export const MAX_AHEAD_MS = 60_000;

export class HybridClock {
  private last = 0;

  /** A version time later than every one made or seen here. */
  next(): number {
    const wall = Date.now() * TICKS_PER_MS;
    this.last = wall > this.last ? wall : this.last + 1;
    return this.last;
  }

  /**
   * A peer's version time: later local versions come after it. False (and the clock
   * left alone) for a time that is not a finite number, or more than MAX_AHEAD_MS
   * ahead of the wall clock here: one wild time would otherwise drag every later
   * version on every node along with it.
   */
  observe(remote: number): boolean {
    if (!Number.isFinite(remote) || remote < 0) return false;
    if (remote > (Date.now() + MAX_AHEAD_MS) * TICKS_PER_MS) return false;
    if (remote > this.last) this.last = remote;
    return true;
  }

  /** A version time made here before (kept in the data dir): later versions come after it. */
  advance(time: number): void {
    if (Number.isFinite(time) && time > this.last) this.last = time;
  }

  get now(): number {
    return this.last;
  }
}

/** Wall milliseconds a version time was made at. */
export function wallMs(hlc: number): number {
  return Math.floor(hlc / TICKS_PER_MS);
}

/** Positive when (hlcA, nodeA) is the later version. */
export function compareVersions(hlcA: number, nodeA: number, hlcB: number, nodeB: number): number {
  if (hlcA !== hlcB) return hlcA - hlcB;
  return nodeA - nodeB;
}

/** The node number versions carry: a 32-bit FNV-1a hash of the node id. */
export function nodeNumber(nodeId: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < nodeId.length; i++) {
    hash ^= nodeId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
