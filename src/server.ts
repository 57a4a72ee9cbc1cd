import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { Clock } from './clock.js';
import type { Config } from './config.js';
import { Connection } from './connection.js';
import type { ServerContext } from './context.js';
import { levelForVerbosity } from './log.js';
import { Counters } from './observe/stats.js';
import { MemoryStore } from './store/memory.js';
import type { Store } from './store/store.js';
import { PROTOCOL_VERSION } from './version.js';

const TOO_MANY_CONNECTIONS = Buffer.from('ERROR Too many open connections\r\n', 'latin1');

/** The listeners and the state they share. */
export class MnemoServer implements ServerContext {
  readonly clock = new Clock();
  readonly counters = new Counters();
  readonly store: Store;
  readonly version = PROTOCOL_VERSION;
  private readonly tcp: Server;
  private readonly sockets = new Set<Socket>();

  constructor(
    readonly config: Config,
    readonly log: Logger,
  ) {
    this.store = new MemoryStore(
      { memoryLimit: config.memoryLimit, maxItemSize: config.maxItemSize, evictions: config.evictions },
      this.clock,
      this.counters,
    );
    this.tcp = createServer((socket) => this.accept(socket));
  }

  setVerbosity(level: number): void {
    this.log.level = levelForVerbosity(level);
  }

  /** Starts listening; resolves with the TCP address once connections are accepted. */
  listen(): Promise<AddressInfo> {
    this.clock.start();
    return new Promise((resolve, reject) => {
      this.tcp.once('error', reject);
      this.tcp.listen({ port: this.config.port, host: this.config.listen, backlog: 1024 }, () => {
        this.tcp.off('error', reject);
        resolve(this.tcp.address() as AddressInfo);
      });
    });
  }

  /** Stops accepting, closes every connection and stops the clock. */
  close(): Promise<void> {
    this.clock.stop();
    for (const socket of this.sockets) socket.destroy();
    return new Promise((resolve) => this.tcp.close(() => resolve()));
  }

  private accept(socket: Socket): void {
    const counters = this.counters;
    if (counters.curr_connections >= this.config.connLimit) {
      // memcached answers over the limit with an error line, then hangs up.
      counters.rejected_connections++;
      socket.on('error', () => socket.destroy());
      socket.end(TOO_MANY_CONNECTIONS);
      return;
    }
    counters.curr_connections++;
    counters.total_connections++;
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    new Connection(socket, this);
  }
}
