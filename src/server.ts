import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { Clock } from './clock.js';
import type { Config } from './config.js';
import { Connection } from './connection.js';
import type { ServerContext } from './context.js';
import { levelForVerbosity } from './log.js';
import { LatencyRecorder } from './observe/latency.js';
import { PrefixStats } from './observe/prefix-stats.js';
import { PasswordFile } from './protocol/sasl.js';
import { Counters } from './observe/stats.js';
import { DiskStore } from './store/disk.js';
import { MemoryStore } from './store/memory.js';
import { Persistence } from './store/persistence.js';
import type { Store } from './store/store.js';
import { UdpListener } from './udp.js';
import { PROTOCOL_VERSION } from './version.js';

const TOO_MANY_CONNECTIONS = Buffer.from('ERROR Too many open connections\r\n', 'latin1');

export interface ListenerAddress {
  transport: 'tcp' | 'udp' | 'unix';
  /** host:port, or the socket path. */
  address: string;
  port: number;
}

/** The listeners and the state they share. */
export class MnemoServer implements ServerContext {
  readonly clock = new Clock();
  readonly counters = new Counters();
  readonly prefixStats: PrefixStats;
  readonly latency: LatencyRecorder;
  /** Able to answer correctly: listening (later also loaded from disk and synced with peers). */
  ready = false;
  readonly store: Store;
  readonly version = PROTOCOL_VERSION;
  readonly connections = new Set<Connection>();
  readonly persistence: Persistence | null = null;
  readonly saslPasswords: PasswordFile | null;
  readonly asciiPasswords: PasswordFile | null;
  /** Called when a client sends `shutdown` (with -A); main decides how to stop. */
  onShutdownRequest: (graceful: boolean) => void = () => {};
  private readonly streams: Server[] = [];
  private udp: UdpListener | null = null;
  private nextConnectionId = 1;

  constructor(
    readonly config: Config,
    readonly log: Logger,
  ) {
    const memory = new MemoryStore(
      {
        memoryLimit: config.memoryLimit,
        maxItemSize: config.maxItemSize,
        evictions: config.evictions,
        casEnabled: config.casEnabled,
        slabGrowthFactor: config.slabGrowthFactor,
        slabMinSize: config.slabMinSize,
      },
      this.clock,
      this.counters,
    );
    this.store = memory;
    if (config.dataDir !== null) {
      this.persistence = new Persistence(new DiskStore(config.dataDir, config.sync), this.clock, config.diskLimit);
      memory.attach(this.persistence);
    }
    this.prefixStats = new PrefixStats(config.prefixDelimiter, config.detailEnabled);
    this.latency = new LatencyRecorder(config.metricsPort !== null);
    this.saslPasswords = config.saslPasswordFile === null ? null : new PasswordFile(config.saslPasswordFile);
    this.asciiPasswords = config.authFile === null ? null : new PasswordFile(config.authFile);
    this.clock.onTick((now) => this.kickIdle(now));
  }

  setVerbosity(level: number): void {
    this.log.level = levelForVerbosity(level);
  }

  requestShutdown(graceful: boolean): void {
    this.onShutdownRequest(graceful);
  }

  /** Brings back what the data dir holds (before listening: clients see a loaded cache). */
  async load(): Promise<void> {
    await this.persistence?.load(this.store as MemoryStore, this.log);
  }

  /** Opens every configured listener; resolves with their real addresses. */
  async listen(): Promise<ListenerAddress[]> {
    this.clock.start();
    const config = this.config;
    const addresses: ListenerAddress[] = [];
    if (config.unixSocket !== null) {
      // memcached serves only the unix socket when one is given.
      removeStaleSocket(config.unixSocket);
      const server = this.streamServer();
      await listenOn(server, { path: config.unixSocket, backlog: config.backlog });
      chmodSync(config.unixSocket, config.unixMask & 0o777);
      addresses.push({ transport: 'unix', address: config.unixSocket, port: 0 });
      this.ready = true;
      return addresses;
    }
    const server = this.streamServer();
    await listenOn(server, { port: config.port, host: config.listen, backlog: config.backlog });
    const tcp = server.address() as AddressInfo;
    addresses.push({ transport: 'tcp', address: `${tcp.address}:${tcp.port}`, port: tcp.port });
    if (config.udpPort !== 0) {
      this.udp = new UdpListener(this);
      const udp = await this.udp.listen(config.listen, config.udpPort === -1 ? 0 : config.udpPort);
      addresses.push({ transport: 'udp', address: `${udp.address}:${udp.port}`, port: udp.port });
    }
    this.ready = true;
    return addresses;
  }

  /**
   * Stops accepting and closes every connection. Graceful: each connection first
   * writes the replies of the commands it already read, within graceMs.
   */
  async close(graceful = true, graceMs = 5000): Promise<void> {
    const closed = this.streams.map((server) => new Promise<void>((resolve) => server.close(() => resolve())));
    for (const connection of this.connections) {
      if (graceful) connection.finish();
      else connection.destroy();
    }
    const timer = setTimeout(() => {
      for (const connection of this.connections) connection.destroy();
    }, graceMs);
    await Promise.all(closed);
    clearTimeout(timer);
    await this.udp?.close();
    await this.persistence?.close();
    this.clock.stop();
  }

  private streamServer(): Server {
    const server = createServer((socket) => this.accept(socket));
    this.streams.push(server);
    return server;
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
    const connection = new Connection(socket, this, this.nextConnectionId++);
    this.connections.add(connection);
    socket.once('close', () => this.connections.delete(connection));
  }

  /** -o idle_timeout: closes connections that sent nothing for that many seconds. */
  private kickIdle(now: number): void {
    const timeout = this.config.idleTimeout;
    if (timeout === 0) return;
    for (const connection of this.connections) {
      if (now - connection.lastActive > timeout && connection.isIdle) {
        this.counters.idle_kicks++;
        connection.destroy();
      }
    }
  }
}

function listenOn(server: Server, options: { port?: number; host?: string; path?: string; backlog: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** A socket file left by an earlier run would make listen fail; memcached removes it too. */
function removeStaleSocket(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    // nothing there
  }
}
