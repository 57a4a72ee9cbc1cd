import type { ConnectionInfo, ServerContext } from '../server/context.js';
import type { OutputBuffer } from '../server/output.js';
import type { ItemDump, LruClassStats } from '../store/store.js';

/**
 * The `stats` replies: memcached's field names, in memcached's order, so that
 * memcstat, memcached-tool and exporters read Mnemo unchanged. Only fields that
 * mean something in Mnemo are listed; figures are Mnemo's own.
 */
type Pairs = Array<[string, string | number]>;

function general(ctx: ServerContext): Pairs {
  const { counters: c, store, config, clock } = ctx;
  const usage = process.resourceUsage();
  const pairs: Pairs = [];
  const stat = (name: string, value: string | number): void => {
    pairs.push([name, value]);
  };
  const extended = config.extended;
  // memcached's no_modern turns maxconns_fast off with the other modern defaults.
  const maxconnsFast = !extended.has('no_maxconns_fast') && !extended.has('no_modern');
  const memory = store.memoryStats();
  stat('pid', process.pid);
  stat('uptime', clock.now - clock.started);
  stat('time', clock.now);
  stat('version', ctx.version);
  // memcached names its event library's version; Mnemo's event loop is Node's libuv.
  stat('libevent', `libuv-${process.versions.uv}`);
  stat('pointer_size', 64);
  stat('rusage_user', seconds(usage.userCPUTime));
  stat('rusage_system', seconds(usage.systemCPUTime));
  stat('max_connections', config.connLimit);
  stat('curr_connections', c.curr_connections);
  stat('total_connections', c.total_connections);
  if (maxconnsFast) stat('rejected_connections', c.rejected_connections);
  stat('connection_structures', c.curr_connections);
  // Memory connections hold: replies not yet written, and requests not yet consumed.
  let unsentBytes = 0;
  let readBuffers = 0;
  let readBytes = 0;
  for (const connection of ctx.connections) {
    unsentBytes += connection.unsentBytes;
    if (connection.readBytes > 0) readBuffers++;
    readBytes += connection.readBytes;
  }
  stat('response_obj_oom', c.response_obj_oom);
  stat('response_obj_count', c.response_obj_count);
  stat('response_obj_bytes', unsentBytes);
  stat('read_buf_count', readBuffers);
  stat('read_buf_bytes', readBytes);
  // Mnemo keeps no pool of free read buffers, and never refuses to read for read_buf_mem_limit.
  stat('read_buf_bytes_free', 0);
  stat('read_buf_oom', 0);
  // memcached sets descriptors aside for its own files out of -c; Mnemo's -c counts clients only.
  stat('reserved_fds', 0);
  stat('cmd_get', c.cmd_get);
  stat('cmd_set', c.cmd_set);
  stat('cmd_flush', c.cmd_flush);
  stat('cmd_touch', c.cmd_touch);
  stat('cmd_meta', c.cmd_meta);
  stat('get_hits', c.get_hits);
  stat('get_misses', c.get_misses);
  stat('get_expired', c.get_expired);
  stat('get_flushed', c.get_flushed);
  stat('delete_misses', c.delete_misses);
  stat('delete_hits', c.delete_hits);
  stat('incr_misses', c.incr_misses);
  stat('incr_hits', c.incr_hits);
  stat('decr_misses', c.decr_misses);
  stat('decr_hits', c.decr_hits);
  stat('cas_misses', c.cas_misses);
  stat('cas_hits', c.cas_hits);
  stat('cas_badval', c.cas_badval);
  stat('touch_hits', c.touch_hits);
  stat('touch_misses', c.touch_misses);
  stat('store_too_large', c.store_too_large);
  stat('store_no_memory', c.store_no_memory);
  stat('auth_cmds', c.auth_cmds);
  stat('auth_errors', c.auth_errors);
  if (config.idleTimeout > 0) stat('idle_kicks', c.idle_kicks);
  stat('bytes_read', c.bytes_read);
  stat('bytes_written', c.bytes_written);
  stat('limit_maxbytes', store.bytesLimit);
  stat('accepting_conns', 1);
  // Mnemo never stops accepting: over -c it answers "ERROR Too many open connections" (memcached's maxconns_fast).
  stat('listen_disabled_num', 0);
  stat('time_in_listen_disabled_us', 0);
  stat('threads', config.threads);
  stat('conn_yields', c.conn_yields);
  stat('hash_power_level', memory.hash_power_level);
  stat('hash_bytes', memory.hash_bytes);
  stat('hash_is_expanding', memory.hash_is_expanding ? 1 : 0);
  const rebalancer = ctx.slabRebalancer;
  if (rebalancer.settings.reassign) for (const [name, value] of rebalancer.stats()) stat(name, value);
  const crawler = store.crawler;
  if (crawler.enabled) {
    stat('lru_crawler_running', crawler.running ? 1 : 0);
    stat('lru_crawler_starts', crawler.starts);
  }
  if (store.lru.settings.maintainer) stat('lru_maintainer_juggles', store.lru.juggles);
  stat('malloc_fails', memory.malloc_fails);
  // The log stream (watch): Mnemo writes lines as events happen, so no worker buffer drops any.
  const log = ctx.logStream;
  stat('log_worker_dropped', 0);
  stat('log_worker_written', log.written);
  stat('log_watcher_skipped', log.skipped);
  stat('log_watcher_sent', log.sent);
  stat('log_watchers', log.watcherCount);
  // Without memcached's -N (NAPI ids) no connection is placed by one, so nothing falls back.
  stat('unexpected_napi_ids', 0);
  stat('round_robin_fallback', 0);
  stat('bytes', store.bytesUsed);
  stat('curr_items', store.itemCount);
  stat('total_items', c.total_items);
  stat('slab_global_page_pool', rebalancer.globalPagePool);
  stat('expired_unfetched', c.expired_unfetched);
  stat('evicted_unfetched', c.evicted_unfetched);
  const totals = lruTotals(ctx);
  if (store.lru.settings.maintainer) stat('evicted_active', totals.evicted_active);
  stat('evictions', c.evictions);
  stat('reclaimed', c.reclaimed);
  let reclaimed = 0;
  let checked = 0;
  for (const cls of store.sizeClassStats()) {
    reclaimed += crawler.reclaimedIn(cls.id);
    checked += crawler.checkedIn(cls.id);
  }
  stat('crawler_reclaimed', reclaimed);
  stat('crawler_items_checked', checked);
  stat('lrutail_reflocked', totals.lrutail_reflocked);
  if (store.lru.settings.maintainer) {
    stat('moves_to_cold', totals.moves_to_cold);
    stat('moves_to_warm', totals.moves_to_warm);
    stat('moves_within_lru', totals.moves_within_lru);
    stat('direct_reclaims', totals.direct_reclaims);
    stat('lru_bumps_dropped', store.lru.bumpsDropped);
  }
  const persistence = ctx.persistence;
  if (persistence !== null) {
    stat('disk_promotions', c.disk_promotions);
    for (const [name, value] of persistence.stats()) stat(name, value);
  }
  // Replication: this node, then peer_<n>_* per --peer (state, lag, bytes).
  const replication = ctx.replication;
  if (replication != null) for (const [name, value] of replication.stats()) stat(name, value);
  return pairs;
}

