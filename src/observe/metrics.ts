import { collectDefaultMetrics, Counter, Gauge, Registry, type Metric } from 'prom-client';
import type { ServerContext } from '../server/context.js';
import { BOUNDS, FAMILIES } from './latency.js';
import { registerExporterMetrics } from './memcached-exporter.js';

/**
 * Prometheus metrics. Every series is read from the server's own counters at
 * scrape time, so serving metrics adds nothing to the request path but the
 * latency clock reads (see latency.ts).
 */
export function createMetrics(ctx: ServerContext): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'mnemo_' });
  const c = ctx.counters;

  const counter = (name: string, help: string, read: () => number): void => {
    registry.registerMetric(
      new Counter({
        name, help, registers: [],
        collect() {
          this.reset();
          this.inc(read());
        },
      }),
    );
  };
  const gauge = (name: string, help: string, read: () => number): void => {
    registry.registerMetric(new Gauge({ name, help, registers: [], collect() { this.set(read()); } }));
  };

  const results: Array<[string, string, () => number]> = [
    ['get', 'hit', () => c.get_hits],
    ['get', 'miss', () => c.get_misses],
    ['touch', 'hit', () => c.touch_hits],
    ['touch', 'miss', () => c.touch_misses],
    ['set', 'stored', () => c.store_stored],
    ['set', 'not_stored', () => c.store_not_stored],
    ['set', 'exists', () => c.store_exists],
    ['set', 'not_found', () => c.store_not_found],
    ['delete', 'hit', () => c.delete_hits],
    ['delete', 'miss', () => c.delete_misses],
    ['incr', 'hit', () => c.incr_hits],
    ['incr', 'miss', () => c.incr_misses],
    ['decr', 'hit', () => c.decr_hits],
    ['decr', 'miss', () => c.decr_misses],
    ['flush', 'ok', () => c.cmd_flush],
  ];
  registry.registerMetric(
    new Counter({
      name: 'mnemo_commands_total',
      help: 'Commands by type and result, all protocols',
      labelNames: ['command', 'result'],
      registers: [],
      collect() {
        this.reset();
        for (const [command, result, read] of results) this.inc({ command, result }, read());
      },
    }),
  );
  counter('mnemo_read_bytes_total', 'Bytes received from clients', () => c.bytes_read);
  counter('mnemo_written_bytes_total', 'Bytes sent to clients', () => c.bytes_written);
  gauge('mnemo_items', 'Items stored now', () => ctx.store.itemCount);
  gauge('mnemo_memory_used_bytes', 'Item memory in use, counted as memcached counts it', () => ctx.store.bytesUsed);
  gauge('mnemo_memory_limit_bytes', 'Item memory limit (-m)', () => ctx.store.bytesLimit);
  counter('mnemo_evictions_total', 'Items evicted to make room', () => c.evictions);
  counter('mnemo_expired_total', 'Expired items reclaimed', () => c.reclaimed);
  gauge('mnemo_connections', 'Open client connections', () => c.curr_connections);
  counter('mnemo_connections_total', 'Client connections accepted', () => c.total_connections);
  counter('mnemo_connections_rejected_total', 'Connections refused over -c', () => c.rejected_connections);
  registry.registerMetric(latencyHistogram(ctx) as unknown as Metric);
  if (ctx.persistence !== null) diskMetrics(ctx, counter, gauge);
  if (ctx.replication != null) peerMetrics(ctx, registry);
  registerExporterMetrics(ctx, registry);
  return registry;
}

type Register = (name: string, help: string, read: () => number) => void;

