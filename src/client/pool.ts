/**
 * A few connections to one server, opened on demand. A request goes to the least
 * busy open connection; another connection is opened only while every open one has
 * requests in flight, so light traffic uses one socket and heavy traffic spreads
 * its pipelines over the pool.
 */
import { Connection, type Endpoint } from './connection.js';
import { ConnectionError } from './errors.js';
import type { ReplyKind, ReplyState } from './reply-reader.js';

export interface PoolHealth {
  onFailure(error: Error): void;
  onReply(): void;
}

export class Pool {
  private readonly slots: Array<Connection | undefined>;
  private closed = false;

  constructor(
    readonly endpoint: Endpoint,
    size: number,
    private readonly connectTimeoutMs: number,
    private readonly health: PoolHealth,
  ) {
    this.slots = new Array<Connection | undefined>(size).fill(undefined);
  }

  send(bytes: Buffer, kind: ReplyKind, timeoutMs: number): Promise<ReplyState> {
    if (this.closed) return Promise.reject(new ConnectionError('client closed', this.endpoint.address));
    return this.pick().send(bytes, kind, timeoutMs);
  }

  /** Ends every connection once its requests are answered. */
  close(): void {
    this.closed = true;
    for (const connection of this.slots) connection?.close();
  }

  private pick(): Connection {
    let best: Connection | undefined;
    let free = -1;
    for (let i = 0; i < this.slots.length; i++) {
      const connection = this.slots[i];
      if (connection === undefined || connection.closed) {
        if (free < 0) free = i;
      } else if (best === undefined || connection.inFlight < best.inFlight) {
        best = connection;
      }
    }
    if (best !== undefined && (best.inFlight === 0 || free < 0)) return best;
    return this.open(free);
  }

  private open(slot: number): Connection {
    const connection: Connection = new Connection(this.endpoint, this.connectTimeoutMs, {
      onFailure: (error) => this.health.onFailure(error),
      onReply: () => this.health.onReply(),
      onClose: () => {
        if (this.slots[slot] === connection) this.slots[slot] = undefined;
      },
    });
    this.slots[slot] = connection;
    return connection;
  }
}
