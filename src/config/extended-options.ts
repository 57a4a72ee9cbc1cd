import { ConfigError, type Config } from './config.js';

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
  // Accepted: memcached internals with no counterpart here.
  maxconns_fast: 'bare',
  no_maxconns_fast: 'bare',
  hashpower: 'int',
  tail_repair_time: 'int',
  hash_algorithm: 'text',
  lru_crawler: 'bare',
  no_lru_crawler: 'bare',
  lru_crawler_sleep: 'int',
  lru_crawler_tocrawl: 'int',
  lru_maintainer: 'bare',
  no_lru_maintainer: 'bare',
  hot_lru_pct: 'int',
  warm_lru_pct: 'int',
  hot_max_factor: 'float',
  warm_max_factor: 'float',
  temporary_ttl: 'int',
  read_buf_mem_limit: 'int',
  resp_obj_mem_limit: 'int',
  slab_chunk_max: 'int',
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
  no_chunked_items: 'bare',
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

  checkSlabOption(name, value);
  config.extended.set(name, kind === 'bare' ? 'yes' : kind === 'optional' && value === '' ? '1' : value);
  if (name === 'idle_timeout') config.idleTimeout = Number(value);
  if (name === 'track_sizes') config.trackSizes = true;
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

/** The slab page size (memcached's slab_page_size; not settable here). */
export const SLAB_PAGE_SIZE = 1024 * 1024;

/**
 * -o slab_chunk_max, in bytes, checked against -I and the page size as memcached
 * checks it (after every flag is read); undefined when not given (half a page).
 */
export function slabChunkMax(config: Config): number | undefined {
  const given = config.extended.get('slab_chunk_max');
  if (given === undefined) return undefined;
  const bytes = Number(given);
  const fail = (message: string): never => {
    throw new ConfigError(`-o/--extended: ${message}`);
  };
  if (bytes < 1) fail(`slab_chunk_max=${given} is too small`);
  if (bytes > config.maxItemSize) fail(`slab_chunk_max (bytes: ${bytes}) cannot be larger than -I (item_size_max ${config.maxItemSize})`);
  if (config.maxItemSize % bytes !== 0) fail(`-I (item_size_max: ${config.maxItemSize}) must be evenly divisible by slab_chunk_max (bytes: ${bytes})`);
  if (SLAB_PAGE_SIZE % bytes !== 0) fail(`slab_chunk_max (bytes: ${bytes}) must divide evenly into ${SLAB_PAGE_SIZE} (slab_page_size)`);
  return bytes;
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
