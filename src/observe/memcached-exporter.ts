import type { Metric, Registry } from 'prom-client';
import type { ServerContext } from '../server/context.js';
import { statsPairs } from '../protocol/stats-text.js';

/**
 * prometheus/memcached_exporter's series, served by Mnemo itself so that alerts and
 * Grafana dashboards built on the exporter work unchanged, with no exporter process.
 *
 * The series are what the exporter (pkg/exporter/exporter.go) would report if it
 * were pointed at this server: they are read from the same `stats`, `stats settings`,
 * `stats items` and `stats slabs` replies, by the exporter's rules (names, help,
 * types, label sets, set = cmd_set - cas). The per-class figures come from the
 * store's sizeClassStats() through those replies. Series whose stat Mnemo does not
 * send (extstore, proxy) are absent, as the exporter leaves out a stat memcached
 * does not send; so are the LRU segments' while the LRU maintainer is off.
 */

type Kind = 'counter' | 'gauge';
type Stats = Map<string, string>;
type Read = (stats: Stats, key: string) => number | null;

interface Sample {
  labels: Record<string, string>;
  value: number;
}

interface Family {
  name: string;
  help: string;
  type: Kind;
  samples: Sample[];
}

const number: Read = (stats, key) => {
  const text = stats.get(key);
  if (text === undefined) return null;
  const value = Number(text);
  return Number.isFinite(value) ? value : null;
};
/** rusage as memcached prints it: seconds.microseconds. */
const timeval: Read = (stats, key) => {
  const parts = stats.get(key)?.split('.');
  if (parts === undefined || parts.length !== 2) return null;
  return Number(parts[0]) + Number(parts[1]) / 1e6;
};
const yes: Read = (stats, key) => {
  const text = stats.get(key);
  return text === 'yes' ? 1 : text === 'no' ? 0 : null;
};

/** [stat, series name without memcached_, help, type, parser] from the general `stats`. */
const GENERAL: Array<[string, string, string, Kind, Read?]> = [
  ['uptime', 'uptime_seconds', 'Number of seconds since the server started.', 'counter'],
  ['time', 'time_seconds', 'current UNIX time according to the server.', 'gauge'],
  ['rusage_user', 'process_user_cpu_seconds_total', 'Accumulated user time for this process.', 'counter', timeval],
  ['rusage_system', 'process_system_cpu_seconds_total', 'Accumulated system time for this process.', 'counter', timeval],
  ['bytes', 'current_bytes', 'Current number of bytes used to store items.', 'gauge'],
  ['limit_maxbytes', 'limit_bytes', 'Number of bytes this server is allowed to use for storage.', 'gauge'],
  ['curr_items', 'current_items', 'Current number of items stored by this instance.', 'gauge'],
  ['total_items', 'items_total', 'Total number of items stored during the life of this instance.', 'counter'],
  ['bytes_read', 'read_bytes_total', 'Total number of bytes read by this server from network.', 'counter'],
  ['bytes_written', 'written_bytes_total', 'Total number of bytes sent by this server to network.', 'counter'],
  ['curr_connections', 'current_connections', 'Current number of open connections.', 'gauge'],
  ['total_connections', 'connections_total', 'Total number of connections opened since the server started running.', 'counter'],
  ['rejected_connections', 'connections_rejected_total', "Total number of connections rejected due to hitting the memcached's -c limit in maxconns_fast mode.", 'counter'],
  ['conn_yields', 'connections_yielded_total', "Total number of connections yielded running due to hitting the memcached's -R limit.", 'counter'],
  ['evictions', 'items_evicted_total', 'Total number of valid items removed from cache to free memory for new items.', 'counter'],
  ['reclaimed', 'items_reclaimed_total', 'Total number of times an entry was stored using memory from an expired entry.', 'counter'],
  ['store_too_large', 'item_too_large_total', 'The number of times an item exceeded the max-item-size when being stored.', 'counter'],
  ['store_no_memory', 'item_no_memory_total', 'The number of times an item could not be stored due to no more memory.', 'counter'],
  ['accepting_conns', 'accepting_connections', 'The Memcached server is currently accepting new connections.', 'gauge'],
  ['listen_disabled_num', 'connections_listener_disabled_total', 'Number of times that memcached has hit its connections limit and disabled its listener.', 'counter'],
  ['direct_reclaims', 'direct_reclaims_total', 'Times worker threads had to directly reclaim or evict items.', 'counter'],
  ['lru_crawler_starts', 'lru_crawler_starts_total', 'Times an LRU crawler was started.', 'counter'],
  ['crawler_items_checked', 'lru_crawler_items_checked_total', 'Total items examined by LRU Crawler.', 'counter'],
  ['crawler_reclaimed', 'lru_crawler_reclaimed_total', 'Total items freed by LRU Crawler.', 'counter'],
  ['moves_to_cold', 'lru_crawler_moves_to_cold_total', "Total number of items moved from HOT/WARM to COLD LRU's.", 'counter'],
  ['moves_to_warm', 'lru_crawler_moves_to_warm_total', 'Total number of items moved from COLD to WARM LRU.', 'counter'],
  ['moves_within_lru', 'lru_crawler_moves_within_lru_total', "Total number of items reshuffled within HOT or WARM LRU's.", 'counter'],
];

