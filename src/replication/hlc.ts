/**
 * Versions for last-writer-wins: a hybrid logical clock (wall milliseconds times
 * 1024 plus a counter, kept monotonic and pushed forward by every version seen from
 * a peer) and a node number that breaks ties. A version fits in two numbers.
 */

/** Counter values per millisecond before the clock runs ahead of the wall. */
const TICKS_PER_MS = 1024;

export class HybridClock {
  private last = 0;

  /** A version time later than every one made or seen here. */
  next(): number {
    const wall = Date.now() * TICKS_PER_MS;
    this.last = wall > this.last ? wall : this.last + 1;
    return this.last;
  }

  /** A peer's version time: later local versions come after it. */
  observe(remote: number): void {
    if (remote > this.last) this.last = remote;
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
