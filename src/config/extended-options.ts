import { SizeClasses } from '../store/size-classes.js';
import { MAX_HASH_POWER } from '../store/slabs/hash-table.js';
import { ConfigError, type Config } from './config.js';

/** memcached 1.6.18's slab_page_size: fixed (no option sets it). */
export const SLAB_PAGE_SIZE = 1024 * 1024;

/**
 * memcached's -o suboptions. Those that mean something in Mnemo are applied; the
 * ones that tune memcached's internals (slabs, LRU threads, hash table, extstore,
 * TLS buffers) are accepted so existing start scripts keep working, and shown in
 * `stats settings`. Anything else is refused, as memcached refuses it.
 */
/** bare: no value (memcached ignores one if given); optional: bare or with a number. */
type Kind = 'bare' | 'optional' | 'int' | 'float' | 'text';

const SUBOPTIONS: Record<string, Kind> = {
  // Applied by Mnemo.
  idle_timeout: 'int',
  track_sizes: 'bare',
  lru_crawler: 'bare',
  no_lru_crawler: 'bare',
  lru_crawler_sleep: 'int',
  lru_crawler_tocrawl: 'int',
  // The slab store's segmented LRU (applyLruOption); no_modern below turns it flat.
  lru_maintainer: 'bare',
  no_lru_maintainer: 'bare',
  hot_lru_pct: 'int',
  warm_lru_pct: 'int',
  hot_max_factor: 'float',
  warm_max_factor: 'float',
  temporary_ttl: 'int',
  hashpower: 'int',
  slab_chunk_max: 'int',
  no_chunked_items: 'bare',
  // Accepted: memcached internals with no counterpart here.
  maxconns_fast: 'bare',
  no_maxconns_fast: 'bare',
  tail_repair_time: 'int',
  hash_algorithm: 'text',
  read_buf_mem_limit: 'int',
  resp_obj_mem_limit: 'int',
  slab_sizes: 'text',
  slab_reassign: 'bare',
  no_slab_reassign: 'bare',
  slab_automove: 'optional',
  no_slab_automove: 'bare',
  slab_automove_ratio: 'float',
  slab_automove_window: 'int',
  slab_automove_freeratio: 'float',
  watcher_logbuf_size: 'int',
  worker_logbuf_size: 'int',
  no_hashexpand: 'bare',
  modern: 'bare',
  no_modern: 'bare',
  inline_ascii_resp: 'bare',
  no_inline_ascii_resp: 'bare',
  sock_cookie_id: 'int',
  drop_privileges: 'bare',
  no_drop_privileges: 'bare',
  // Not in memcached 1.6.18's table, but passed by tooling written for builds that have it.
  relaxed_privileges: 'bare',
  ext_path: 'text',
  ext_page_size: 'int',
  ext_wbuf_size: 'int',
  ext_threads: 'int',
  ext_io_depth: 'int',
  ext_item_size: 'int',
  ext_item_age: 'int',
  ext_low_ttl: 'int',
  ext_recache_rate: 'int',
  ext_compact_under: 'int',
  ext_drop_under: 'int',
  ext_max_frag: 'float',
  ext_max_sleep: 'int',
  ext_drop_unread: 'bare',
  // Applied with -Z or --tls-port (cli.ts): chain_cert, key, ca_cert, verify_mode, ciphers,
  // min_version. Without them they are accepted and ignored, as memcached ignores them.
  ssl_chain_cert: 'text',
  ssl_key: 'text',
  ssl_keyformat: 'text',
  ssl_verify_mode: 'int',
  ssl_ciphers: 'text',
  ssl_ca_cert: 'text',
  ssl_wbuf_size: 'int',
  ssl_session_cache: 'bare',
  ssl_kernel_tls: 'bare',
  ssl_min_version: 'int',
};