/** From `stats settings`; the crawler's only when lru_crawler is yes, as in the exporter. */
const SETTINGS: Array<[string, string, string, Read?]> = [['maxconns', 'max_connections', 'Maximum number of clients allowed.']];
const CRAWLER_SETTINGS: Array<[string, string, string, Read?]> = [
  ['lru_crawler', 'lru_crawler_enabled', 'Whether the LRU crawler is enabled.', yes],
  ['lru_crawler_sleep', 'lru_crawler_sleep', 'Microseconds to sleep between LRU crawls.'],
  ['lru_crawler_tocrawl', 'lru_crawler_to_crawl', 'Max items to crawl per slab per run.'],
  ['lru_maintainer_thread', 'lru_crawler_maintainer_thread', 'Split LRU mode and background threads.', yes],
  ['hot_lru_pct', 'lru_crawler_hot_percent', 'Percent of slab memory reserved for HOT LRU.'],
  ['warm_lru_pct', 'lru_crawler_warm_percent', 'Percent of slab memory reserved for WARM LRU.'],
  ['hot_max_factor', 'lru_crawler_hot_max_factor', 'Set idle age of HOT LRU to COLD age * this'],
  ['warm_max_factor', 'lru_crawler_warm_max_factor', 'Set idle age of WARM LRU to COLD age * this'],
];

/** `stats items` fields per class: [field, series name, help, type]. The help texts are the exporter's, typos included. */
const ITEMS: Array<[string, string, string, Kind]> = [
  ['number', 'slab_current_items', 'Number of items currently stored in this slab class.', 'gauge'],
  ['age', 'slab_items_age_seconds', 'Number of seconds the oldest item has been in the slab class.', 'gauge'],
  ['number_hot', 'slab_hot_items', 'Number of items presently stored in the HOT LRU.', 'gauge'],
  ['number_warm', 'slab_warm_items', 'Number of items presently stored in the WARM LRU.', 'gauge'],
  ['number_cold', 'slab_cold_items', 'Number of items presently stored in the COLD LRU.', 'gauge'],
  ['number_temp', 'slab_temporary_items', 'Number of items presently stored in the TEMPORARY LRU.', 'gauge'],
  ['age_hot', 'slab_hot_age_seconds', 'Age of the oldest item in HOT LRU.', 'gauge'],
  ['age_warm', 'slab_warm_age_seconds', 'Age of the oldest item in HOT LRU.', 'gauge'],
  ['crawler_reclaimed', 'slab_items_crawler_reclaimed_total', 'Number of items freed by the LRU Crawler.', 'counter'],
  ['evicted', 'slab_items_evicted_total', 'Total number of times an item had to be evicted from the LRU before it expired.', 'counter'],
  ['evicted_nonzero', 'slab_items_evicted_nonzero_total', 'Total number of times an item which had an explicit expire time set had to be evicted from the LRU before it expired.', 'counter'],
  ['evicted_time', 'slab_items_evicted_time_seconds', 'Seconds since the last access for the most recent item evicted from this class.', 'counter'],
  ['evicted_unfetched', 'slab_items_evicted_unfetched_total', 'Total nmber of items evicted and never fetched.', 'counter'],
  ['expired_unfetched', 'slab_items_expired_unfetched_total', 'Total number of valid items evicted from the LRU which were never touched after being set.', 'counter'],
  ['outofmemory', 'slab_items_outofmemory_total', 'Total number of items for this slab class that have triggered an out of memory error.', 'counter'],
  ['reclaimed', 'slab_items_reclaimed_total', 'Total number of items reclaimed.', 'counter'],
  ['tailrepairs', 'slab_items_tailrepairs_total', 'Total number of times the entries for a particular ID need repairing.', 'counter'],
  ['mem_requested', 'slab_mem_requested_bytes', 'Number of bytes of memory actual items take up within a slab.', 'counter'],
  ['moves_to_cold', 'slab_items_moves_to_cold', 'Number of items moved from HOT or WARM into COLD.', 'counter'],
  ['moves_to_warm', 'slab_items_moves_to_warm', 'Number of items moves from COLD into WARM.', 'counter'],
  ['moves_within_lru', 'slab_items_moves_within_lru', 'Number of times active items were bumped within HOT or WARM.', 'counter'],
];

