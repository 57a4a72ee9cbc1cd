import { fmix32 } from '../store/slabs/murmur3.js';
import { compareVersions } from './hlc.js';

/** Anti-entropy compares the version table in this many buckets of keys (a power of two). */
export const AE_BUCKETS = 1024;

/** Set by hashKey: two 32-bit hashes of a key (bucket from the first). */
let keyA = 0;
let keyB = 0;

/** Two independent 32-bit hashes of a key in one pass (cyrb53's mixing), into keyA and keyB. */
function hashKey(key: string): void {
  let a = 0xdeadbeef;
  let b = 0x41c6ce57;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    a = Math.imul(a ^ c, 2654435761);
    b = Math.imul(b ^ c, 1597334677);
  }
  a = Math.imul(a ^ (a >>> 16), 2246822507) ^ Math.imul(b ^ (b >>> 13), 3266489909);
  b = Math.imul(b ^ (b >>> 16), 2246822507) ^ Math.imul(a ^ (a >>> 13), 3266489909);
  keyA = a >>> 0;
  keyB = b >>> 0;
}

/** How long a delete's tombstone is kept to beat writes older than it that arrive late. */
export const TOMBSTONE_SECONDS = 3600;
/** Entries the background prune and audit look at per second. */
export const PRUNE_PER_TICK = 20_000;
/** With a data dir each look is a disk read (measured 4 to 6 µs on a busy 2-core machine): fewer per second, so a tick stays a few ms. */
export const PRUNE_PER_TICK_DISK = 2_000;

/** Where changes to the table are kept (the data dir's version store), or nothing. */
export interface VersionSink {
  put(key: string, hlc: number, node: number, tomb: boolean, since: number): void;
  remove(key: string): void;
  flushed(hlc: number, node: number): void;
}

/**
 * What the node actually serves, for the audit that keeps the table true to it.
 * Anti-entropy compares tables; the audit is what makes that a comparison of what
 * nodes serve, whatever made a node's items and table disagree (a crash between
 * the two commits, a bug).
 */
export interface ServedKeys {
  /** True when a client asking for the key now would get it (memory or disk), without counting an access. */
  serves(key: string): boolean;
  /** The key is served although its entry is a tombstone: delete it again (no new version, nothing sent). */
  unserve(key: string): void;
}