/** Checks one "name" or "name=value" suboption and applies it to config. */
export function applyExtendedOption(config: Config, suboption: string): void {
  const equals = suboption.indexOf('=');
  const name = equals === -1 ? suboption : suboption.slice(0, equals);
  const value = equals === -1 ? '' : suboption.slice(equals + 1);
  const kind = SUBOPTIONS[name];
  if (kind === undefined) throw new ConfigError(`-o/--extended: illegal suboption "${suboption}"`);
  if ((kind === 'int' || kind === 'float' || kind === 'text') && value === '') {
    throw new ConfigError(`-o/--extended: ${name} needs a value (${name}=...)`);
  }
  if ((kind === 'int' || (kind === 'optional' && value !== '')) && !/^\d+$/.test(value)) {
    throw new ConfigError(`-o/--extended: ${name}=${value} is not a whole number`);
  }
  if (kind === 'float' && !Number.isFinite(Number(value))) throw new ConfigError(`-o/--extended: ${name}=${value} is not a number`);

  // memcached's checks of the crawler's values.
  if (name === 'lru_crawler_sleep' && Number(value) > 1_000_000) {
    throw new ConfigError(`-o/--extended: lru_crawler_sleep=${value}: LRU crawler sleep must be between 0 and 1 second`);
  }
  if (name === 'lru_crawler_tocrawl' && Number(value) > 0xffffffff) {
    throw new ConfigError(`-o/--extended: lru_crawler_tocrawl=${value}: lru_crawler_tocrawl takes a numeric 32bit value`);
  }

  checkSlabOption(name, value);
  config.extended.set(name, kind === 'bare' ? 'yes' : kind === 'optional' && value === '' ? '1' : value);
  if (name === 'idle_timeout') config.idleTimeout = Number(value);
  if (name === 'track_sizes') config.trackSizes = true;
  // In the order given, as memcached applies them: `no_modern,lru_crawler` starts the crawler, `lru_crawler,no_modern` does not.
  if (name === 'lru_crawler') config.lruCrawler = true;
  if (name === 'no_lru_crawler') config.lruCrawler = false;
  if (name === 'lru_crawler_sleep') config.lruCrawlerSleep = Number(value);
  if (name === 'lru_crawler_tocrawl') config.lruCrawlerToCrawl = Number(value);
  if (name === 'no_modern') config.lruCrawler = false;
  applyLruOption(config, name, value);
}

/** memcached's own messages for the segmented LRU's suboptions (memcached.c's -o parsing). */
function applyLruOption(config: Config, name: string, value: string): void {
  const lru = config.lru;
  switch (name) {
    case 'lru_maintainer':
      lru.maintainer = true;
      lru.segmented = true;
      break;
    case 'no_lru_maintainer':
      lru.maintainer = false;
      lru.segmented = false;
      break;
    case 'hot_lru_pct':
    case 'warm_lru_pct': {
      const pct = Number(value);
      if (pct < 1 || pct >= 80) throw new ConfigError(`-o/--extended: ${name} must be > 1 and < 80`);
      if (name === 'hot_lru_pct') lru.hotLruPct = pct;
      else lru.warmLruPct = pct;
      break;
    }
    case 'hot_max_factor':
    case 'warm_max_factor': {
      const factor = Number(value);
      if (factor <= 0) throw new ConfigError(`-o/--extended: ${name} must be > 0`);
      if (name === 'hot_max_factor') lru.hotMaxFactor = factor;
      else lru.warmMaxFactor = factor;
      break;
    }
    case 'temporary_ttl':
      lru.tempLru = true;
      lru.temporaryTtl = Number(value);
      break;
    case 'no_modern':
      // memcached's compat mode: flat LRU, no maintainer, and (unless slab_chunk_max was given) page-sized chunks.
      lru.maintainer = false;
      lru.segmented = false;
      if (!config.extended.has('slab_chunk_max')) config.slabChunkMax = 1024 * 1024;
      break;
  }
}

/** The checks memcached makes once every -o suboption is read. */
export function checkExtendedOptions(config: Config): void {
  const lru = config.lru;
  if (lru.hotLruPct + lru.warmLruPct > 80) throw new ConfigError('-o/--extended: hot_lru_pct + warm_lru_pct cannot be more than 80% combined');
  if (lru.tempLru && !lru.maintainer) throw new ConfigError('-o/--extended: temporary_ttl requires lru_maintainer to be enabled');
}

/**
 * The slab settings the -o list and -L decide together, checked as memcached's
 * main() checks them once every option is read: hashpower within 12..32;
 * slab_chunk_max (bytes) no larger than -I and dividing both -I and the page;
 * no_modern and no_chunked_items make the largest chunk a whole page; -L
 * preallocates a page per class, so -m must hold them all. memcached refuses a
 * -I below 512 KiB unless slab_chunk_max is lowered with it; Mnemo keeps its
 * larger chunks then (items stay bounded by -I), so only a slab_chunk_max given
 * is held to -I.
 */