/** `stats items` hits per LRU segment: [field, lru label], all in slab_lru_hits_total{slab,lru}. */
const LRU_HITS: Array<[string, string]> = [['hits_to_hot', 'hot'], ['hits_to_warm', 'warm'], ['hits_to_cold', 'cold'], ['hits_to_temp', 'temporary']];
const LRU_HITS_HELP = 'Number of get_hits to the LRU.';

/**
 * `stats slabs` fields per class. mem_requested is left out here: memcached 1.6
 * sends it in `stats items` only, and one series may not come twice.
 */
const SLABS: Array<[string, string, string]> = [
  ['chunk_size', 'slab_chunk_size_bytes', 'Number of bytes allocated to each chunk within this slab class.'],
  ['chunks_per_page', 'slab_chunks_per_page', 'Number of chunks within a single page for this slab class.'],
  ['total_pages', 'slab_current_pages', 'Number of pages allocated to this slab class.'],
  ['total_chunks', 'slab_current_chunks', 'Number of chunks allocated to this slab class.'],
  ['used_chunks', 'slab_chunks_used', 'Number of chunks allocated to an item.'],
  ['free_chunks', 'slab_chunks_free', 'Number of chunks not yet allocated items.'],
  ['free_chunks_end', 'slab_chunks_free_end', 'Number of free chunks at the end of the last allocated page.'],
];

const COMMANDS_HELP = 'Total number of all requests broken down by command (get, set, etc.) and status.';
const SLAB_COMMANDS_HELP = 'Total number of all requests broken down by command (get, set, etc.) and status per slab.';
const COMMANDS = ['get', 'delete', 'incr', 'decr', 'cas', 'touch'];

function asStats(pairs: Array<[string, string | number]> | null): Stats {
  return new Map((pairs ?? []).map(([name, value]) => [name, String(value)]));
}

/** Splits `items:<class>:<field>` or `<class>:<field>` lines by class. */
function byClass(stats: Stats): Map<string, Stats> {
  const classes = new Map<string, Stats>();
  for (const [name, value] of stats) {
    const match = /^(?:items:)?(\d+):(\w+)$/.exec(name);
    if (match === null) continue;
    let fields = classes.get(match[1]!);
    if (fields === undefined) classes.set(match[1]!, (fields = new Map()));
    fields.set(match[2]!, value);
  }
  return classes;
}