/**
 * The statistics of a `stats` group ('' for the general ones): settings, items,
 * slabs, sizes, conns; null for a group memcached does not know.
 */
export function statsPairs(ctx: ServerContext, group: string): Pairs | null {
  switch (group) {
    case '':
      return general(ctx);
    case 'settings':
      return settings(ctx);
    case 'items':
      return items(ctx);
    case 'slabs':
      return slabs(ctx);
    case 'sizes':
      return sizes(ctx);
    case 'conns':
      return conns(ctx);
    default:
      return null;
  }
}

/** The text protocol's form: one STAT line per statistic (END is the caller's). */
export function writeStats(out: OutputBuffer, pairs: Pairs): void {
  for (const [name, value] of pairs) out.ascii(`STAT ${name} ${value}\r\n`);
}


const yesNo = (value: boolean): string => (value ? 'yes' : 'no');

function settings(ctx: ServerContext): Pairs {
  const config = ctx.config;
  const extended = config.extended;
  const option = (name: string, fallback: string | number): string | number => extended.get(name) ?? fallback;
  const lru = ctx.store.lru.settings;
  const noModern = extended.has('no_modern');
  const tls = config.tls;
  return [
    ['maxbytes', ctx.store.bytesLimit],
    ['maxconns', config.connLimit],
    ['tcpport', config.unixSocket === null ? config.port ?? 0 : 0],
    ['udpport', config.udpPort],
    ['inter', config.listen],
    ['verbosity', config.verbosity],
    ['oldest', 0],
    ['evictions', config.evictions ? 'on' : 'off'],
    ['domain_socket', config.unixSocket ?? 'NULL'],
    ['umask', config.unixMask.toString(8)],
    ['shutdown_command', yesNo(config.shutdownEnabled)],
    ['growth_factor', config.slabGrowthFactor.toFixed(2)],
    ['chunk_size', config.slabMinSize],
    ['num_threads', config.threads],
    ['num_threads_per_udp', config.threads],
    ['stat_key_prefix', config.prefixDelimiter],
    ['detail_enabled', yesNo(ctx.prefixStats.enabled)],
    ['reqs_per_event', config.reqsPerEvent],
    ['cas_enabled', yesNo(config.casEnabled)],
    ['tcp_backlog', config.backlog],
    ['binding_protocol', config.protocol === 'auto' ? 'auto-negotiate' : config.protocol],
    ['auth_enabled_sasl', yesNo(config.saslEnabled)],
    // memcached names the -Y file here when there is one.
    ['auth_enabled_ascii', config.authFile ?? 'no'],
    ['item_size_max', config.maxItemSize],
    ['maxconns_fast', extended.has('no_maxconns_fast') || noModern ? 'no' : 'yes'],
    ['hashpower_init', config.hashPowerInit],
    ...slabSettings(ctx),
    ['lru_crawler', yesNo(ctx.store.crawler.enabled)],
    ['lru_crawler_sleep', ctx.store.crawler.sleep],
    ['lru_crawler_tocrawl', ctx.store.crawler.tocrawl],
    ['tail_repair_time', option('tail_repair_time', 0)],
    ['flush_enabled', yesNo(config.flushEnabled)],
    ['dump_enabled', yesNo(config.dumpingEnabled)],
    // Keys are hashed with murmur3 whatever -o hash_algorithm asks (it is accepted for start scripts).
    ['hash_algorithm', 'murmur3'],
    ['lru_maintainer_thread', yesNo(lru.maintainer)],
    ['lru_segmented', yesNo(lru.segmented)],
    ['hot_lru_pct', lru.hotLruPct],
    ['warm_lru_pct', lru.warmLruPct],
    ['hot_max_factor', lru.hotMaxFactor.toFixed(2)],
    ['warm_max_factor', lru.warmMaxFactor.toFixed(2)],
    ['temp_lru', yesNo(lru.tempLru)],
    ['temporary_ttl', lru.temporaryTtl],
    ['idle_timeout', config.idleTimeout],
    // Given in KB, shown in bytes. Mnemo writes watch lines from the event loop, with no worker buffer to size.
    ['watcher_logbuf_size', Number(option('watcher_logbuf_size', 256)) * 1024],
    ['worker_logbuf_size', Number(option('worker_logbuf_size', 64)) * 1024],
    ['read_buf_mem_limit', Number(option('read_buf_mem_limit', 0)) * 1024 * 1024],
    ['track_sizes', yesNo(config.trackSizes)],
    // A dead setting in memcached 1.6 too: it cannot be yes.
    ['inline_ascii_response', 'no'],
    ['ssl_enabled', tls !== null ? 'yes' : 'no'],
    ['ssl_chain_cert', tls?.certFile ?? '(null)'],
    ['ssl_key', tls?.keyFile ?? '(null)'],
    ['ssl_verify_mode', tls?.verifyMode ?? 0],
    // PEM (OpenSSL's SSL_FILETYPE_PEM), the only key format either reads.
    ['ssl_keyformat', 1],
    ['ssl_ciphers', tls?.ciphers ?? 'NULL'],
    ['ssl_ca_cert', tls?.caFile ?? 'NULL'],
    ['ssl_wbuf_size', Number(option('ssl_wbuf_size', 16)) * 1024],
    ['ssl_session_cache', yesNo(extended.has('ssl_session_cache'))],
    // Node's TLS is in user space: never the kernel's.
    ['ssl_kernel_tls', 'no'],
    ['ssl_min_version', `tlsv1.${tls?.minVersion ?? 2}`],
    ['num_napi_ids', config.napiIds ?? '(null)'],
    ['memory_file', config.memoryFile ?? '(null)'],
  ];
}

