import type { ConnectionInfo, ServerContext } from '../server/context.js';
import type { OutputBuffer } from '../server/output.js';

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
  stat('pid', process.pid);
  stat('uptime', clock.now - clock.started);
  stat('time', clock.now);
  stat('version', ctx.version);
  stat('pointer_size', 64);
  stat('rusage_user', seconds(usage.userCPUTime));
  stat('rusage_system', seconds(usage.systemCPUTime));
  stat('max_connections', config.connLimit);
  stat('curr_connections', c.curr_connections);
  stat('total_connections', c.total_connections);
  stat('rejected_connections', c.rejected_connections);
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
  stat('idle_kicks', c.idle_kicks);
  stat('bytes_read', c.bytes_read);
  stat('bytes_written', c.bytes_written);
  stat('limit_maxbytes', store.bytesLimit);
  stat('accepting_conns', 1);
  // Mnemo never stops accepting: over -c it answers "ERROR Too many open connections" (memcached's maxconns_fast).
  stat('listen_disabled_num', 0);
  stat('time_in_listen_disabled_us', 0);
  stat('threads', config.threads);
  stat('conn_yields', c.conn_yields);
  const rebalancer = ctx.slabRebalancer ?? null;
  if (rebalancer !== null && rebalancer.settings.reassign) for (const [name, value] of rebalancer.stats()) stat(name, value);
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
  if (rebalancer !== null) stat('slab_global_page_pool', rebalancer.globalPagePool);
  stat('expired_unfetched', c.expired_unfetched);
  stat('evicted_unfetched', c.evicted_unfetched);
  stat('evictions', c.evictions);
  stat('reclaimed', c.reclaimed);
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
    ['maxconns_fast', extended.has('no_maxconns_fast') ? 'no' : 'yes'],
    ['hashpower_init', option('hashpower', 0)],
    ...slabSettings(ctx),
    ['lru_crawler', extended.has('no_lru_crawler') ? 'no' : 'yes'],
    ['tail_repair_time', option('tail_repair_time', 0)],
    ['flush_enabled', yesNo(config.flushEnabled)],
    ['dump_enabled', yesNo(config.dumpingEnabled)],
    ['hash_algorithm', option('hash_algorithm', 'murmur3')],
    ['lru_maintainer_thread', extended.has('no_lru_maintainer') ? 'no' : 'yes'],
    ['lru_segmented', extended.has('no_lru_segmented') ? 'no' : 'yes'],
    ['temporary_ttl', option('temporary_ttl', 61)],
    ['idle_timeout', config.idleTimeout],
    ['read_buf_mem_limit', Number(option('read_buf_mem_limit', 0)) * 1024 * 1024],
    ['track_sizes', yesNo(config.trackSizes)],
    ['ssl_enabled', config.tls !== null ? 'yes' : 'no'],
    ['memory_file', config.memoryFile ?? '(null)'],
  ];
}

/**
 * Mnemo keeps no slab pages: items are filed under memcached's size classes only
 * for reporting, so page and chunk figures describe how memcached would hold the
 * same items, and mem_requested is what Mnemo charges them.
 */
function items(ctx: ServerContext): Pairs {
  const text: Pairs = [];
  for (const cls of ctx.store.sizeClassStats()) {
    if (cls.id === 0 || (cls.number === 0 && cls.evicted === 0 && cls.reclaimed === 0)) continue;
    const p = `items:${cls.id}:`;
    text.push(...(<Pairs>[
      [`${p}number`, cls.number],
      [`${p}mem_requested`, cls.mem_requested],
      [`${p}evicted`, cls.evicted],
      [`${p}evicted_time`, cls.evicted_time],
      [`${p}outofmemory`, cls.outofmemory],
      [`${p}reclaimed`, cls.reclaimed],
      [`${p}expired_unfetched`, cls.expired_unfetched],
      [`${p}evicted_unfetched`, cls.evicted_unfetched],
    ]));
  }
  return text;
}

