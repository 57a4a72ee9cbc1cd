import type { Config } from '../config/config.js';

/**
 * Bounds the memory that values still arriving hold, across all connections.
 *
 * memcached reads a value straight into the item it allocates from -m before
 * reading it (item_alloc in process_update_command), so unfinished sets can never
 * hold more than the cache has; a set it cannot allocate for is answered with
 * "SERVER_ERROR out of memory storing object" and its data block swallowed.
 * Mnemo gathers a value in the connection's buffers and copies it into the store
 * once it is complete, so without a bound 200 clients each sending 900 KB of a
 * 1 MB set held 200 MB however small -m was. Instead each connection reserves
 * the whole data block here when it starts waiting for it, and a value that
 * would take the total past the limit is refused the way memcached refuses one
 * it cannot allocate.
 */
export class PartialValueBudget {
  /** Bytes reserved by data blocks still arriving, on all connections. */
  reserved = 0;

  /** Bytes that data blocks still arriving may reserve in all. */
  constructor(public limit: number) {}

  /** Reserves bytes; false, reserving nothing, when that would pass the limit. */
  take(bytes: number): boolean {
    if (this.reserved + bytes > this.limit) return false;
    this.reserved += bytes;
    return true;
  }

  give(bytes: number): void {
    this.reserved -= bytes;
  }
}

/**
 * The default limit: as much again as -m. The store never holds more than -m,
 * so the process stays under about twice -m plus Node's own baseline whatever
 * clients leave unfinished, where memcached stays under -m (its unfinished
 * values live inside -m). Since -I may not exceed half of -m, two values of the
 * largest size can always arrive at once. memcached's `-o read_buf_mem_limit`
 * (megabytes for connection buffers) is the option meant to set this.
 */
export function partialValueLimit(config: Config): number {
  return config.memoryLimit;
}

/**
 * What one connection has reserved: the data block it waits for, if any. The
 * protocol holds a reservation while a value is incomplete and releases it once
 * the value is there; the connection releases it when it closes.
 */
export class ValueReservation {
  private held = 0;

  constructor(private readonly budget: PartialValueBudget) {}

  /**
   * Holds room for a data block of this many bytes that has not fully arrived.
   * The same incomplete command parsed again keeps what it holds. False: there
   * is no room, and the value must be refused.
   */
  hold(bytes: number): boolean {
    if (bytes === this.held) return true;
    this.release();
    if (!this.budget.take(bytes)) return false;
    this.held = bytes;
    return true;
  }

  release(): void {
    if (this.held === 0) return;
    this.budget.give(this.held);
    this.held = 0;
  }
}
