import type { SyncPolicy } from './store/disk.js';

/** Everything the server needs to know at start-up, after the command line was checked. */
export interface Config {
  /** TCP port; 0 picks a free one (memcached's -p -1). */
  port: number;
  listen: string;
  /** -U: 0 when UDP is off; -1 picks a free port. */
  udpPort: number;
  /** -s: listen on this unix socket only (memcached then opens no network listener). */
  unixSocket: string | null;
  /** -a: permission bits of the unix socket. */
  unixMask: number;
  /** -b: listen backlog. */
  backlog: number;

  /** -m, in bytes. */
  memoryLimit: number;
  /** -I, in bytes. */
  maxItemSize: number;
  /** -M turns evictions off. */
  evictions: boolean;
  connLimit: number;
  /** -t: accepted and reported; Node serves every connection on one event loop. */
  threads: number;
  /** -R: commands run for one connection before others get a turn. */
  reqsPerEvent: number;
  /** -o idle_timeout: seconds before an idle connection is closed; 0 never. */
  idleTimeout: number;

  /** 0 quiet, 1 -v, 2 -vv, 3 -vvv. */
  verbosity: number;
  daemon: boolean;
  pidFile: string | null;
  logFile: string | null;
  user: string | null;
  memoryFile: string | null;

  /** -A: the `shutdown` command is allowed. */
  shutdownEnabled: boolean;
  /** -F turns `flush_all` off. */
  flushEnabled: boolean;
  /** -C turns CAS off. */
  casEnabled: boolean;
  /** -X turns `stats cachedump` and `lru_crawler metadump` off. */
  dumpingEnabled: boolean;
  /** -B: which protocols a connection may speak (-S forces binary, as in memcached). */
  protocol: 'auto' | 'ascii' | 'binary';
  /** -S: binary connections must authenticate with SASL PLAIN against saslPasswordFile. */
  saslEnabled: boolean;
  /** --sasl-pwdb or MEMCACHED_SASL_PWDB: `user:password` lines. */
  saslPasswordFile: string | null;
  /** -Y: text connections must first send `set <any> 0 0 N` with `user pass` as data. */
  authFile: string | null;
  /** -D: key prefix delimiter for `stats detail`; giving it turns detail on. */
  prefixDelimiter: string;
  detailEnabled: boolean;
  /** -o track_sizes: `stats sizes` reports live figures. */
  trackSizes: boolean;
  /** -f and -n: memcached's slab sizing, used to report `stats items/slabs` in its classes. */
  slabGrowthFactor: number;
  slabMinSize: number;
  /** --data-dir (memcachedb's -H): items persist on LMDB there; null keeps them in memory only. */
  dataDir: string | null;
  /** --sync: when a write counts as done with --data-dir. */
  sync: SyncPolicy;
  /** --disk-limit: tiered mode, the disk tier's size in bytes; null keeps everything on disk. */
  diskLimit: number | null;
  /** --metrics-port: HTTP port for /metrics, /healthz, /readyz and the dashboard (0 picks one); null for none. */
  metricsPort: number | null;
  /** --log-format: JSON lines, or human-readable. */
  logFormat: 'json' | 'pretty';
  /** --test-clock: allow `debugtime <seconds>` to move the clock (tests only). */
  testClock: boolean;
  /** Every -o suboption as given, for `stats settings`. */
  extended: Map<string, string>;
}

export const DEFAULTS: Readonly<Config> = {
  port: 11211,
  listen: '127.0.0.1',
  udpPort: 0,
  unixSocket: null,
  unixMask: 0o700,
  backlog: 1024,
  memoryLimit: 64 * 1024 * 1024,
  maxItemSize: 1024 * 1024,
  evictions: true,
  connLimit: 1024,
  threads: 4,
  reqsPerEvent: 20,
  idleTimeout: 0,
  verbosity: 0,
  daemon: false,
  pidFile: null,
  logFile: null,
  user: null,
  memoryFile: null,
  shutdownEnabled: false,
  flushEnabled: true,
  casEnabled: true,
  dumpingEnabled: true,
  protocol: 'auto',
  saslEnabled: false,
  saslPasswordFile: null,
  authFile: null,
  prefixDelimiter: ':',
  detailEnabled: false,
  trackSizes: false,
  slabGrowthFactor: 1.25,
  slabMinSize: 48,
  dataDir: null,
  sync: { kind: 'interval', ms: 1000 },
  diskLimit: null,
  metricsPort: null,
  logFormat: 'json',
  testClock: false,
  extended: new Map(),
};

/** A problem with the command line: the message names the flag; the process exits with code 2. */
export class ConfigError extends Error {}
