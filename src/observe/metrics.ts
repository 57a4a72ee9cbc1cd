import { collectDefaultMetrics, Counter, Gauge, Registry, type Metric } from 'prom-client';
import type { ServerContext } from '../context.js';
import { BOUNDS, FAMILIES } from './latency.js';

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
  return registry;
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
