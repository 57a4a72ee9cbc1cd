import type { Store } from '../store/store.js';

/**
 * The full-disk refusal. While the tier below the store refuses writes (a full
 * disk under --data-dir), every command that would change an item is refused
 * before it looks at the item: a delete, touch or flush that the disk cannot
 * keep would be undone by a restart. store() and applyDelta() refuse on their
 * own (they answer 'no_memory'); delete, touch, gat, meta T/N and flush_all ask
 * here. Each protocol answers with its out-of-memory reply. A refused change
 * counts no hit or miss: a refused store counts cmd_set and store_no_memory as
 * any store without memory does, a text flush_all its cmd_flush (counted before
 * any check, as memcached does), and the rest nothing.
 */
export function changesRefused(store: Store): boolean {
  return !store.writable;
}
