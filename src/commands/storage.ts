import type { ServerContext } from '../server/context.js';
import type { StoreMode, StoreResult } from '../store/store.js';
import { Wire } from './wire.js';

/**
 * Storage commands (set, add, replace, append, prepend, cas; meta ms; binary
 * Set/Add/Replace/Append/Prepend and their quiet forms): what they count, what
 * they log and what they do to the item, for every wire format. A protocol
 * parses, calls these in order, and maps the StoreOutcome to its reply:
 *
 *   valueFits()        -> false: refused as too large (answer, swallow the data)
 *   (data not all here, and no room to wait for it) refuseUnarrivedValue()
 *   valueArrived()     once the data block is complete, before checking its end
 *   storeValue()       -> StoreOutcome
 */

/** What a storage command came to; the protocol turns it into its reply bytes. */
export const StoreOutcome = {
  Stored: 0,
  NotStored: 1,
  Exists: 2,
  NotFound: 3,
  TooLarge: 4,
  NoMemory: 5,
} as const;
export type StoreOutcome = (typeof StoreOutcome)[keyof typeof StoreOutcome];

/**
 * A CAS value turns some modes into compare-and-swap. memcached's meta `ms`
 * upgrades set and replace only (an `ms ... ME C<n>` stays an add); its binary
 * protocol upgrades set, add and replace. append and prepend keep their mode and
 * check the CAS themselves. Text has its own `cas` command and never upgrades.
 */
export function withCas(wire: Wire, mode: StoreMode, hasCas: boolean): StoreMode {
  if (!hasCas) return mode;
  if (mode === 'set' || mode === 'replace') return 'cas';
  if (mode === 'add' && wire === Wire.Binary) return 'cas';
  return mode;
}

/**
 * The first step of every storage command, run each time its line is parsed.
 * Records the set for `stats detail` (text and binary; memcached's meta ms
 * records none). True when the value can ever be stored (memcached's -I). When it cannot, the
 * command is refused here: counted (store_too_large, except binary: memcached's
 * process_bin_update leaves that counter alone), logged (text only, as
 * memcached's process_update_command is the one that logs it), and the old
 * value is deleted so that a failed store does not leave stale data behind —
 * for a set in text and binary, for every mode in meta (memcached's
 * process_mset_command unlinks whatever the mode).
 */
export function valueFits(
  ctx: ServerContext, wire: Wire, mode: StoreMode,
  key: Buffer, keyStart: number, keyEnd: number,
  valueLength: number, flags: number, connectionId: number,
): boolean {
  const store = ctx.store;
  if (wire !== Wire.Meta && ctx.prefixStats.enabled) ctx.prefixStats.recordSet(key, keyStart, keyEnd);
  if (store.fits(keyEnd - keyStart, valueLength, flags)) return true;
  if (wire !== Wire.Binary) ctx.counters.store_too_large++;
  if (wire === Wire.Text && ctx.logStream.mutations) {
    ctx.logStream.stored(key, keyStart, keyEnd, 'too_large', mode, null, 0, connectionId, 0);
  }
  if (mode === 'set' || wire === Wire.Meta) store.delete(key, keyStart, keyEnd);
  return false;
}

/**
 * The partial-value refusal: the data block has not all arrived and there is
 * no room left to wait for it (partial-values.ts). memcached refuses a store it
 * cannot allocate an item for, so Mnemo answers as it does: out of memory,
 * counted as store_no_memory in text and meta (binary's process_bin_update does
 * not count it), and the old value deleted as for a too-large one.
 */
export function refuseUnarrivedValue(ctx: ServerContext, wire: Wire, mode: StoreMode, key: Buffer, keyStart: number, keyEnd: number): void {
  if (wire !== Wire.Binary) ctx.counters.store_no_memory++;
  if (mode === 'set' || wire === Wire.Meta) ctx.store.delete(key, keyStart, keyEnd);
}

/** The data block is complete: memcached counts the set here, even when its terminator then turns out bad. */
export function valueArrived(ctx: ServerContext): void {
  ctx.counters.cmd_set++;
}

/**
 * Stores data[dataStart, dataEnd) under the key and counts the result: the
 * store_* counters, and cas_hits/cas_badval/cas_misses for a 'cas' mode. A
 * store the store itself refuses for size (possible only if fits() and the
 * store disagree) counts store_too_large in text only, and one refused for
 * memory counts store_no_memory in every protocol.
 */
export function storeValue(
  ctx: ServerContext, wire: Wire, mode: StoreMode,
  key: Buffer, keyStart: number, keyEnd: number,
  data: Buffer, dataStart: number, dataEnd: number,
  flags: number, exptime: number, casUnique: number, options: number, connectionId: number,
): StoreOutcome {
  const { store, counters } = ctx;
  const log = ctx.logStream;
  if (log.fetchers) log.fetched(key, keyStart, keyEnd, store.peek(key, keyStart, keyEnd), connectionId);
  const result = store.store(mode, key, keyStart, keyEnd, data, dataStart, dataEnd, flags, exptime, casUnique, options);
  counters.recordStore(result);
  if (log.mutations) {
    log.stored(key, keyStart, keyEnd, result, mode, store.peek(key, keyStart, keyEnd), ctx.clock.now, connectionId, dataEnd - dataStart);
  }
  const outcome = outcomeOf(result);
  // memcached counts a set in the class of the item its value arrived in (append and prepend: the added bytes).
  const sizeClass = store.sizeClassOf(keyEnd - keyStart, dataEnd - dataStart, flags);
  if (sizeClass !== 0) counters.slab.cmd_set[sizeClass]!++;
  if (mode === 'cas') {
    // In the class of the item compared against, as memcached's do_store_item.
    if (outcome === StoreOutcome.Stored) {
      counters.cas_hits++;
      counters.slab.cas_hits[store.lastClass]!++;
    } else if (outcome === StoreOutcome.Exists) {
      counters.cas_badval++;
      counters.slab.cas_badval[store.lastClass]!++;
    } else if (outcome === StoreOutcome.NotFound) counters.cas_misses++;
  }
  if (outcome === StoreOutcome.NoMemory) counters.store_no_memory++;
  else if (outcome === StoreOutcome.TooLarge && wire === Wire.Text) counters.store_too_large++;
  return outcome;
}

function outcomeOf(result: StoreResult): StoreOutcome {
  switch (result) {
    case 'stored':
      return StoreOutcome.Stored;
    case 'not_stored':
      return StoreOutcome.NotStored;
    case 'exists':
      return StoreOutcome.Exists;
    case 'not_found':
      return StoreOutcome.NotFound;
    case 'too_large':
      return StoreOutcome.TooLarge;
    default:
      return StoreOutcome.NoMemory;
  }
}
