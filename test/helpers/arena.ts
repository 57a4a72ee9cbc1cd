import type { SlabArena } from '../../src/store/slabs/arena.js';

/** allocate + write + link, replacing any item with the key; the ref, or the allocation failure. */
export function arenaSet(arena: SlabArena, key: Buffer, value: Buffer, flags = 0, exptime = 0): number {
  const ref = arena.allocate(key.length, value.length, flags, exptime);
  if (ref <= 0) return ref;
  arena.writeKey(ref, key, 0, key.length);
  arena.writeValue(ref, 0, value, 0, value.length);
  // found after allocating: the allocation may have evicted the old item
  const old = arena.find(key, 0, key.length);
  if (old !== 0) arena.replace(old, ref);
  else arena.link(ref);
  return ref;
}