/** --data-dir: the tier's `stats` lines as series (read at scrape time). */
function diskMetrics(ctx: ServerContext, counter: Register, gauge: Register): void {
  const persistence = ctx.persistence!;
  const stat = (name: string) => (): number => Number(new Map(persistence.stats()).get(name) ?? 0);
  gauge('mnemo_disk_items', 'Items in the data dir', stat('disk_items'));
  gauge('mnemo_disk_used_bytes', 'LMDB pages the items use', stat('disk_bytes'));
  counter('mnemo_disk_hits_total', 'Memory misses found on disk', stat('disk_hits'));
  counter('mnemo_disk_promotions_total', 'Items brought from disk into memory', () => ctx.counters.disk_promotions);
  counter('mnemo_disk_commits_total', 'LMDB commits', stat('disk_commits'));
  counter('mnemo_disk_write_bytes_total', 'Bytes handed to LMDB to write (keys, records, expiry rows)', stat('disk_write_bytes'));
  gauge('mnemo_disk_commit_avg_seconds', 'Average time from a write to its commit', () => stat('disk_commit_avg_ms')() / 1000);
  counter('mnemo_disk_write_errors_total', 'Failed commits and flushes', stat('disk_write_errors'));
  gauge('mnemo_disk_full', '1 while the disk refuses writes', stat('disk_full'));
  gauge('mnemo_disk_free_bytes', "Free space of the data dir's file system at the last reading", stat('disk_free_bytes'));
  gauge('mnemo_disk_reserve_bytes', 'Free space below which changes are refused', stat('disk_reserve_bytes'));
  if (persistence.diskLimit !== null) {
    gauge('mnemo_disk_tier_bytes', 'Bytes the disk tier holds (--disk-limit)', stat('disk_tier_bytes'));
    gauge('mnemo_disk_limit_bytes', 'The disk tier limit (--disk-limit)', stat('disk_limit'));
    counter('mnemo_disk_evictions_total', 'Items the disk tier dropped past --disk-limit', stat('disk_evictions'));
  }
}

/** The `peer_<n>_<field>` lines of `stats`, one record per --peer. */
export function peersOf(pairs: Array<[string, string | number]>): Array<Map<string, string | number>> {
  const peers: Array<Map<string, string | number>> = [];
  for (const [name, value] of pairs) {
    const match = /^peer_(\d+)_(.+)$/.exec(name);
    if (match === null) continue;
    const index = Number(match[1]);
    (peers[index] ??= new Map()).set(match[2]!, value);
  }
  return peers.filter((peer) => peer !== undefined);
}

/** --peer: state, lag and traffic per peer, labelled with the peer's replication address. */
function peerMetrics(ctx: ServerContext, registry: Registry): void {
  const series: Array<[string, string, (peer: Map<string, string | number>) => number]> = [
    ['mnemo_replication_peer_connected', '1 while the link to the peer is connected', (p) => (p.get('state') === 'connected' ? 1 : 0)],
    ['mnemo_replication_lag_seconds', "How far this node is behind the peer's changes", (p) => Number(p.get('lag_ms')) / 1000],
    ['mnemo_replication_lag_changes', "The peer's changes not applied here yet", (p) => Number(p.get('lag_ops'))],
    ['mnemo_replication_sent_bytes', 'Bytes sent to the peer', (p) => Number(p.get('bytes_sent'))],
    ['mnemo_replication_received_bytes', 'Bytes received from the peer', (p) => Number(p.get('bytes_received'))],
  ];
  for (const [name, help, read] of series) {
    registry.registerMetric(
      new Gauge({
        name, help, labelNames: ['peer'], registers: [],
        collect() {
          this.reset();
          for (const peer of peersOf(ctx.replication!.stats())) this.set({ peer: String(peer.get('address')) }, read(peer));
        },
      }),
    );
  }
}

/** The per-family latency counts as a Prometheus histogram (buckets are cumulative there). */
function latencyHistogram(ctx: ServerContext) {
  const name = 'mnemo_command_duration_seconds';
  const help = 'Server time per command, by command family';
  return {
    name, help, type: 'histogram',
    get: async () => {
      const { counts, sums, totals } = ctx.latency;
      const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = [];
      FAMILIES.forEach((family, f) => {
        let cumulative = 0;
        BOUNDS.forEach((bound, b) => {
          cumulative += counts[f * (BOUNDS.length + 1) + b]!;
          values.push({ metricName: `${name}_bucket`, labels: { family, le: bound }, value: cumulative });
        });
        values.push({ metricName: `${name}_bucket`, labels: { family, le: '+Inf' }, value: totals[f]! });
        values.push({ metricName: `${name}_sum`, labels: { family }, value: sums[f]! });
        values.push({ metricName: `${name}_count`, labels: { family }, value: totals[f]! });
      });
      return { name, help, type: 'histogram', values, aggregator: 'sum' };
    },
    reset: () => {},
  };
}