/** memcached's item_stats: a class is listed while it holds items. */
function items(ctx: ServerContext): Pairs {
  const text: Pairs = [];
  const store = ctx.store;
  // memcached lists the segments' figures while its LRU maintainer runs.
  const segmented = store.lru.settings.maintainer;
  for (const cls of store.sizeClassStats()) {
    if (cls.id === 0 || cls.number === 0) continue;
    const p = `items:${cls.id}:`;
    const seg = store.lru.classStats(cls.id);
    text.push([`${p}number`, cls.number]);
    if (segmented) {
      text.push([`${p}number_hot`, seg.number_hot], [`${p}number_warm`, seg.number_warm], [`${p}number_cold`, seg.number_cold]);
      if (store.lru.settings.tempLru) text.push([`${p}number_temp`, seg.number_temp]);
      text.push([`${p}age_hot`, seg.age_hot], [`${p}age_warm`, seg.age_warm]);
    }
    text.push(
      [`${p}age`, seg.age],
      [`${p}mem_requested`, cls.mem_requested],
      [`${p}evicted`, cls.evicted],
      [`${p}evicted_nonzero`, cls.evicted_nonzero],
      [`${p}evicted_time`, cls.evicted_time],
      [`${p}outofmemory`, cls.outofmemory],
      // Pins are never leaked here, so there is no LRU tail to repair (-o tail_repair_time).
      [`${p}tailrepairs`, 0],
      [`${p}reclaimed`, cls.reclaimed],
      [`${p}expired_unfetched`, cls.expired_unfetched],
      [`${p}evicted_unfetched`, cls.evicted_unfetched],
    );
    if (segmented) text.push([`${p}evicted_active`, seg.evicted_active]);
    text.push(
      [`${p}crawler_reclaimed`, store.crawler.reclaimedIn(cls.id)],
      [`${p}crawler_items_checked`, store.crawler.checkedIn(cls.id)],
      [`${p}lrutail_reflocked`, seg.lrutail_reflocked],
    );
    if (segmented) {
      text.push(...(<Pairs>[
        [`${p}moves_to_cold`, seg.moves_to_cold],
        [`${p}moves_to_warm`, seg.moves_to_warm],
        [`${p}moves_within_lru`, seg.moves_within_lru],
        [`${p}direct_reclaims`, seg.direct_reclaims],
        [`${p}hits_to_hot`, seg.hits_to_hot],
        [`${p}hits_to_warm`, seg.hits_to_warm],
        [`${p}hits_to_cold`, seg.hits_to_cold],
        [`${p}hits_to_temp`, seg.hits_to_temp],
      ]));
    }
  }
  return text;
}

