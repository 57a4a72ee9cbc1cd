import type { ServerContext } from '../server/context.js';
import type { Counters } from '../observe/stats.js';
import type { ItemView } from '../store/store.js';

/**
 * Retrieval commands: get/gets/bget, gat/gats and touch in text; Get/GetK/Touch/
 * Gat/GatK (and quiet forms) in binary; meta mg. What each lookup counts, logs
 * and records for prefix stats.
 */

/**
 * One key of a get or a get-and-touch (text and binary): looks it up, touching
 * it to the protocol's exptime when `touch`, and counts it as a get or as a
 * touch, hit or miss. The caller has already asked changesRefused() for a touch.
 * The item is the store's own view, valid until the next store call.
 */
export function fetchItem(
  ctx: ServerContext, key: Buffer, keyStart: number, keyEnd: number,
  touch: boolean, exptime: number, connectionId: number,
): ItemView | null {
  const { store, counters } = ctx;
  const item = touch ? store.getAndTouch(key, keyStart, keyEnd, exptime) : store.get(key, keyStart, keyEnd);
  if (ctx.prefixStats.enabled) ctx.prefixStats.recordGet(key, keyStart, keyEnd, item !== null);
  if (ctx.logStream.fetchers) ctx.logStream.fetched(key, keyStart, keyEnd, item, connectionId);
  if (touch) {
    counters.cmd_touch++;
    if (item === null) counters.touch_misses++;
    else {
      counters.touch_hits++;
      counters.slab.touch_hits[item.sizeClass]!++;
    }
  } else {
    counters.cmd_get++;
    if (item === null) counters.get_misses++;
    else {
      counters.get_hits++;
      counters.slab.get_hits[item.sizeClass]!++;
    }
  }
  return item;
}

/**
 * Counts a meta `mg`. Differs from text and binary on purpose, as memcached's
 * process_mget_command does: an `mg` with T counts as a touch only when it
 * hits; a miss counts as a get miss even with T. mg records no prefix stats.
 */
export function countMetaGet(counters: Counters, item: ItemView | null, touched: boolean): void {
  if (item === null) {
    counters.cmd_get++;
    counters.get_misses++;
  } else if (touched) {
    counters.cmd_touch++;
    counters.touch_hits++;
    counters.slab.touch_hits[item.sizeClass]!++;
  } else {
    counters.cmd_get++;
    counters.get_hits++;
    counters.slab.get_hits[item.sizeClass]!++;
  }
}