/** Every exporter series Mnemo has data for, from one reading of its stats. */
export function exporterFamilies(ctx: ServerContext): Family[] {
  const general = asStats(statsPairs(ctx, ''));
  const settings = asStats(statsPairs(ctx, 'settings'));
  const items = asStats(statsPairs(ctx, 'items'));
  const slabs = asStats(statsPairs(ctx, 'slabs'));
  const families = new Map<string, Family>();
  const add = (suffix: string, help: string, type: Kind, value: number | null, labels: Record<string, string> = {}): void => {
    if (value === null) return;
    const name = `memcached_${suffix}`;
    let family = families.get(name);
    if (family === undefined) families.set(name, (family = { name, help, type, samples: [] }));
    family.samples.push({ labels, value });
  };

  add('up', 'Could the memcached server be reached.', 'gauge', 1);
  add('version', 'The version of this memcached server.', 'gauge', 1, { version: general.get('version') ?? '' });
  for (const command of COMMANDS) {
    add('commands_total', COMMANDS_HELP, 'counter', number(general, `${command}_hits`), { command, status: 'hit' });
    add('commands_total', COMMANDS_HELP, 'counter', number(general, `${command}_misses`), { command, status: 'miss' });
  }
  add('commands_total', COMMANDS_HELP, 'counter', number(general, 'cas_badval'), { command: 'cas', status: 'badval' });
  add('commands_total', COMMANDS_HELP, 'counter', number(general, 'cmd_flush'), { command: 'flush', status: 'hit' });
  // The exporter counts sets as cmd_set less the cas commands (which memcached counts in cmd_set).
  const sets = number(general, 'cmd_set');
  const cas = ['cas_misses', 'cas_hits', 'cas_badval'].map((key) => number(general, key));
  if (sets !== null && cas.every((value) => value !== null)) {
    add('commands_total', COMMANDS_HELP, 'counter', sets - cas.reduce((sum: number, value) => sum + value!, 0), { command: 'set', status: 'hit' });
  }
  for (const [key, suffix, help, type, read] of GENERAL) add(suffix, help, type, (read ?? number)(general, key));
  add('malloced_bytes', 'Number of bytes of memory allocated to slab pages.', 'gauge', number(slabs, 'total_malloced'));
  for (const [key, suffix, help, read] of SETTINGS) add(suffix, help, 'gauge', (read ?? number)(settings, key));
  if (settings.get('lru_crawler') === 'yes') {
    for (const [key, suffix, help, read] of CRAWLER_SETTINGS) add(suffix, help, 'gauge', (read ?? number)(settings, key));
  }
  for (const [slab, fields] of byClass(items)) {
    for (const [field, suffix, help, type] of ITEMS) add(suffix, help, type, number(fields, field), { slab });
    for (const [field, lru] of LRU_HITS) add('slab_lru_hits_total', LRU_HITS_HELP, 'counter', number(fields, field), { slab, lru });
  }
  for (const [slab, fields] of byClass(slabs)) {
    for (const command of COMMANDS) {
      add('slab_commands_total', SLAB_COMMANDS_HELP, 'counter', number(fields, `${command}_hits`), { slab, command, status: 'hit' });
    }
    add('slab_commands_total', SLAB_COMMANDS_HELP, 'counter', number(fields, 'cas_badval'), { slab, command: 'cas', status: 'badval' });
    // Per class, the exporter takes out of cmd_set the cas commands that reached an item.
    const classSets = number(fields, 'cmd_set');
    const [casHits, casBadval] = [number(fields, 'cas_hits'), number(fields, 'cas_badval')];
    if (classSets !== null && casHits !== null && casBadval !== null) {
      add('slab_commands_total', SLAB_COMMANDS_HELP, 'counter', classSets - casHits - casBadval, { slab, command: 'set', status: 'hit' });
    }
    for (const [field, suffix, help] of SLABS) add(suffix, help, 'gauge', number(fields, field), { slab });
  }
  return [...families.values()];
}

/** The names, help and types of every family exporterFamilies() can return. */
const DECLARED: Array<[string, string, Kind]> = [
  ['up', 'Could the memcached server be reached.', 'gauge'],
  ['version', 'The version of this memcached server.', 'gauge'],
  ['commands_total', COMMANDS_HELP, 'counter'],
  ...GENERAL.map(([, suffix, help, type]): [string, string, Kind] => [suffix, help, type]),
  ['malloced_bytes', 'Number of bytes of memory allocated to slab pages.', 'gauge'],
  ...[...SETTINGS, ...CRAWLER_SETTINGS].map(([, suffix, help]): [string, string, Kind] => [suffix, help, 'gauge']),
  ...ITEMS.map(([, suffix, help, type]): [string, string, Kind] => [suffix, help, type]),
  ['slab_lru_hits_total', LRU_HITS_HELP, 'counter'],
  ['slab_commands_total', SLAB_COMMANDS_HELP, 'counter'],
  ...SLABS.map(([, suffix, help]): [string, string, Kind] => [suffix, help, 'gauge']),
];

/**
 * Registers the exporter's series on the /metrics registry. prom-client asks each
 * registered metric for its values in the same tick; one reading of the stats
 * serves them all, so the series of one scrape agree with each other.
 */
export function registerExporterMetrics(ctx: ServerContext, registry: Registry): void {
  let reading: Map<string, Family> | null = null;
  const samplesOf = (name: string): Sample[] => {
    if (reading === null) {
      reading = new Map(exporterFamilies(ctx).map((family) => [family.name, family]));
      setImmediate(() => (reading = null));
    }
    return reading.get(name)?.samples ?? [];
  };
  for (const [suffix, help, type] of DECLARED) {
    const name = `memcached_${suffix}`;
    const metric = {
      name, help, type,
      get: async () => ({ name, help, type, aggregator: 'sum', values: samplesOf(name) }),
      reset: () => {},
    };
    registry.registerMetric(metric as unknown as Metric);
  }
}
