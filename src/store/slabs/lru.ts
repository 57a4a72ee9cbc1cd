import { H_LRU_NEXT, H_LRU_PREV } from './layout.js';
import { CLASS_SLOTS, type SlabPages } from './pages.js';

/**
 * One LRU list per class, as memcached's items.c without its hot/warm/cold
 * segments: items are linked at the head when stored or bumped, and eviction
 * takes from the tail. prev points toward the head (newer), next toward the
 * tail (older), through the item header's LRU fields.
 */
export class ClassLru {
  readonly head = new Uint32Array(new SharedArrayBuffer(CLASS_SLOTS * 4));
  readonly tail = new Uint32Array(new SharedArrayBuffer(CLASS_SLOTS * 4));
  /** memcached's items:<id>:number. */
  readonly count = new Uint32Array(new SharedArrayBuffer(CLASS_SLOTS * 4));

  constructor(private readonly pages: SlabPages) {}

  linkAtHead(id: number, ref: number): void {
    const head = this.head[id]!;
    this.set(ref, H_LRU_PREV, 0);
    this.set(ref, H_LRU_NEXT, head);
    if (head !== 0) this.set(head, H_LRU_PREV, ref);
    else this.tail[id] = ref;
    this.head[id] = ref;
    this.count[id]!++;
  }

  unlink(id: number, ref: number): void {
    const prev = this.get(ref, H_LRU_PREV);
    const next = this.get(ref, H_LRU_NEXT);
    if (prev !== 0) this.set(prev, H_LRU_NEXT, next);
    else this.head[id] = next;
    if (next !== 0) this.set(next, H_LRU_PREV, prev);
    else this.tail[id] = prev;
    this.set(ref, H_LRU_PREV, 0);
    this.set(ref, H_LRU_NEXT, 0);
    this.count[id]!--;
  }

  moveToHead(id: number, ref: number): void {
    if (this.head[id] === ref) return;
    this.unlink(id, ref);
    this.linkAtHead(id, ref);
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
