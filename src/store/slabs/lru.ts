import { H_LRU_NEXT, H_LRU_PREV } from './layout.js';
import { CLASS_SLOTS, type SlabPages } from './pages.js';

/**
 * memcached's LRU ids: a class id | its segment. New items go to HOT (or TEMP
 * for short TTLs), the maintainer moves them on to WARM or COLD, eviction takes
 * from COLD. In flat mode (`lru mode flat`, -o no_lru_maintainer) every item
 * lives in COLD, as memcached's compat mode.
 */
export const HOT_LRU = 0;
export const WARM_LRU = 64;
export const COLD_LRU = 128;
export const TEMP_LRU = 192;
/** Class bits of an LRU id. */
export const CLASS_MASK = 63;
export const LRU_IDS = 4 * CLASS_SLOTS;

/**
 * The LRU lists, one per LRU id (class | segment), as memcached's items.c:
 * items are linked at the head, taken from the tail. prev points toward the
 * head (newer), next toward the tail (older), through the item header's LRU
 * fields. `bytes` is memcached's sizes_bytes: what the items in each list are
 * charged, which the maintainer sizes the segments by.
 */
export class SegmentedLru {
  readonly head = new Uint32Array(new SharedArrayBuffer(LRU_IDS * 4));
  readonly tail = new Uint32Array(new SharedArrayBuffer(LRU_IDS * 4));
  /** memcached's sizes[]: items per LRU id. */
  readonly count = new Uint32Array(new SharedArrayBuffer(LRU_IDS * 4));
  readonly bytes = new Float64Array(new SharedArrayBuffer(LRU_IDS * 8));

  constructor(private readonly pages: SlabPages) {}

  linkAtHead(id: number, ref: number, total: number): void {
    const head = this.head[id]!;
    this.set(ref, H_LRU_PREV, 0);
    this.set(ref, H_LRU_NEXT, head);
    if (head !== 0) this.set(head, H_LRU_PREV, ref);
    else this.tail[id] = ref;
    this.head[id] = ref;
    this.count[id]!++;
    this.bytes[id]! += total;
  }

  unlink(id: number, ref: number, total: number): void {
    const prev = this.get(ref, H_LRU_PREV);
    const next = this.get(ref, H_LRU_NEXT);
    if (prev !== 0) this.set(prev, H_LRU_NEXT, next);
    else this.head[id] = next;
    if (next !== 0) this.set(next, H_LRU_PREV, prev);
    else this.tail[id] = prev;
    this.set(ref, H_LRU_PREV, 0);
    this.set(ref, H_LRU_NEXT, 0);
    this.count[id]!--;
    this.bytes[id]! -= total;
  }

  /** Items of a class over its four segments (memcached's items:<id>:number). */
  classCount(classId: number): number {
    const count = this.count;
    return count[classId | HOT_LRU]! + count[classId | WARM_LRU]! + count[classId | COLD_LRU]! + count[classId | TEMP_LRU]!;
  }

  /** The next older item, or 0 at the tail. */
  older(ref: number): number {
    return this.get(ref, H_LRU_NEXT);
  }

  /** The next newer item, or 0 at the head. */
  newer(ref: number): number {
    return this.get(ref, H_LRU_PREV);
  }

  private get(ref: number, field: number): number {
    const page = (ref >>> 16) - 1;
    return this.pages.words[page]![(((ref & 0xffff) * this.pages.pageChunkSize[page]!) >>> 2) + field]!;
  }

  private set(ref: number, field: number, value: number): void {
    const page = (ref >>> 16) - 1;
    this.pages.words[page]![(((ref & 0xffff) * this.pages.pageChunkSize[page]!) >>> 2) + field] = value;
  }
}