/** A key's version: its last change here, or its tombstone. Mutated in place on a new change. */
export class Version {
  constructor(
    public hlc: number,
    public node: number,
    public tomb: boolean,
    /**
     * A tombstone: unix seconds it was made. A live item: its exptime (absolute unix
     * seconds, 0 for never), so that its entry goes when it expires, data dir or not.
     */
    public since: number,
    /** Its key's anti-entropy bucket. */
    readonly bucket: number,
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
  /**
   * Anti-entropy digests: per bucket, the XOR of a 64-bit hash (two halves) of every
   * (key, version, tombstone) it holds, kept up to date on every change; root is the
   * XOR of all buckets. Two tables with the same entries have the same digests.
   */
  readonly digestA = new Uint32Array(AE_BUCKETS);
  readonly digestB = new Uint32Array(AE_BUCKETS);
  rootA = 0;
  rootB = 0;
  /** Entries per bucket: how much a bucket's (key, version) list weighs. */
  readonly counts = new Uint32Array(AE_BUCKETS);
  /** With a data dir: told of every change, so the table survives a restart. */
  sink: VersionSink | null = null;
  private pruning: Iterator<[string, Version]> | null = null;

  /** True when (hlc, node) is later than what the key holds here. */
  isNewer(key: string, hlc: number, node: number): boolean {
    const entry = this.map.get(key);
    if (entry !== undefined) return compareVersions(hlc, node, entry.hlc, entry.node) > 0;
    return compareVersions(hlc, node, this.flushHlc, this.flushNode) > 0;
  }

  /** XORs the entry's hash into (or out of) its bucket's digest; keyA/keyB hold its key's hashes. */
  private toggle(bucket: number, hlc: number, node: number, tomb: boolean): void {
    const lo = hlc % 4294967296;
    const hi = (hlc - lo) / 4294967296;
    const a = fmix32(keyA ^ fmix32(lo ^ fmix32(hi ^ fmix32(node ^ (tomb ? 0x9e3779b9 : 0)))));
    const b = fmix32(keyB ^ fmix32((hi + 0x7f4a7c15) ^ fmix32(lo ^ fmix32(node + (tomb ? 0x632be5ab : 1)))));
    this.digestA[bucket]! ^= a;
    this.digestB[bucket]! ^= b;
    this.rootA = (this.rootA ^ a) >>> 0;
    this.rootB = (this.rootB ^ b) >>> 0;
  }

  private forget(key: string, entry: Version): void {
    hashKey(key);
    this.toggle(entry.bucket, entry.hlc, entry.node, entry.tomb);
    if (entry.tomb) this.tombstones--;
    this.counts[entry.bucket]!--;
    this.map.delete(key);
    this.sink?.remove(key);
  }

  /** Forgets a key's entry (its item is gone): the key is as old as the last flush_all again. */
  drop(key: string): void {
    const entry = this.map.get(key);
    if (entry !== undefined) this.forget(key, entry);
  }

  /** exptime: a live item's (absolute unix seconds, 0 for never). */
  set(key: string, hlc: number, node: number, tomb: boolean, now: number, exptime = 0): void {
    const entry = this.map.get(key);
    hashKey(key);
    if (entry === undefined) {
      const bucket = keyA & (AE_BUCKETS - 1);
      this.map.set(key, new Version(hlc, node, tomb, tomb ? now : exptime, bucket));
      this.toggle(bucket, hlc, node, tomb);
      this.counts[bucket]!++;
      if (tomb) this.tombstones++;
      this.sink?.put(key, hlc, node, tomb, tomb ? now : exptime);
      return;
    }
    this.toggle(entry.bucket, entry.hlc, entry.node, entry.tomb);
    this.toggle(entry.bucket, hlc, node, tomb);
    if (entry.tomb !== tomb) this.tombstones += tomb ? 1 : -1;
    entry.hlc = hlc;
    entry.node = node;
    entry.tomb = tomb;
    entry.since = tomb ? now : exptime;
    this.sink?.put(key, hlc, node, tomb, entry.since);
  }

  get(key: string): Version | undefined {
    return this.map.get(key);
  }

  /** flush_all at (hlc, node): entries older than it are covered by the flush and dropped. */
  flush(hlc: number, node: number): void {
    if (compareVersions(hlc, node, this.flushHlc, this.flushNode) <= 0) return;
    this.flushHlc = hlc;
    this.flushNode = node;
    this.sink?.flushed(hlc, node);
    for (const [key, entry] of this.map) {
      if (compareVersions(entry.hlc, entry.node, hlc, node) < 0) this.forget(key, entry);
    }
  }

  /**
   * A slice of the background prune and audit: drops old tombstones, and entries of
   * live items the node no longer serves (expired, evicted, lost in a crash), so the
   * map does not grow without bound and a peer's version of such a key can win;
   * deletes again an item served under a tombstone. After a pass, every entry says
   * what the node serves: the key live at that version, or deleted.
   */
  prune(now: number, served: ServedKeys, perTick = PRUNE_PER_TICK): void {
    if (this.pruning === null) this.pruning = this.map.entries();
    for (let seen = 0; seen < perTick; seen++) {
      const next = this.pruning.next();
      if (next.done) {
        this.pruning = null;
        return;
      }
      const [key, entry] = next.value;
      if (entry.tomb) {
        if (served.serves(key)) served.unserve(key);
        if (now - entry.since > TOMBSTONE_SECONDS) this.forget(key, entry);
      } else if ((entry.since !== 0 && entry.since <= now) || !served.serves(key)) {
        this.forget(key, entry);
      }
    }
  }
}
