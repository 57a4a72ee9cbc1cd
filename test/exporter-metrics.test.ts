/**
 * /metrics carries prometheus/memcached_exporter's series (names, types, label sets)
 * beside the mnemo_ ones, with the values the exporter would compute from this
 * server's `stats`, `stats settings`, `stats items` and `stats slabs`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { connectClient, statLines } from './helpers/client.js';
import { startMnemo } from './helpers/mnemo.js';

interface Series {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Prometheus text exposition: the samples, and each family's TYPE. */
function parseExposition(text: string): { series: Series[]; types: Map<string, string> } {
  const series: Series[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type !== null) types.set(type[1]!, type[2]!);
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    assert.ok(match, `not exposition format: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)) labels[key!] = value!;
    series.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return { series, types };
}

const timeval = (text: string): number => Number(text.split('.')[0]) + Number(text.split('.')[1]) / 1e6;

/**
 * The exporter's series from its collector (pkg/exporter/exporter.go) that Mnemo
 * has stats for: [name, type, label names, the stat it reads].
 */
const GENERAL: Array<[string, string, string, ((t: string) => number)?]> = [
  ['memcached_uptime_seconds', 'counter', 'uptime'],
  ['memcached_time_seconds', 'gauge', 'time'],
  ['memcached_process_user_cpu_seconds_total', 'counter', 'rusage_user', timeval],
  ['memcached_process_system_cpu_seconds_total', 'counter', 'rusage_system', timeval],
  ['memcached_current_bytes', 'gauge', 'bytes'],
  ['memcached_limit_bytes', 'gauge', 'limit_maxbytes'],
  ['memcached_current_items', 'gauge', 'curr_items'],
  ['memcached_items_total', 'counter', 'total_items'],
  ['memcached_read_bytes_total', 'counter', 'bytes_read'],
  ['memcached_written_bytes_total', 'counter', 'bytes_written'],
  ['memcached_current_connections', 'gauge', 'curr_connections'],
  ['memcached_connections_total', 'counter', 'total_connections'],
  ['memcached_connections_rejected_total', 'counter', 'rejected_connections'],
  ['memcached_connections_yielded_total', 'counter', 'conn_yields'],
  ['memcached_items_evicted_total', 'counter', 'evictions'],
  ['memcached_items_reclaimed_total', 'counter', 'reclaimed'],
  ['memcached_item_too_large_total', 'counter', 'store_too_large'],
  ['memcached_item_no_memory_total', 'counter', 'store_no_memory'],
  ['memcached_accepting_connections', 'gauge', 'accepting_conns'],
  ['memcached_connections_listener_disabled_total', 'counter', 'listen_disabled_num'],
  ['memcached_direct_reclaims_total', 'counter', 'direct_reclaims'],
  ['memcached_lru_crawler_starts_total', 'counter', 'lru_crawler_starts'],
  ['memcached_lru_crawler_items_checked_total', 'counter', 'crawler_items_checked'],
  ['memcached_lru_crawler_reclaimed_total', 'counter', 'crawler_reclaimed'],
  ['memcached_lru_crawler_moves_to_cold_total', 'counter', 'moves_to_cold'],
  ['memcached_lru_crawler_moves_to_warm_total', 'counter', 'moves_to_warm'],
  ['memcached_lru_crawler_moves_within_lru_total', 'counter', 'moves_within_lru'],
];
/** From `stats settings`, present while lru_crawler is yes: [name, setting, parse]. */
const CRAWLER_SETTINGS: Array<[string, string, ((t: string) => number)?]> = [
  ['memcached_lru_crawler_enabled', 'lru_crawler', (t) => (t === 'yes' ? 1 : 0)],
  ['memcached_lru_crawler_sleep', 'lru_crawler_sleep'],
  ['memcached_lru_crawler_to_crawl', 'lru_crawler_tocrawl'],
  ['memcached_lru_crawler_maintainer_thread', 'lru_maintainer_thread', (t) => (t === 'yes' ? 1 : 0)],
  ['memcached_lru_crawler_hot_percent', 'hot_lru_pct'],
  ['memcached_lru_crawler_warm_percent', 'warm_lru_pct'],
  ['memcached_lru_crawler_hot_max_factor', 'hot_max_factor'],
  ['memcached_lru_crawler_warm_max_factor', 'warm_max_factor'],
];
const ITEMS: Array<[string, string, string]> = [
  ['memcached_slab_current_items', 'gauge', 'number'],
  ['memcached_slab_items_age_seconds', 'gauge', 'age'],
  ['memcached_slab_hot_items', 'gauge', 'number_hot'],
  ['memcached_slab_warm_items', 'gauge', 'number_warm'],
  ['memcached_slab_cold_items', 'gauge', 'number_cold'],
  ['memcached_slab_hot_age_seconds', 'gauge', 'age_hot'],
  ['memcached_slab_warm_age_seconds', 'gauge', 'age_warm'],
  ['memcached_slab_items_crawler_reclaimed_total', 'counter', 'crawler_reclaimed'],
  ['memcached_slab_items_evicted_nonzero_total', 'counter', 'evicted_nonzero'],
  ['memcached_slab_items_tailrepairs_total', 'counter', 'tailrepairs'],
  ['memcached_slab_items_moves_to_cold', 'counter', 'moves_to_cold'],
  ['memcached_slab_items_moves_to_warm', 'counter', 'moves_to_warm'],
  ['memcached_slab_items_moves_within_lru', 'counter', 'moves_within_lru'],
  ['memcached_slab_items_evicted_total', 'counter', 'evicted'],
  ['memcached_slab_items_evicted_time_seconds', 'counter', 'evicted_time'],
  ['memcached_slab_items_evicted_unfetched_total', 'counter', 'evicted_unfetched'],
  ['memcached_slab_items_expired_unfetched_total', 'counter', 'expired_unfetched'],
  ['memcached_slab_items_outofmemory_total', 'counter', 'outofmemory'],
  ['memcached_slab_items_reclaimed_total', 'counter', 'reclaimed'],
  ['memcached_slab_mem_requested_bytes', 'counter', 'mem_requested'],
];
const SLABS: Array<[string, string]> = [
  ['memcached_slab_chunk_size_bytes', 'chunk_size'],
  ['memcached_slab_chunks_per_page', 'chunks_per_page'],
  ['memcached_slab_current_pages', 'total_pages'],
  ['memcached_slab_current_chunks', 'total_chunks'],
  ['memcached_slab_chunks_used', 'used_chunks'],
  ['memcached_slab_chunks_free', 'free_chunks'],
  ['memcached_slab_chunks_free_end', 'free_chunks_end'],
];

describe("memcached_exporter's series on /metrics", () => {
  it('serves every exporter series Mnemo has stats for, with its labels, type and value', async () => {
    // -m 1: small enough that a few hundred 10 KB values evict.
    const server = await startMnemo(['--metrics-port', '0', '-m', '1', '-I', '128k']);
    const metricsUrl = /mnemo metrics on (http:\/\/\S+)/.exec(server.stderr())![1]!;
    const client = await connectClient(server.port);
    try {
      // Known traffic: 3 get hits, 2 misses, a flush, cas hit/miss/badval, touch, incr/decr, delete.
      await client.request('flush_all\r\n', 'OK\r\n');
      await client.request('set a 0 0 1\r\nx\r\nset n 0 0 1\r\n5\r\n', 'STORED\r\nSTORED\r\n');
      await client.request('get a\r\nget a\r\nget n\r\nget nope\r\nget gone\r\n', 'END\r\nEND\r\n');
      const gets = await client.request('gets a\r\n', 'END\r\n');
      const cas = /VALUE a 0 1 (\d+)/.exec(gets)![1]!;
      await client.request(`cas a 0 0 1 ${cas}\r\ny\r\ncas a 0 0 1 ${cas}\r\nz\r\ncas nope 0 0 1 1\r\nq\r\n`, 'NOT_FOUND\r\n');
      await client.request('touch a 100\r\ntouch nope 1\r\nincr n 2\r\ndecr nope 1\r\ndelete n\r\ndelete n\r\n', 'NOT_FOUND\r\nDELETED\r\nNOT_FOUND\r\n');
      const big = 'v'.repeat(10_000);
      let batch = '';
      for (let i = 0; i < 300; i++) batch += `set big${i} 0 0 ${big.length} noreply\r\n${big}\r\n`;
      await client.request(`${batch}mn\r\n`, 'MN\r\n');

      const before = await statLines(client);
      const settings = await statLines(client, 'settings');
      const items = await statLines(client, 'items');
      const slabs = await statLines(client, 'slabs');
      const { series, types } = parseExposition(await (await fetch(`${metricsUrl}/metrics`)).text());
      const after = await statLines(client);
      // The LRU maintainer may still move items, and ages grow with the clock: such a value lies between two readings.
      const itemsAfter = await statLines(client, 'items');
      const find = (name: string, labels: Record<string, string> = {}): Series[] =>
        series.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
      const one = (name: string, labels: Record<string, string> = {}): number => {
        const found = find(name, labels);
        assert.equal(found.length, 1, `${name}${JSON.stringify(labels)}: ${found.length} series`);
        assert.deepEqual(Object.keys(found[0]!.labels).sort(), Object.keys(labels).sort(), `${name}: label set`);
        return found[0]!.value;
      };

      assert.equal(one('memcached_up'), 1);
      assert.equal(types.get('memcached_up'), 'gauge');
      assert.equal(one('memcached_version', { version: before.get('version')! }), 1);

      // commands_total{command,status}: the exporter's pairs, from the same counters.
      assert.equal(types.get('memcached_commands_total'), 'counter');
      const expected: Array<[string, string, number]> = [
        ['get', 'hit', 4], ['get', 'miss', 2], ['cas', 'hit', 1], ['cas', 'badval', 1], ['cas', 'miss', 1],
        ['touch', 'hit', 1], ['touch', 'miss', 1], ['incr', 'hit', 1], ['incr', 'miss', 0], ['decr', 'hit', 0],
        ['decr', 'miss', 1], ['delete', 'hit', 1], ['delete', 'miss', 1], ['flush', 'hit', 1],
        // cmd_set counts the three cas commands; the exporter takes them out of set.
        ['set', 'hit', 302],
      ];
      for (const [command, status, value] of expected) {
        assert.equal(one('memcached_commands_total', { command, status }), value, `${command} ${status}`);
      }
      assert.equal(find('memcached_commands_total').length, 15);
      assert.equal(Number(before.get('cmd_set')) - 3, 302);

      for (const [name, type, stat, parse] of GENERAL) {
        assert.equal(types.get(name), type, `${name} type`);
        const value = one(name);
        const low = (parse ?? Number)(before.get(stat)!);
        const high = (parse ?? Number)(after.get(stat)!);
        assert.ok(value >= Math.min(low, high) && value <= Math.max(low, high), `${name} ${value} not within ${stat} ${low}..${high}`);
      }
      assert.ok(one('memcached_items_evicted_total') > 0, 'the 10 KB values evicted');
      assert.equal(one('memcached_limit_bytes'), 1024 * 1024);
      assert.equal(one('memcached_malloced_bytes'), Number(slabs.get('total_malloced')));
      assert.equal(one('memcached_max_connections'), Number(settings.get('maxconns')));
      assert.equal(settings.get('lru_crawler'), 'yes');
      for (const [name, setting, parse] of CRAWLER_SETTINGS) {
        assert.equal(types.get(name), 'gauge', `${name} type`);
        assert.equal(one(name), (parse ?? Number)(settings.get(setting)!), name);
      }
      assert.equal(one('memcached_lru_crawler_hot_percent'), 20);
      // No TEMP LRU without -o temporary_ttl, so no series for it, as the exporter skips a missing field.
      assert.equal(find('memcached_slab_temporary_items').length, 0);

      // memcached_slab_*{slab}: one series per class `stats items` / `stats slabs` list.
      const classesIn = (group: Map<string, string>, pattern: RegExp): string[] =>
        [...new Set([...group.keys()].map((k) => pattern.exec(k)?.[1]).filter((c): c is string => c !== undefined))];
      const itemClasses = classesIn(items, /^items:(\d+):number$/);
      const slabClasses = classesIn(slabs, /^(\d+):chunk_size$/);
      assert.ok(itemClasses.length >= 2, `items in at least two classes: ${itemClasses}`);
      for (const [name, type, field] of ITEMS) {
        assert.equal(types.get(name), type, `${name} type`);
        assert.equal(find(name).length, itemClasses.length, name);
        for (const slab of itemClasses) {
          const [low, high] = [Number(items.get(`items:${slab}:${field}`)), Number(itemsAfter.get(`items:${slab}:${field}`))];
          const value = one(name, { slab });
          assert.ok(value >= Math.min(low, high) && value <= Math.max(low, high), `${name} ${slab}: ${value} not within ${low}..${high}`);
        }
      }
      // slab_lru_hits_total{slab,lru}: hits_to_hot/warm/cold/temp; the 4 get hits are among them.
      assert.equal(types.get('memcached_slab_lru_hits_total'), 'counter');
      let lruHits = 0;
      for (const slab of itemClasses) {
        for (const [lru, field] of [['hot', 'hits_to_hot'], ['warm', 'hits_to_warm'], ['cold', 'hits_to_cold'], ['temporary', 'hits_to_temp']] as const) {
          const value = one('memcached_slab_lru_hits_total', { slab, lru });
          assert.equal(value, Number(items.get(`items:${slab}:${field}`)), `lru hits ${slab} ${lru}`);
          lruHits += value;
        }
      }
      assert.ok(lruHits >= 4, `${lruHits} LRU hits`);
      // slab_commands_total{slab,command,status}: stats slabs' per-class counters, set less cas_hits and cas_badval.
      assert.equal(types.get('memcached_slab_commands_total'), 'counter');
      const perClass = (command: string, status: string): number =>
        find('memcached_slab_commands_total', { command, status }).reduce((sum, s) => sum + s.value, 0);
      for (const slab of slabClasses) {
        const field = (name: string): number => Number(slabs.get(`${slab}:${name}`));
        for (const command of ['get', 'delete', 'incr', 'decr', 'cas', 'touch']) {
          assert.equal(one('memcached_slab_commands_total', { slab, command, status: 'hit' }), field(`${command}_hits`), `${slab} ${command}`);
        }
        assert.equal(one('memcached_slab_commands_total', { slab, command: 'cas', status: 'badval' }), field('cas_badval'));
        assert.equal(one('memcached_slab_commands_total', { slab, command: 'set', status: 'hit' }), field('cmd_set') - field('cas_hits') - field('cas_badval'));
      }
      assert.deepEqual(
        [perClass('get', 'hit'), perClass('cas', 'hit'), perClass('cas', 'badval'), perClass('touch', 'hit'), perClass('incr', 'hit'), perClass('delete', 'hit')],
        [4, 1, 1, 1, 1, 1],
      );
      for (const [name, field] of SLABS) {
        assert.equal(types.get(name), 'gauge', `${name} type`);
        assert.equal(find(name).length, slabClasses.length, name);
        for (const slab of slabClasses) assert.equal(one(name, { slab }), Number(slabs.get(`${slab}:${field}`)), `${name} ${slab}`);
      }
      // The class that holds the 10 KB values evicted, and says so in its own series.
      const bigClass = itemClasses.find((slab) => Number(items.get(`items:${slab}:evicted`)) > 0)!;
      assert.ok(one('memcached_slab_items_evicted_total', { slab: bigClass }) > 0);
      // Every mnemo_ series is still there beside them.
      assert.ok(find('mnemo_commands_total').length > 0);
    } finally {
      client.close();
      await server.stop();
    }
  });
});
