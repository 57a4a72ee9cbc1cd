import type { Logger } from 'pino';
import type { Clock } from './clock.js';
import type { Config } from './config.js';
import type { Counters } from './observe/stats.js';
import type { Store } from './store/store.js';

/** What every connection and protocol shares: the store, counters, settings and clock. */
export interface ServerContext {
  readonly store: Store;
  readonly counters: Counters;
  readonly config: Config;
  readonly clock: Clock;
  readonly log: Logger;
  /** The string `version` and `stats` report. */
  readonly version: string;
  /** memcached's `verbosity` command; Mnemo maps it onto the log level. */
  setVerbosity(level: number): void;
}
