/**
 * memcached's slab size classes (slabs_init): chunk sizes growing by -f from a
 * 48-byte header plus -n, aligned to 8, up to half of -I, then one class of that
 * size. The slab arena (slabs/) carves -m into 1 MiB pages of these classes, so
 * `stats items`, `stats slabs` and tools built on them (memcdump, memcached-tool)
 * read the same shape as from memcached.
 */
const ITEM_HEADER = 48;
const PAGE_SIZE = 1024 * 1024;
const MAX_CLASSES = 63;

export class SizeClasses {
  /** Chunk size per class; index 0 is unused, as class ids start at 1. */
  readonly chunkSizes: number[] = [0];

  constructor(growthFactor: number, minSize: number, maxItemSize: number) {
    const chunkMax = Math.floor(maxItemSize / 2);
    let size = ITEM_HEADER + minSize;
    while (this.chunkSizes.length < MAX_CLASSES - 1 && size < chunkMax / growthFactor) {
      if (size % 8 !== 0) size += 8 - (size % 8);
      this.chunkSizes.push(size);
      size = Math.floor(size * growthFactor);
    }
    this.chunkSizes.push(chunkMax);
  }

  get largest(): number {
    return this.chunkSizes.length - 1;
  }

  /** The class an item of this many bytes is filed under (items past the largest chunk use it, chunked). */
  classOf(size: number): number {
    const sizes = this.chunkSizes;
    let low = 1;
    let high = sizes.length - 1;
    if (size >= sizes[high]!) return high;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (sizes[middle]! >= size) high = middle;
      else low = middle + 1;
    }
    return low;
  }

  perPage(id: number): number {
    return Math.max(1, Math.floor(PAGE_SIZE / this.chunkSizes[id]!));
  }
}
