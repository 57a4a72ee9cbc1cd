import type { ServerContext } from '../server/context.js';
import { BOUNDS, FAMILIES } from './latency.js';

/** 15 minutes at one sample a second. */
export const HISTORY_SECONDS = 900;

/**
 * What one sample holds, one Float64Array column each. Counters are kept as they
 * are (the page turns them into rates); latency quantiles are computed at sample
 * time from the histogram's counts since the previous sample.
 */
const BASE_COLUMNS = [
  'time',
  ...FAMILIES.map((family) => `cmd_${family}`),
  'get_hits', 'get_misses',
  'latency_p50_ms', 'latency_p99_ms',
  'items', 'bytes', 'limit_bytes',
  'evictions', 'expired',
  'connections', 'rejected_connections',
] as const;
const DISK_COLUMNS = ['disk_bytes', 'disk_hits', 'disk_commit_avg_ms', 'disk_full'] as const;

/**
 * The dashboard's memory: the last HISTORY_SECONDS samples of the server's own
 * counters and gauges in a fixed ring of typed arrays, taken on each tick of the
 * server clock that moves it on (once a second; `debugtime` under --test-clock moves
 * it too, so tests need not wait). A sample writes numbers into the ring and
 * allocates nothing, except that the disk tier's and the peers' figures are read
 * from their `stats` lines (small arrays, once a second, only when they are on).
 */
export class History {
  readonly columns: readonly string[];
  private readonly data: Float64Array[];
  private readonly index = new Map<string, number>();
  /** Samples written so far (the ring holds the last HISTORY_SECONDS of them). */
  private written = 0;
  private lastTime = -1;
  /** Latency bucket counts, all families together, at the previous sample. */
  private readonly previousBuckets = new Float64Array(BOUNDS.length + 1);
  private readonly bucketDelta = new Float64Array(BOUNDS.length + 1);
  private readonly peerCount: number;
  /** Where put() writes next: the sample's row and the next column. */
  private row = 0;
  private col = 0;
  private readonly put = (value: number): void => {
    this.data[this.col++]![this.row] = value;
  };

  constructor(private readonly ctx: ServerContext) {
    this.peerCount = ctx.config.peers.length;
    const columns: string[] = [...BASE_COLUMNS];
    if (ctx.persistence !== null) columns.push(...DISK_COLUMNS);
    for (let peer = 0; peer < this.peerCount; peer++) columns.push(`peer_${peer}_connected`, `peer_${peer}_lag_ms`);
    this.columns = columns;
    columns.forEach((name, i) => this.index.set(name, i));
    this.data = columns.map(() => new Float64Array(HISTORY_SECONDS));
    this.sumBuckets(this.previousBuckets);
  }

  /** Subscribes to the server clock; the first sample is taken now. */
  start(): void {
    this.sample(this.ctx.clock.now);
    this.ctx.clock.onTick((now) => this.sample(now));
  }

