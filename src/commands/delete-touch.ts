import type { ServerContext } from '../server/context.js';
import { changesRefused } from './refusal.js';
import { Wire } from './wire.js';

/**
 * delete (text, binary Delete, meta md), touch (text) and flush_all (text,
 * binary Flush): what they count and do, for every wire format. Each answers a
 * small number; the protocol maps it to its reply bytes.
 */

export const DeleteOutcome = {
  Deleted: 0,
  NotFound: 1,
  /** A CAS was given and the item's differs. */
  Exists: 2,
  /** The full-disk refusal (refusal.ts). */
  Refused: 3,
} as const;
export type DeleteOutcome = (typeof DeleteOutcome)[keyof typeof DeleteOutcome];

/**
 * Deletes the key, or with meta `md … I` marks the item stale instead (after
 * `T`, when given, sets its new TTL). A CAS is checked when `checkCas`: binary
 * checks a CAS other than 0, meta any `C` token (so `C0` never matches).
 *
 * Counting, as memcached: a miss is a delete_miss; a CAS mismatch is one too in
 * meta but counts nothing in binary (process_bin_delete); an invalidation is
 * not a delete hit. Text and binary record prefix stats (stats detail), meta
 * does not.
 */
export function deleteItem(
  ctx: ServerContext, wire: Wire, key: Buffer, keyStart: number, keyEnd: number,
  checkCas: boolean, cas: number, invalidate: boolean, newTtl: boolean, ttl: number,
): DeleteOutcome {
  const { store, counters } = ctx;
  if (wire !== Wire.Meta && ctx.prefixStats.enabled) ctx.prefixStats.recordDelete(key, keyStart, keyEnd);
  if (changesRefused(store)) return DeleteOutcome.Refused;
  if (!checkCas && !invalidate) {
    if (store.delete(key, keyStart, keyEnd)) {
      counters.delete_hits++;
      counters.slab.delete_hits[store.lastClass]!++;
      return DeleteOutcome.Deleted;
    }
    counters.delete_misses++;
    return DeleteOutcome.NotFound;
  }
  const item = store.peek(key, keyStart, keyEnd);
  if (item === null) {
    counters.delete_misses++;
    return DeleteOutcome.NotFound;
  }
  if (checkCas && item.cas !== cas) {
    if (wire === Wire.Meta) counters.delete_misses++;
    return DeleteOutcome.Exists;
  }
  if (invalidate) {
    if (newTtl) store.setExptime(item, ttl);
    store.invalidate(item);
    return DeleteOutcome.Deleted;
  }
  counters.delete_hits++;
  counters.slab.delete_hits[item.sizeClass]!++;
  store.delete(key, keyStart, keyEnd);
  return DeleteOutcome.Deleted;
}

export const TouchOutcome = {
  Touched: 0,
  NotFound: 1,
  /** The full-disk refusal (refusal.ts). */
  Refused: 2,
} as const;
export type TouchOutcome = (typeof TouchOutcome)[keyof typeof TouchOutcome];

/**
 * Text `touch <key> <exptime>`: a new expiry, counted as a touch hit or miss.
 * (binary Touch is a get-and-touch without the value: retrieval.ts fetchItem;
 * meta touches with mg T.) A refused touch counts nothing. Unlike a binary
 * Touch, it records no prefix stats: memcached's process_touch_command has no
 * stats_prefix_record call, process_bin_get_or_touch does.
 */
export function touchItem(ctx: ServerContext, key: Buffer, keyStart: number, keyEnd: number, exptime: number): TouchOutcome {
  const { store, counters } = ctx;
  if (changesRefused(store)) return TouchOutcome.Refused;
  counters.cmd_touch++;
  const item = store.getAndTouch(key, keyStart, keyEnd, exptime);
  if (item !== null) {
    counters.touch_hits++;
    counters.slab.touch_hits[item.sizeClass]!++;
    return TouchOutcome.Touched;
  }
  counters.touch_misses++;
  return TouchOutcome.NotFound;
}

export const FlushOutcome = {
  Flushed: 0,
  /** flush_all is disabled (-F). */
  NotAllowed: 1,
  /** The full-disk refusal (refusal.ts). */
  Refused: 2,
} as const;
export type FlushOutcome = (typeof FlushOutcome)[keyof typeof FlushOutcome];

/**
 * Checks whether flush_all may run, counting cmd_flush as memcached does: text
 * counts every flush_all that parses, even one -F refuses
 * (process_flush_all_command counts first), while binary counts only a flush
 * it carries out (process_bin_flush counts last). The text protocol calls this
 * before parsing the delay, as memcached checks -F first; then flush() does it.
 */
export function mayFlush(ctx: ServerContext, wire: Wire): FlushOutcome {
  if (wire === Wire.Text) ctx.counters.cmd_flush++;
  if (!ctx.config.flushEnabled) return FlushOutcome.NotAllowed;
  return FlushOutcome.Flushed;
}

/** Invalidates every item now (delay 0) or at the protocol's exptime `delay`, after mayFlush(). */
export function flush(ctx: ServerContext, wire: Wire, delay: number): FlushOutcome {
  if (changesRefused(ctx.store)) return FlushOutcome.Refused;
  ctx.store.flushAll(delay);
  if (wire === Wire.Binary) ctx.counters.cmd_flush++;
  return FlushOutcome.Flushed;
}
