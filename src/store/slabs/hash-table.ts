import { H_HASH, H_HASH_NEXT, H_META, H_VALUE_LENGTH, ITEM_CHUNKED, KEY_OFFSET } from './layout.js';
import type { SlabPages } from './pages.js';
import { scalarField, type StateArray, type StateEntry } from './state.js';

/** memcached's HASHPOWER_DEFAULT. */
export const DEFAULT_HASH_POWER = 16;
/** A Uint32Array of 2^28 buckets is 1 GiB: the table stops doubling there. */
export const MAX_HASH_POWER = 28;
/** Old buckets moved per insert while the table doubles (memcached's hash_bulk_move is 1, but it has a thread for it). */
const BUCKETS_MOVED_PER_INSERT = 4;
/** Keys one prefetch call reads ahead at most. */
export const PREFETCH_MAX = 32;
/** Chain items prefetch reads per key at most (the table holds up to 1.5 items per bucket). */
const PREFETCH_DEPTH = 2;
/** prefetch's next item of each chain: scratch, not state (calls never interleave). */
const prefetchNext = new Uint32Array(PREFETCH_MAX);

/**
 * The hash table over key bytes, as memcached's assoc.c: buckets are chunk refs
 * of the first item in a chain linked through the header's hash-next field.
 * When it holds more than 1.5 items per bucket it doubles, moving a few old
 * buckets into the new table per insert (and on expandStep, for a timer to
 * call), so no request waits for a whole rehash. While it expands, an old
 * bucket below `expandBucket` has already moved: its keys are in the new table.
 *
 * The key hash is kept in the header, so moving buckets does not rehash keys and
 * a chain walk compares key bytes only when the hashes match.
 */
export class HashTable {
  hashPower: number;
  /** The table lookups use (for buckets already moved while expanding). */
  private primary: Uint32Array;
  /** The half-size table being emptied into primary, while expanding. */
  private old: Uint32Array | null = null;
  private expandBucket = 0;
  count = 0;

  constructor(
    private readonly pages: SlabPages,
    hashPower = DEFAULT_HASH_POWER,
  ) {
    if (!Number.isInteger(hashPower) || hashPower < 1 || hashPower > MAX_HASH_POWER) {
      throw new RangeError(`hash power must be an integer from 1 to ${MAX_HASH_POWER}`);
    }
    this.hashPower = hashPower;
    this.primary = newTable(hashPower);
  }

  get isExpanding(): boolean {
    return this.old !== null;
  }

  /** Bytes of bucket tables in use (both while expanding). */
  get hashBytes(): number {
    return this.primary.length * 4 + (this.old === null ? 0 : this.old.length * 4);
  }

  /** The item whose key equals key[start, end), or 0. */
  find(key: Uint8Array, start: number, end: number, hash: number): number {
    const pages = this.pages;
    const length = end - start;
    let ref = this.bucketHead(hash);
    while (ref !== 0) {
      const page = (ref >>> 16) - 1;
      const base = (ref & 0xffff) * pages.pageChunkSize[page]!;
      const words = pages.words[page]!;
      const field = base >>> 2;
      if (words[field + H_HASH] === hash && (words[field + H_META]! & 0xff) === length) {
        const bytes = pages.bytes[page]!;
        let at = base + KEY_OFFSET;
        let i = start;
        while (i < end && bytes[at] === key[i]) {
          at++;
          i++;
        }
        if (i === end) return ref;
      }
      ref = words[field + H_HASH_NEXT]!;
    }
    return 0;
  }

  /**
   * Reads, for each of hashes[0, count), its bucket and the chain up to the
   * item of that hash (two items deep at most): header, key and value, changing
   * nothing: see SlabArena.prefetch. Each pass reads one step of every chain, so
   * the reads of a pass do not wait on each other and the CPU has their cache
   * misses in flight side by side. Returns a number made of what was read only
   * so the compiler keeps the reads.
   */
  prefetch(hashes: Uint32Array, count: number): number {
    const next = prefetchNext;
    for (let i = 0; i < count; i++) next[i] = this.bucketHead(hashes[i]!);
    const pages = this.pages;
    let seen = 0;
    for (let pass = 0; pass < PREFETCH_DEPTH; pass++) {
      for (let i = 0; i < count; i++) {
        const ref = next[i]!;
        if (ref === 0) continue;
        const page = (ref >>> 16) - 1;
        const words = pages.words[page]!;
        const field = ((ref & 0xffff) * pages.pageChunkSize[page]!) >>> 2;
        if (words[field + H_HASH] === hashes[i]) {
          // The find compares the key and the reply copies the value: their last
          // bytes, past the header's cache line (a long value streams anyway).
          const meta = words[field + H_META]!;
          const bytes = pages.bytes[page]!;
          const keyEnd = (field << 2) + KEY_OFFSET + (meta & 0xff);
          seen ^= bytes[keyEnd - 1]!;
          if (((meta >>> 16) & ITEM_CHUNKED) === 0) seen ^= bytes[keyEnd + Math.min(words[field + H_VALUE_LENGTH]!, 256) - 1]!;
          next[i] = 0;
        } else {
          next[i] = words[field + H_HASH_NEXT]!;
        }
      }
    }
    return seen;
  }

