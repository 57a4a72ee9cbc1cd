import type { Logger } from 'pino';
import type { Clock } from './clock.js';
import type { Config } from './config.js';
import type { LatencyRecorder } from './observe/latency.js';
import type { PrefixStats } from './observe/prefix-stats.js';
import type { PasswordFile } from './protocol/sasl.js';
import type { Counters } from './observe/stats.js';
import type { PartialValueBudget } from './partial-values.js';
import type { Durability } from './store/change-feed.js';
import type { Persistence } from './store/persistence.js';
import type { Store } from './store/store.js';

/** What `stats conns` shows of one connection. */
export interface ConnectionInfo {
  readonly id: number;
  readonly peer: string;
  readonly localAddress: string;
  readonly state: string;
  readonly lastActive: number;
}

/** What every connection and protocol shares: the store, counters, settings and clock. */
export interface ServerContext {
  readonly store: Store;
  readonly counters: Counters;
  readonly prefixStats: PrefixStats;
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
  /** --data-dir: the disk tier under the store (its `stats` lines), or null. */
  readonly persistence: Persistence | null;
  /** --data-dir: whether a batch's replies may go out yet (--sync always), or null. */
  readonly durability: Durability | null;
  /** --peer/--replication-port: replication with peers (its `stats` lines), or null. */
  readonly replication?: { stats(): Array<[string, string | number]> } | null;
  /** -S: passwords binary connections authenticate against. */
  readonly saslPasswords: PasswordFile | null;
  /** -Y: passwords text connections authenticate against. */
  readonly asciiPasswords: PasswordFile | null;
  /** memcached's `verbosity` command; Mnemo maps it onto the log level. */
  setVerbosity(level: number): void;
  /** The `shutdown` command (allowed with -A). */
  requestShutdown(graceful: boolean): void;
}