/**
 * slab_reassign through slab_chunk_max: the slab mover's settings as they are now
 * (`slabs automove` changes them); on the heap store, as the flags gave them.
 */
function slabSettings(ctx: ServerContext): Pairs {
  const extended = ctx.config.extended;
  const settings = ctx.slabRebalancer?.settings;
  const automove = extended.has('no_slab_automove') || extended.has('no_modern') ? 0 : Number(extended.get('slab_automove') ?? 1);
  return [
    ['slab_reassign', yesNo(settings?.reassign ?? !(extended.has('no_slab_reassign') || extended.has('no_modern')))],
    ['slab_automove', settings?.automove ?? automove],
    ['slab_automove_ratio', (settings?.ratio ?? Number(extended.get('slab_automove_ratio') ?? 0.8)).toFixed(2)],
    ['slab_automove_window', settings?.window ?? Number(extended.get('slab_automove_window') ?? 30)],
    // memcached's default is half a 1 MB page, whatever -I is.
    ['slab_chunk_max', extended.get('slab_chunk_max') ?? 512 * 1024],
  ];
}

function slabs(ctx: ServerContext): Pairs {
  if (ctx.store.totalMalloced !== undefined) return slabPages(ctx);
  const text: Pairs = [];
  let active = 0;
  for (const cls of ctx.store.sizeClassStats()) {
    if (cls.id === 0 || cls.number === 0) continue;
    active++;
    const pages = Math.ceil(cls.number / cls.perPage);
    const p = `${cls.id}:`;
    text.push(...(<Pairs>[
      [`${p}chunk_size`, cls.chunkSize],
      [`${p}chunks_per_page`, cls.perPage],
      [`${p}total_pages`, pages],
      [`${p}total_chunks`, pages * cls.perPage],
      [`${p}used_chunks`, cls.number],
      [`${p}free_chunks`, pages * cls.perPage - cls.number],
      [`${p}free_chunks_end`, 0],
      [`${p}mem_requested`, cls.mem_requested],
    ]));
  }
  text.push(['active_slabs', active], ['total_malloced', ctx.store.bytesUsed]);
  return text;
}

/** `stats slabs` of the slab store: the classes holding pages, as memcached's do_slabs_stats. */
function slabPages(ctx: ServerContext): Pairs {
  const text: Pairs = [];
  let active = 0;
  for (const cls of ctx.store.sizeClassStats()) {
    if (cls.id === 0 || !cls.totalPages) continue;
    active++;
    const p = `${cls.id}:`;
    text.push(
      [`${p}chunk_size`, cls.chunkSize],
      [`${p}chunks_per_page`, cls.perPage],
      [`${p}total_pages`, cls.totalPages],
      [`${p}total_chunks`, cls.totalPages * cls.perPage],
      [`${p}used_chunks`, cls.usedChunks ?? 0],
      [`${p}free_chunks`, cls.freeChunks ?? 0],
      [`${p}free_chunks_end`, 0],
      [`${p}mem_requested`, cls.mem_requested],
    );
  }
  text.push(['active_slabs', active], ['total_malloced', ctx.store.totalMalloced ?? 0]);
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
 * `lru_crawler metadump all|<class>`: one line per live item, key URL-encoded,
 * times as unix seconds, as memcached prints them (memcdump reads this).
 */
export function writeMetadump(ctx: ServerContext, out: OutputBuffer, sizeClass: number): void {
  ctx.store.dump((item) => {
    if (sizeClass !== 0 && item.sizeClass !== sizeClass) return true;
    const exp = item.exptime === 0 ? -1 : item.exptime;
    out.ascii(
      `key=${encodeURIComponent(item.key)} exp=${exp} la=${item.lastAccess} cas=${item.cas} ` +
        `fetch=${item.fetched ? 'yes' : 'no'} cls=${item.sizeClass} size=${item.size}\n`,
    );
    return true;
  });
}

function seconds(micros: number): string {
  return (micros / 1e6).toFixed(6);
}
