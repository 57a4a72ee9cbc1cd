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
  lru_crawler: 'bare',
  no_lru_crawler: 'bare',
  lru_crawler_sleep: 'int',
  lru_crawler_tocrawl: 'int',
  // Accepted: memcached internals with no counterpart here.
  maxconns_fast: 'bare',
  no_maxconns_fast: 'bare',
  hashpower: 'int',
  tail_repair_time: 'int',
  hash_algorithm: 'text',
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

  // memcached's checks of the crawler's values.
  if (name === 'lru_crawler_sleep' && Number(value) > 1_000_000) {
    throw new ConfigError(`-o/--extended: lru_crawler_sleep=${value}: LRU crawler sleep must be between 0 and 1 second`);
  }
  if (name === 'lru_crawler_tocrawl' && Number(value) > 0xffffffff) {
    throw new ConfigError(`-o/--extended: lru_crawler_tocrawl=${value}: lru_crawler_tocrawl takes a numeric 32bit value`);
  }

  config.extended.set(name, kind === 'bare' ? 'yes' : kind === 'optional' && value === '' ? '1' : value);
  if (name === 'idle_timeout') config.idleTimeout = Number(value);
  if (name === 'track_sizes') config.trackSizes = true;
  // In the order given, as memcached applies them: `no_modern,lru_crawler` starts the crawler, `lru_crawler,no_modern` does not.
  if (name === 'lru_crawler') config.lruCrawler = true;
  if (name === 'no_lru_crawler') config.lruCrawler = false;
  if (name === 'lru_crawler_sleep') config.lruCrawlerSleep = Number(value);
  if (name === 'lru_crawler_tocrawl') config.lruCrawlerToCrawl = Number(value);
  if (name === 'lru_maintainer') config.lruMaintainer = true;
  if (name === 'no_lru_maintainer') config.lruMaintainer = false;
  if (name === 'no_modern') {
    config.lruCrawler = false;
    config.lruMaintainer = false;
  }
}