  /** Takes one sample stamped `now` (unix seconds), unless one was already taken at that second. */
  sample(now: number): void {
    if (now <= this.lastTime) return;
    this.lastTime = now;
    const { counters: c, store, latency } = this.ctx;
    const row = this.written % HISTORY_SECONDS;
    this.row = row;
    this.col = 0;
    const put = this.put;
    put(now);
    for (let family = 0; family < FAMILIES.length; family++) put(latency.totals[family]!);
    put(c.get_hits);
    put(c.get_misses);
    this.sumBuckets(this.bucketDelta);
    for (let b = 0; b < this.bucketDelta.length; b++) {
      const current = this.bucketDelta[b]!;
      this.bucketDelta[b] = current - this.previousBuckets[b]!;
      this.previousBuckets[b] = current;
    }
    put(quantileMs(this.bucketDelta, 0.5));
    put(quantileMs(this.bucketDelta, 0.99));
    put(store.itemCount);
    put(store.bytesUsed);
    put(store.bytesLimit);
    put(c.evictions);
    put(c.reclaimed);
    put(c.curr_connections);
    put(c.rejected_connections);
    const persistence = this.ctx.persistence;
    if (persistence !== null) {
      let bytes = 0, hits = 0, commitMs = 0, full = 0, tierBytes = -1;
      for (const [name, value] of persistence.stats()) {
        if (name === 'disk_bytes') bytes = Number(value);
        else if (name === 'disk_tier_bytes') tierBytes = Number(value);
        else if (name === 'disk_hits') hits = Number(value);
        else if (name === 'disk_commit_avg_ms') commitMs = Number(value);
        else if (name === 'disk_full') full = Number(value);
      }
      put(tierBytes >= 0 ? tierBytes : bytes);
      put(hits);
      put(commitMs);
      put(full);
    }
    if (this.peerCount > 0) {
      const start = this.col;
      for (let peer = 0; peer < this.peerCount; peer++) {
        this.data[start + 2 * peer]![row] = 0;
        this.data[start + 2 * peer + 1]![row] = NaN;
      }
      for (const [name, value] of this.ctx.replication?.stats() ?? []) {
        const match = /^peer_(\d+)_(state|lag_ms)$/.exec(name);
        if (match === null || Number(match[1]) >= this.peerCount) continue;
        const peerCol = start + 2 * Number(match[1]);
        if (match[2] === 'state') this.data[peerCol]![row] = value === 'connected' ? 1 : 0;
        else this.data[peerCol + 1]![row] = Number(value);
      }
    }
    this.written++;
  }

  /** Samples with time > since, oldest first, as one array per column (JSON for the page). */
  since(since: number): { columns: readonly string[]; rows: number; data: Record<string, Array<number | null>> } {
    const count = Math.min(this.written, HISTORY_SECONDS);
    const first = this.written - count;
    const time = this.data[0]!;
    let from = first;
    while (from < this.written && time[from % HISTORY_SECONDS]! <= since) from++;
    const data: Record<string, Array<number | null>> = {};
    this.columns.forEach((name, c) => {
      const column = this.data[c]!;
      const values: Array<number | null> = [];
      for (let i = from; i < this.written; i++) {
        const value = column[i % HISTORY_SECONDS]!;
        values.push(Number.isFinite(value) ? value : null);
      }
      data[name] = values;
    });
    return { columns: this.columns, rows: this.written - from, data };
  }

  /** Memory the ring holds, for the tests and the README's claim. */
  get bytes(): number {
    return this.data.length * HISTORY_SECONDS * Float64Array.BYTES_PER_ELEMENT;
  }

  private sumBuckets(into: Float64Array): void {
    const { counts } = this.ctx.latency;
    into.fill(0);
    for (let family = 0; family < FAMILIES.length; family++) {
      for (let b = 0; b <= BOUNDS.length; b++) into[b]! += counts[family * (BOUNDS.length + 1) + b]!;
    }
  }
}

/**
 * The q-quantile in milliseconds of the commands counted in buckets, interpolated
 * linearly inside its bucket as Prometheus's histogram_quantile does; NaN when no
 * command ran (the page shows a gap), the top bound when it lies in +Inf.
 */
function quantileMs(buckets: Float64Array, q: number): number {
  let total = 0;
  for (let b = 0; b < buckets.length; b++) total += buckets[b]!;
  if (total === 0) return NaN;
  const rank = q * total;
  let below = 0;
  for (let b = 0; b < buckets.length; b++) {
    const count = buckets[b]!;
    if (below + count >= rank && count > 0) {
      if (b === BOUNDS.length) return BOUNDS[BOUNDS.length - 1]! * 1000;
      const lower = b === 0 ? 0 : BOUNDS[b - 1]!;
      const upper = BOUNDS[b]!;
      return (lower + ((upper - lower) * (rank - below)) / count) * 1000;
    }
    below += count;
  }
  return BOUNDS[BOUNDS.length - 1]! * 1000;
}
