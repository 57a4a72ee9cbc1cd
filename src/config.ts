/** Everything the server needs to know at start-up, after the command line was checked. */
export interface Config {
  /** TCP port; 0 picks a free one (memcached's -p -1). */
  port: number;
  listen: string;
  /** -m, in bytes. */
  memoryLimit: number;
  connLimit: number;
  /** -I, in bytes. */
  maxItemSize: number;
  /** -M turns evictions off. */
  evictions: boolean;
  /** -t: accepted and reported; Node serves every connection on one event loop. */
  threads: number;
  /** 0 quiet, 1 -v, 2 -vv, 3 -vvv. */
  verbosity: number;
  /** -U: 0 when UDP is off. */
  udpPort: number;
  user: string | null;
}

export const DEFAULTS: Config = {
  port: 11211,
  listen: '127.0.0.1',
  memoryLimit: 64 * 1024 * 1024,
  connLimit: 1024,
  maxItemSize: 1024 * 1024,
  evictions: true,
  threads: 4,
  verbosity: 0,
  udpPort: 0,
  user: null,
};

/** A problem with the command line: the message names the flag; the process exits with code 2. */
export class ConfigError extends Error {}
