/**
 * Counters shared by the protocols and the store, named as memcached's `stats`
 * names them so that existing tooling reads them unchanged. Plain number fields:
 * incrementing them is the whole cost on the hot path.
 */
export class Counters {
  total_connections = 0;
  rejected_connections = 0;
  curr_connections = 0;

  cmd_get = 0;
  cmd_set = 0;
  cmd_flush = 0;
  cmd_touch = 0;
  /** memcached counts only `me` (its meta debug command) here, not mg/ms/md/ma/mn. */
  cmd_meta = 0;
  get_hits = 0;
  get_misses = 0;
  get_expired = 0;
  get_flushed = 0;
  delete_misses = 0;
  delete_hits = 0;
  incr_misses = 0;
  incr_hits = 0;
  decr_misses = 0;
  decr_hits = 0;
  cas_misses = 0;
  cas_hits = 0;
  cas_badval = 0;
  touch_hits = 0;
  touch_misses = 0;
  auth_cmds = 0;
  auth_errors = 0;

  conn_yields = 0;
  /** -o read_buf_mem_limit: response objects refused, and those held by the batch now running (a gauge). */
  response_obj_oom = 0;
  response_obj_count = 0;
  idle_kicks = 0;

  bytes_read = 0;
  bytes_written = 0;

  store_too_large = 0;
  store_no_memory = 0;
  /** Results of storage commands from every protocol, for metrics (memcached's stats have no such fields). */
  store_stored = 0;
  store_not_stored = 0;
  store_exists = 0;
  store_not_found = 0;

  /** Persistence: items brought back into memory from disk. */
  disk_promotions = 0;

  total_items = 0;
  evictions = 0;
  reclaimed = 0;
  expired_unfetched = 0;
  evicted_unfetched = 0;

  /** Per size class (index = class id): memcached's slab_stats, shown in `stats slabs`. */
  readonly slab = new SlabCounters();

  /** Counts one storage command's result. */
  recordStore(result: 'stored' | 'not_stored' | 'exists' | 'not_found' | 'too_large' | 'no_memory'): void {
    if (result === 'stored') this.store_stored++;
    else if (result === 'not_stored') this.store_not_stored++;
    else if (result === 'exists') this.store_exists++;
    else if (result === 'not_found') this.store_not_found++;
  }

  /** `stats reset`: zero every counter; gauges such as curr_connections stay. */
  reset(): void {
    const current = this.curr_connections;
    const responses = this.response_obj_count;
    Object.assign(this, new Counters());
    this.curr_connections = current;
    this.response_obj_count = responses;
  }
}

/** The upper bound of class ids (size-classes.ts makes at most 62). */
const CLASS_SLOTS = 64;

/** memcached's per-class command counters (slab_stats), indexed by the item's class id. */
export class SlabCounters {
  readonly get_hits = new Float64Array(CLASS_SLOTS);
  readonly cmd_set = new Float64Array(CLASS_SLOTS);
  readonly delete_hits = new Float64Array(CLASS_SLOTS);
  readonly incr_hits = new Float64Array(CLASS_SLOTS);
  readonly decr_hits = new Float64Array(CLASS_SLOTS);
  readonly cas_hits = new Float64Array(CLASS_SLOTS);
  readonly cas_badval = new Float64Array(CLASS_SLOTS);
  readonly touch_hits = new Float64Array(CLASS_SLOTS);
}