  /** Links an item (its H_HASH set) at the head of its bucket's chain. */
  insert(ref: number): void {
    const hash = this.hashOf(ref);
    const table = this.tableFor(hash);
    const bucket = this.bucketIndex(table, hash);
    this.setHashNext(ref, table[bucket]!);
    table[bucket] = ref;
    this.count++;
    if (this.old !== null) this.expandStep(BUCKETS_MOVED_PER_INSERT);
    else if (this.count > (this.primary.length * 3) / 2 && this.hashPower < MAX_HASH_POWER) this.startExpanding();
  }

  /** Unlinks an item from its chain; false when it was not in the table. */
  remove(ref: number): boolean {
    const hash = this.hashOf(ref);
    const table = this.tableFor(hash);
    const bucket = this.bucketIndex(table, hash);
    let current = table[bucket]!;
    if (current === ref) {
      table[bucket] = this.hashNext(ref);
      this.count--;
      return true;
    }
    while (current !== 0) {
      const next = this.hashNext(current);
      if (next === ref) {
        this.setHashNext(current, this.hashNext(ref));
        this.count--;
        return true;
      }
      current = next;
    }
    return false;
  }

  /** Moves up to `buckets` old buckets into the new table; returns whether expansion goes on. */
  expandStep(buckets: number): boolean {
    const old = this.old;
    if (old === null) return false;
    const primary = this.primary;
    const mask = primary.length - 1;
    for (let moved = 0; moved < buckets && this.expandBucket < old.length; moved++) {
      let ref = old[this.expandBucket]!;
      while (ref !== 0) {
        const next = this.hashNext(ref);
        const bucket = this.hashOf(ref) & mask;
        this.setHashNext(ref, primary[bucket]!);
        primary[bucket] = ref;
        ref = next;
      }
      old[this.expandBucket] = 0;
      this.expandBucket++;
    }
    if (this.expandBucket >= old.length) {
      this.old = null;
      this.expandBucket = 0;
      return false;
    }
    return true;
  }

  /** The tables, their size and how far a doubling got, for a warm restart (state.ts). */
  stateEntries(): StateEntry[] {
    const table = (name: string, get: () => Uint32Array | null, set: (array: Uint32Array | null) => void): StateEntry => ({
      kind: 'table',
      name,
      create: (length) => new Uint32Array(new SharedArrayBuffer(length * 4)),
      get,
      set: (array: StateArray | null) => set(array as Uint32Array | null),
    });
    return [
      scalarField('hash.hashPower', this, 'hashPower'),
      scalarField('hash.count', this, 'count'),
      { kind: 'scalar', name: 'hash.expandBucket', get: () => this.expandBucket, set: (value) => (this.expandBucket = value) },
      table('hash.primary', () => this.primary, (array) => {
        if (array === null || array.length !== 2 ** this.hashPower) throw new RangeError('hash table: primary table of the wrong size');
        this.primary = array;
      }),
      table('hash.old', () => this.old, (array) => {
        if (array !== null && array.length * 2 !== this.primary.length) throw new RangeError('hash table: old table of the wrong size');
        this.old = array;
      }),
    ];
  }

  private startExpanding(): void {
    this.old = this.primary;
    this.hashPower++;
    this.primary = newTable(this.hashPower);
    this.expandBucket = 0;
  }

  private bucketHead(hash: number): number {
    const table = this.tableFor(hash);
    return table[this.bucketIndex(table, hash)]!;
  }

  private tableFor(hash: number): Uint32Array {
    const old = this.old;
    if (old !== null && (hash & (old.length - 1)) >= this.expandBucket) return old;
    return this.primary;
  }

  private bucketIndex(table: Uint32Array, hash: number): number {
    return hash & (table.length - 1);
  }

  private hashOf(ref: number): number {
    const page = (ref >>> 16) - 1;
    return this.pages.words[page]![(((ref & 0xffff) * this.pages.pageChunkSize[page]!) >>> 2) + H_HASH]!;
  }

  private hashNext(ref: number): number {
    const page = (ref >>> 16) - 1;
    return this.pages.words[page]![(((ref & 0xffff) * this.pages.pageChunkSize[page]!) >>> 2) + H_HASH_NEXT]!;
  }

  private setHashNext(ref: number, next: number): void {
    const page = (ref >>> 16) - 1;
    this.pages.words[page]![(((ref & 0xffff) * this.pages.pageChunkSize[page]!) >>> 2) + H_HASH_NEXT] = next;
  }
}

function newTable(hashPower: number): Uint32Array {
  return new Uint32Array(new SharedArrayBuffer(4 * 2 ** hashPower));
}
