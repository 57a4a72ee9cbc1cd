import type { Logger } from 'pino';
import type { Clock } from '../base/clock.js';
import type { Config } from '../config/config.js';
import type { LatencyRecorder } from '../observe/latency.js';
import type { LogStream } from '../observe/log-stream.js';
import type { PrefixStats } from '../observe/prefix-stats.js';
import type { PasswordFile } from '../protocol/sasl.js';
import type { Counters } from '../observe/stats.js';
import type { PartialValueBudget } from './partial-values.js';
import type { Durability } from '../store/change-feed.js';
import type { Persistence } from '../store/persistence.js';
import type { Store } from '../store/store.js';
import type { SlabRebalancer } from '../store/slabs/rebalancer.js';

/** What `stats conns` shows of one connection or listener, addresses in memcached's form. */
export interface ConnectionInfo {
  readonly id: number;
  /** "tcp:127.0.0.1:40098", "tcp6:[::1]:40098", "unix:/path"; a listener's own address. */
  readonly addr: string;
  /** The address the client connected to; null for listeners and the UDP socket. */
  readonly listenAddr: string | null;
  readonly state: string;
  readonly lastActive: number;
  /** The UDP socket (memcached marks it with a "UDP" line). */
  readonly udp?: boolean;
  /** Bytes received and not yet consumed (read_buf_bytes). */
  readonly readBytes: number;
  /** Bytes of replies not yet written to the client (response_obj_bytes). */
  readonly unsentBytes: number;
}

/** What every connection and protocol shares: the store, counters, settings and clock. */
export interface ServerContext {
  readonly store: Store;
  readonly counters: Counters;
  readonly prefixStats: PrefixStats;
  /** memcached's log stream: lines for the connections that sent `watch`. */
  readonly logStream: LogStream;
  /** Per-command latency, recorded only when metrics are served. */
  readonly latency: LatencyRecorder;
  readonly config: Config;
  readonly clock: Clock;
  readonly log: Logger;
  /** The string `version` and `stats` report. */
  readonly version: string;
  readonly connections: ReadonlySet<ConnectionInfo>;
  /** What values still arriving on all connections may hold (partial-values.ts). */
  readonly partialValues: PartialValueBudget;
  /** The listening sockets (TCP, TLS, unix) and the UDP socket, for `stats conns`. */
  readonly listeners: ReadonlyArray<ConnectionInfo>;
  /** --data-dir: the disk tier under the store (its `stats` lines), or null. */
  readonly persistence: Persistence | null;
  /** --data-dir: whether a batch's replies may go out yet (--sync always), or null. */
  readonly durability: Durability | null;
  /** --peer/--replication-port: replication with peers (its `stats` lines), or null. */
  readonly replication?: { stats(): Array<[string, string | number]> } | null;
  /** The slab store's page mover (`slabs reassign`, `slabs automove`, `stats` slab_*). */
  readonly slabRebalancer: SlabRebalancer;
  /** -S: passwords binary connections authenticate against. */
  readonly saslPasswords: PasswordFile | null;
  /** -Y: passwords text connections authenticate against. */
  readonly asciiPasswords: PasswordFile | null;
  /** memcached's `verbosity` command; Mnemo maps it onto the log level. */
  setVerbosity(level: number): void;
  /** The `shutdown` command (allowed with -A). */
  requestShutdown(graceful: boolean): void;
}