/** slab_reassign through slab_chunk_max: the slab mover's settings as they are now (`slabs automove` changes them). */
function slabSettings(ctx: ServerContext): Pairs {
  const settings = ctx.slabRebalancer.settings;
  return [
    ['slab_reassign', yesNo(settings.reassign)],
    ['slab_automove', settings.automove],
    ['slab_automove_ratio', settings.ratio.toFixed(2)],
    ['slab_automove_window', settings.window],
    // memcached's default is half a 1 MB page, whatever -I is (a whole page under no_modern).
    ['slab_chunk_max', ctx.config.slabChunkMax],
  ];
}

type LruTotals = Pick<LruClassStats, 'evicted_active' | 'lrutail_reflocked' | 'moves_to_cold' | 'moves_to_warm' | 'moves_within_lru' | 'direct_reclaims'>;

/** memcached's item_stats_totals over the classes, for the general `stats`. */
function lruTotals(ctx: ServerContext): LruTotals {
  const totals: LruTotals = { evicted_active: 0, lrutail_reflocked: 0, moves_to_cold: 0, moves_to_warm: 0, moves_within_lru: 0, direct_reclaims: 0 };
  const lru = ctx.store.lru;
  for (const cls of ctx.store.sizeClassStats()) {
    if (cls.id === 0) continue;
    const seg = lru.classStats(cls.id);
    totals.evicted_active += seg.evicted_active;
    totals.lrutail_reflocked += seg.lrutail_reflocked;
    totals.moves_to_cold += seg.moves_to_cold;
    totals.moves_to_warm += seg.moves_to_warm;
    totals.moves_within_lru += seg.moves_within_lru;
    totals.direct_reclaims += seg.direct_reclaims;
  }
  return totals;
}

/** memcached's slabs_stats: a class is listed once it has a page; total_malloced counts pages charged against -m. */
function slabs(ctx: ServerContext): Pairs {
  const text: Pairs = [];
  const slab = ctx.counters.slab;
  let active = 0;
  for (const cls of ctx.store.sizeClassStats()) {
    if (cls.id === 0 || cls.total_pages === 0) continue;
    active++;
    const id = cls.id;
    const p = `${id}:`;
    text.push(
      [`${p}chunk_size`, cls.chunkSize],
      [`${p}chunks_per_page`, cls.perPage],
      [`${p}total_pages`, cls.total_pages],
      [`${p}total_chunks`, cls.total_pages * cls.perPage],
      [`${p}used_chunks`, cls.used_chunks],
      [`${p}free_chunks`, cls.free_chunks],
      // A dead figure in memcached too, shown as 0.
      [`${p}free_chunks_end`, 0],
      [`${p}get_hits`, slab.get_hits[id]!],
      [`${p}cmd_set`, slab.cmd_set[id]!],
      [`${p}delete_hits`, slab.delete_hits[id]!],
      [`${p}incr_hits`, slab.incr_hits[id]!],
      [`${p}decr_hits`, slab.decr_hits[id]!],
      [`${p}cas_hits`, slab.cas_hits[id]!],
      [`${p}cas_badval`, slab.cas_badval[id]!],
      [`${p}touch_hits`, slab.touch_hits[id]!],
    );
  }
  text.push(['active_slabs', active], ['total_malloced', ctx.store.memoryStats().total_malloced]);
  return text;
}

