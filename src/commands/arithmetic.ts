import type { ServerContext } from '../server/context.js';
import { STORE_BINARY_KEY } from '../store/store.js';

/**
 * incr/decr (text), binary Increment/Decrement (and quiet forms), meta ma: the
 * delta, the auto-create of a missing counter, and what each counts.
 */

export const DeltaOutcome = {
  /** The counter changed; its new value is in deltaValue. */
  Changed: 0,
  /** The counter was missing and was created with the initial value (deltaValue). */
  Created: 1,
  NotFound: 2,
  NonNumeric: 3,
  /** A CAS was given and the item's differs. */
  Exists: 4,
  NoMemory: 5,
  /** Auto-create lost a race: an item appeared under the key (meta NS, binary "Not stored"). */
  CreateNotStored: 6,
  /** Auto-create found no memory (or the disk refuses writes). */
  CreateNoMemory: 7,
} as const;
export type DeltaOutcome = (typeof DeltaOutcome)[keyof typeof DeltaOutcome];

/**
 * The value of the last Changed or Created outcome. One slot for the process,
 * read by the protocol right after applyDelta(): a result object per request is
 * what this avoids.
 */
export const deltaResult = { value: 0n };

/**
 * Adds or subtracts delta. When the counter is missing and `create` is set
 * (binary with an expiration other than 0xffffffff, meta `N`), it is created
 * holding `initial`, with `exptime` and as a binary key when `binaryKey`.
 *
 * Counting, as memcached: a change is an incr/decr hit; a miss that is not
 * auto-created an incr/decr miss; an auto-create neither (memcached counts
 * nothing for the miss that led to it, in binary and meta alike).
 */
export function applyDelta(
  ctx: ServerContext, key: Buffer, keyStart: number, keyEnd: number,
  delta: bigint, incr: boolean, casUnique: number,
  create: boolean, initial: bigint, exptime: number, binaryKey: boolean,
): DeltaOutcome {
  const { store, counters } = ctx;
  const result = store.applyDelta(key, keyStart, keyEnd, delta, incr, casUnique);
  if (typeof result === 'bigint') {
    if (incr) {
      counters.incr_hits++;
      counters.slab.incr_hits[store.lastClass]!++;
    } else {
      counters.decr_hits++;
      counters.slab.decr_hits[store.lastClass]!++;
    }
    deltaResult.value = result;
    return DeltaOutcome.Changed;
  }
  switch (result) {
    case 'not_found':
      break;
    case 'non_numeric':
      return DeltaOutcome.NonNumeric;
    case 'exists':
      return DeltaOutcome.Exists;
    default:
      return DeltaOutcome.NoMemory;
  }
  if (!create) {
    if (incr) counters.incr_misses++;
    else counters.decr_misses++;
    return DeltaOutcome.NotFound;
  }
  // Rare (a missing counter asked to be created): the digits are made here.
  const digits = Buffer.from(initial.toString(), 'latin1');
  const stored = store.store('add', key, keyStart, keyEnd, digits, 0, digits.length, 0, exptime, 0, binaryKey ? STORE_BINARY_KEY : 0);
  if (stored === 'stored') {
    deltaResult.value = initial;
    return DeltaOutcome.Created;
  }
  return stored === 'no_memory' ? DeltaOutcome.CreateNoMemory : DeltaOutcome.CreateNotStored;
}
