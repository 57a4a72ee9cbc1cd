
/** Everything the server needs to know at start-up, after the command line was checked. */
export interface Config {
  /** TCP port; 0 picks a free one (memcached's -p -1); null: no TCP listener (-p 0). */
  port: number | null;
  listen: string;
  /** -U: 0 when UDP is off; -1 picks a free port. */
  udpPort: number;
  /** -W turns this off: `watch` is refused. */
  watchEnabled: boolean;
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
  /** -Z or --tls-port: TLS settings; null when TLS is off. */
  tls: TlsConfig | null;
  /** -D: key prefix delimiter for `stats detail`; giving it turns detail on. */
  prefixDelimiter: string;
  detailEnabled: boolean;
  /** -o track_sizes: `stats sizes` reports live figures. */
  trackSizes: boolean;
  /** -f and -n: memcached's slab sizing, used to report `stats items/slabs` in its classes. */
  slabGrowthFactor: number;
  slabMinSize: number;
  /** -o slab_chunk_max (bytes): the largest chunk, items past it are chunked; half a page by default, a page under no_modern or no_chunked_items. */
  slabChunkMax: number;
  /** -o hashpower: the hash table's starting power of two; 0 for the default (16). */
  hashPowerInit: number;
  /** -N: memcached's NAPI id count; accepted with no effect here, shown in `stats settings`. */
  napiIds: number | null;
  /** -L: every slab class gets its first page at start (memcached's preallocation); cache_memlimit then cannot move -m. */
  preallocate: boolean;
  /** --data-dir (memcachedb's -H): items persist on LMDB there; null keeps them in memory only. */
  dataDir: string | null;
  /** --sync: when a write counts as done with --data-dir. */
  sync: SyncPolicy;
  /** --disk-limit: tiered mode, the disk tier's size in bytes; null keeps everything on disk. */
  diskLimit: number | null;
  /** --metrics-port: HTTP port for /metrics, /healthz, /readyz and the dashboard (0 picks one); null for none. */
  metricsPort: number | null;
  /** --peer: replication peers (their replication ports), in the order given. */
  peers: ReplicationPeer[];
  /** --replication-port: the replication listener on the -l address (0 picks one); null when replication is off. */
  replicationPort: number | null;
  /** --node-id: this node's name in versions; null derives one (kept in the data dir when there is one). */
  nodeId: string | null;
  /** --replication-secret-file: the shared secret peers prove they know; null accepts loopback peers only. */
  replicationSecretFile: string | null;
  /** --replication-insecure: accept peers from any address without a secret. */
  replicationInsecure: boolean;
  /** --peer-wait: seconds to wait for a serving peer to sync from before serving empty. */
  peerWait: number;
  /** --anti-entropy-interval: seconds between digest comparisons with each peer; 0 turns it off. */
  antiEntropyInterval: number;
  /** --sync-wait-timeout: seconds a client connection made during the join sync waits before `SERVER_ERROR not ready`; 0 waits as long as the sync takes. */
  syncWaitTimeout: number;
  /** --test-drop-changes: the fraction of changes not sent to peers, to make nodes diverge (tests only). */
  testDropChanges: number;
  /** --log-format: JSON lines, human-readable, or auto (readable when stderr is a terminal). */
  logFormat: 'auto' | 'json' | 'pretty';
  /** --test-clock: allow `debugtime <seconds>` to move the clock (tests only). */
  testClock: boolean;
  /** Every -o suboption as given, for `stats settings`. */
  extended: Map<string, string>;
  /** -o lru_maintainer, no_lru_maintainer, hot_lru_pct, ..., temporary_ttl: the segmented LRU at start. */
  lru: LruConfig;
}

/** memcached's segmented-LRU settings (its settings.lru_* fields), as -o sets them. */
export interface LruConfig {
  maintainer: boolean;
  segmented: boolean;
  hotLruPct: number;
  warmLruPct: number;
  hotMaxFactor: number;
  warmMaxFactor: number;
  tempLru: boolean;
  temporaryTtl: number;
}

export const DEFAULTS: Readonly<Config> = {
  port: 11211,
  listen: '127.0.0.1',
  udpPort: 0,
  watchEnabled: true,
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
  tls: null,
  prefixDelimiter: ':',
  detailEnabled: false,
  trackSizes: false,
  slabGrowthFactor: 1.25,
  slabChunkMax: 512 * 1024,
  hashPowerInit: 0,
  preallocate: false,
  napiIds: null,
  slabMinSize: 48,
  dataDir: null,
  sync: { kind: 'interval', ms: 1000 },
  diskLimit: null,
  metricsPort: null,
  peers: [],
  replicationPort: null,
  nodeId: null,
  replicationSecretFile: null,
  replicationInsecure: false,
  peerWait: 5,
  antiEntropyInterval: 5,
  syncWaitTimeout: 0,
  testDropChanges: 0,
  logFormat: 'auto',
  testClock: false,
  extended: new Map(),
  lru: { maintainer: true, segmented: true, hotLruPct: 20, warmLruPct: 40, hotMaxFactor: 0.2, warmMaxFactor: 2.0, tempLru: false, temporaryTtl: 61 },
};

/** memcached's -Z with -o ssl_* (or --tls-*): where TLS is spoken and with which files. */
export interface TlsConfig {
  /** ssl_chain_cert / --tls-cert: the server's certificate chain (PEM). */
  certFile: string;
  /** ssl_key / --tls-key: its private key (PEM, unencrypted). */
  keyFile: string;
  /** ssl_ca_cert / --tls-ca: CA certificates that client certificates are verified against. */
  caFile: string | null;
  /** ssl_verify_mode: 0 none, 1 request, 2 require, 3 once (the same as require here). */
  verifyMode: 0 | 1 | 2 | 3;
  /** --tls-port: a separate TLS listener (0 picks a free port); null: the -p listener speaks TLS. */
  port: number | null;
  /** ssl_ciphers: OpenSSL cipher list (TLS 1.2 and below); null keeps Node's default. */
  ciphers: string | null;
  /** ssl_min_version: 0 TLSv1, 1 TLSv1.1, 2 TLSv1.2, 3 TLSv1.3. */
  minVersion: 0 | 1 | 2 | 3;
}

/** A --peer: host and replication port. */
export interface ReplicationPeer {
  host: string;
  port: number;
}

/** A problem with the command line: the message names the flag; the process exits with code 2. */
export class ConfigError extends Error {}

/** --sync: when a write to the data dir counts as done (see the store's DiskStore). */
export type SyncPolicy = { kind: 'always' } | { kind: 'interval'; ms: number } | { kind: 'none' };