export function settleSlabSettings(config: Config, preallocate: boolean): void {
  const extended = config.extended;
  const hashpower = extended.get('hashpower');
  if (hashpower !== undefined) {
    const power = Number(hashpower);
    if (power < 12) throw new ConfigError(`-o/--extended: Initial hashtable multiplier of ${power} is too low`);
    if (power > 32) {
      throw new ConfigError(
        `-o/--extended: Initial hashtable multiplier of ${power} is too high (choose a value based on "STAT hash_power_level" from a running instance)`,
      );
    }
    // memcached allows up to 32 (and fails to allocate the table there); Mnemo's table stops doubling at 2^28 buckets.
    if (power > MAX_HASH_POWER) throw new ConfigError(`-o/--extended: hashpower=${power}: the hash table holds at most 2^${MAX_HASH_POWER} buckets`);
    config.hashPowerInit = power;
  }
  const given = extended.get('slab_chunk_max');
  let chunkMax = SLAB_PAGE_SIZE / 2;
  if (given !== undefined) chunkMax = Number(given);
  else if (extended.has('no_modern')) chunkMax = SLAB_PAGE_SIZE;
  if (extended.has('no_chunked_items')) chunkMax = SLAB_PAGE_SIZE;
  if (given !== undefined) {
    const itemSizeMax = config.maxItemSize;
    if (chunkMax > itemSizeMax) {
      throw new ConfigError(`-o/--extended: slab_chunk_max (bytes: ${chunkMax}) cannot be larger than -I (item_size_max ${itemSizeMax})`);
    }
    // Below 64 bytes a 1 MiB page would hold more chunks than a chunk reference can name.
    if (chunkMax < 64) throw new ConfigError(`-o/--extended: slab_chunk_max (bytes: ${chunkMax}) cannot be less than 64`);
    if (itemSizeMax % chunkMax !== 0) {
      throw new ConfigError(`-o/--extended: -I (item_size_max: ${itemSizeMax}) must be evenly divisible by slab_chunk_max (bytes: ${chunkMax})`);
    }
    if (SLAB_PAGE_SIZE % chunkMax !== 0) {
      throw new ConfigError(`-o/--extended: slab_chunk_max (bytes: ${chunkMax}) must divide evenly into ${SLAB_PAGE_SIZE} (slab_page_size)`);
    }
  }
  config.slabChunkMax = chunkMax;
  if (preallocate) {
    const classes = new SizeClasses(config.slabGrowthFactor, config.slabMinSize, 2 * chunkMax).largest;
    if (config.memoryLimit < classes * SLAB_PAGE_SIZE) {
      throw new ConfigError(
        `-L/--enable-largepages: Error while preallocating slab memory: max memory must be at least ${classes} megabytes`,
      );
    }
    config.preallocate = true;
  }
}

/** memcached's checks of the slab mover's suboptions (its messages). */
function checkSlabOption(name: string, value: string): void {
  const fail = (message: string): never => {
    throw new ConfigError(`-o/--extended: ${message}`);
  };
  if (name === 'slab_automove' && value !== '' && Number(value) > 2) fail('slab_automove must be between 0 and 2');
  if (name === 'slab_automove_ratio' && !(Number(value) > 0 && Number(value) <= 1)) fail('slab_automove_ratio must be > 0 and < 1');
  if (name === 'slab_automove_window' && Number(value) < 3) fail('slab_automove_window must be > 2');
}

/** memcached's slab_reassign, slab_automove, slab_automove_ratio and slab_automove_window, defaults and all. */
export function slabRebalanceSettings(config: Config): { reassign: boolean; automove: number; ratio: number; window: number; lruMaintainer: boolean } {
  const extended = config.extended;
  const noModern = extended.has('no_modern');
  return {
    reassign: !extended.has('no_slab_reassign') && !noModern,
    automove: extended.has('no_slab_automove') || noModern ? 0 : Number(extended.get('slab_automove') ?? 1),
    ratio: Number(extended.get('slab_automove_ratio') ?? 0.8),
    window: Number(extended.get('slab_automove_window') ?? 30),
    lruMaintainer: !extended.has('no_lru_maintainer'),
  };
}