/** With -o track_sizes: items counted by total size rounded up to 32 bytes, as memcached reports them. */
function sizes(ctx: ServerContext): Pairs {
  if (!ctx.config.trackSizes) return [['sizes_status', 'disabled']];
  const histogram = new Map<number, number>();
  ctx.store.dump((item) => {
    const bucket = Math.ceil(item.size / 32) * 32;
    histogram.set(bucket, (histogram.get(bucket) ?? 0) + 1);
    return true;
  });
  const buckets = [...histogram.entries()].sort((a, b) => a[0] - b[0]);
  return [['sizes_status', 'enabled'], ...buckets.map(([size, count]): [string, number] => [String(size), count])];
}

/** memcached's process_stats_conns: listeners (in the order they opened), then clients. */
function conns(ctx: ServerContext): Pairs {
  const now = ctx.clock.now;
  const text: Pairs = [];
  const add = (connection: ConnectionInfo): void => {
    const p = `${connection.id}:`;
    if (connection.udp === true) text.push([`${p}UDP`, 'UDP']);
    text.push([`${p}addr`, connection.addr]);
    if (connection.listenAddr !== null) text.push([`${p}listen_addr`, connection.listenAddr]);
    text.push([`${p}state`, connection.state], [`${p}secs_since_last_cmd`, now - connection.lastActive]);
  };
  for (const listener of ctx.listeners) add(listener);
  for (const connection of ctx.connections) add(connection);
  return text;
}

/**
 * An address as memcached's get_conn_text writes it: "tcp:1.2.3.4:11211",
 * "tcp6:[::1]:11211", "udp:…", or "unix:/path" (port 0 or no host: a path).
 */
export function endpointText(transport: 'tcp' | 'udp' | 'unix', host: string | undefined, port: number | undefined): string {
  if (transport === 'unix' || port === undefined) return `unix:${host ?? ''}`;
  const h = host ?? '';
  if (h.includes(':')) return `${transport}6:[${h}]:${port}`;
  return `${transport}:${h}:${port}`;
}

/**
 * `lru_crawler metadump all|<class>` at once (where no crawler streams it): one
 * line per live item, as metadumpLine writes it.
 */
export function writeMetadump(ctx: ServerContext, out: OutputBuffer, sizeClass: number): void {
  ctx.store.dump((item) => {
    if (sizeClass === 0 || item.sizeClass === sizeClass) writeMetadumpLine(out, item);
    return true;
  });
}

/**
 * One metadump line as memcached's crawler_metadump_eval prints it (memcdump
 * reads it): key URL-encoded byte by byte, times as unix seconds, exp -1 for never.
 */
export function writeMetadumpLine(out: OutputBuffer, item: ItemDump): void {
  out.ascii(
    `key=${uriencode(item.key)} exp=${item.exptime === 0 ? -1 : item.exptime} la=${item.lastAccess} cas=${item.cas} ` +
      `fetch=${item.fetched ? 'yes' : 'no'} cls=${item.sizeClass} size=${item.size}\n`,
  );
}

/** memcached's uriencode: every byte but letters, digits and -._~ as %XX (a key's latin1 string is its bytes). */
function uriencode(key: string): string {
  let plain = true;
  for (let i = 0; i < key.length && plain; i++) plain = URI_PLAIN[key.charCodeAt(i)] === 1;
  if (plain) return key;
  let encoded = '';
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    encoded += URI_PLAIN[c] === 1 ? key[i] : `%${c < 16 ? '0' : ''}${c.toString(16).toUpperCase()}`;
  }
  return encoded;
}

const URI_PLAIN = new Uint8Array(256);
for (let c = 0; c < 256; c++) {
  const ch = String.fromCharCode(c);
  if (/[A-Za-z0-9\-._~]/.test(ch)) URI_PLAIN[c] = 1;
}

function seconds(micros: number): string {
  return (micros / 1e6).toFixed(6);
}
