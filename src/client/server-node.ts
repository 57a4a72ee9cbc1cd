/**
 * One server of the list: its connection pool, its replica's pool if it has one,
 * and its health as twemproxy's auto_eject_hosts keeps it: consecutive failures,
 * and when an ejected server may rejoin.
 */
import { Pool } from './pool.js';
import type { ResolvedServer } from './server-list.js';

export interface EjectionPolicy {
  autoEject: boolean;
  /** Consecutive failures that eject a server (twemproxy's server_failure_limit). */
  failureLimit: number;
  /** How long an ejected server stays out (server_retry_timeout), in ms. */
  retryTimeoutMs: number;
}

export interface PoolOptions {
  poolSize: number;
  connectTimeoutMs: number;
}

export class ServerNode {
  readonly address: string;
  readonly pool: Pool;
  readonly replica: Pool | undefined;
  /** Failures since the last reply (or since the last ejection). */
  failures = 0;
  /** While in the future, the server is out of the ring; 0 when it is in. */
  retryAt = 0;
  /** How many times it was ejected. */
  ejections = 0;

  constructor(
    readonly server: ResolvedServer,
    /** What the ring hashes for this server. */
    readonly label: string,
    options: PoolOptions,
    private readonly policy: EjectionPolicy,
    /** Told when the server leaves the ring, so the ring is rebuilt. */
    private readonly onEject: (node: ServerNode) => void,
  ) {
    this.address = formatAddress(server.host, server.port);
    this.pool = new Pool({ host: server.host, port: server.port, address: this.address }, options.poolSize, options.connectTimeoutMs, {
      onFailure: () => this.recordFailure(),
      onReply: () => {
        this.failures = 0;
      },
    });
    const replica = server.replica;
    this.replica =
      replica === undefined
        ? undefined
        : new Pool({ ...replica, address: formatAddress(replica.host, replica.port) }, options.poolSize, options.connectTimeoutMs, {
            onFailure: () => {},
            onReply: () => {},
          });
  }

  isLive(now: number): boolean {
    return this.retryAt <= now;
  }

  private recordFailure(): void {
    if (!this.policy.autoEject) return;
    this.failures++;
    if (this.failures < this.policy.failureLimit || this.retryAt > Date.now()) return;
    this.failures = 0;
    this.retryAt = Date.now() + this.policy.retryTimeoutMs;
    this.ejections++;
    this.onEject(this);
  }

  close(): void {
    this.pool.close();
    this.replica?.close();
  }
}

function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
