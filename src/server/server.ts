import { chmodSync, lstatSync, readFileSync, unlinkSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TlsOptions } from 'node:tls';
import type { Logger } from 'pino';
import { Clock } from '../base/clock.js';
import type { Config } from '../config/config.js';
import { slabRebalanceSettings } from '../config/extended-options.js';
import { Connection } from './connection.js';
import type { ConnectionInfo, ServerContext } from './context.js';
import { endpointText } from '../protocol/stats-text.js';
import { levelForVerbosity } from '../base/log.js';
import { LatencyRecorder } from '../observe/latency.js';
import { LogStream } from '../observe/log-stream.js';
import { PrefixStats } from '../observe/prefix-stats.js';
import { PasswordFile } from '../protocol/sasl.js';
import { Counters } from '../observe/stats.js';
import { ChangeFeed, type Durability } from '../store/change-feed.js';
import { DiskStore } from '../store/disk.js';
import { MemoryGuard } from './memory-guard.js';
import { PartialValueBudget, partialValueLimit } from './partial-values.js';
import { Persistence } from '../store/persistence.js';
import { SlabStore, type SlabStoreOptions } from '../store/slab-store.js';
import type { SlabRebalancer } from '../store/slabs/rebalancer.js';
import { WarmRestart } from '../store/warm-restart.js';
import { Replicator } from '../replication/replicator.js';
import type { Store } from '../store/store.js';
import { peerRejected, tlsServerOptions } from './tls.js';
import { UdpListener } from './udp.js';
import { PROTOCOL_VERSION } from '../base/version.js';

const TOO_MANY_CONNECTIONS = Buffer.from('ERROR Too many open connections\r\n', 'latin1');
/** To a client held past --sync-wait-timeout while the node syncs from a peer. */
const NOT_READY = Buffer.from('SERVER_ERROR not ready\r\n', 'latin1');

export interface ListenerAddress {
  /** tls: a TCP listener that speaks TLS (-Z on -p, or --tls-port). */
  transport: 'tcp' | 'tls' | 'udp' | 'unix';
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
  readonly logStream: LogStream;
  /** Collects garbage when the process passes -m plus a fixed headroom. */
  readonly memoryGuard: MemoryGuard;
  /** Able to answer correctly: listening (later also loaded from disk and synced with peers). */
  ready = false;
  readonly store: Store;
  readonly version = PROTOCOL_VERSION;
  readonly connections = new Set<Connection>();
  readonly partialValues: PartialValueBudget;
  /** Listening sockets and the UDP socket, numbered from the same sequence as connections. */
  readonly listeners: ListenerEntry[] = [];
  readonly persistence: Persistence | null = null;
  readonly durability: Durability | null = null;
  /** --peer/--replication-port: replication with peers, or null. */
  readonly replication: Replicator | null = null;
  /** The slab store's page mover (`slabs reassign`, `slabs automove`). */
  readonly slabRebalancer: SlabRebalancer;
  /** -e: the memory file a graceful stop saves the cache to and the next start loads, or null. */
  readonly warmRestart: WarmRestart | null = null;
  private readonly memoryStore: SlabStore;
  readonly saslPasswords: PasswordFile | null;
  readonly asciiPasswords: PasswordFile | null;
  /** Called when a client sends `shutdown` (with -A); main decides how to stop. */
  onShutdownRequest: (graceful: boolean) => void = () => {};
  private readonly streams: Server[] = [];
  /** TCP sockets on TLS listeners still in their handshake, by remote address and port. */
  private readonly handshaking = new Map<string, Socket>();
  private udp: UdpListener | null = null;
  private nextConnectionId = 1;
  /** Replication: the join (sync from a serving peer) under way, set by replicate(). */
  private joining: Promise<void> | null = null;
  /** Client sockets accepted during the join, unread until it is done (with their --sync-wait-timeout timers). */
  private held: Map<Socket, () => void> | null = null;

  constructor(
    readonly config: Config,
    readonly log: Logger,
  ) {
    const storeOptions: SlabStoreOptions = {
      memoryLimit: config.memoryLimit,
      maxItemSize: config.maxItemSize,
      evictions: config.evictions,
      casEnabled: config.casEnabled,
      slabGrowthFactor: config.slabGrowthFactor,
      slabMinSize: config.slabMinSize,
      slabChunkMax: config.slabChunkMax,
      hashPower: config.hashPowerInit === 0 ? undefined : config.hashPowerInit,
      slabReassign: !config.extended.has('no_slab_reassign') && !config.extended.has('no_modern'),
      preallocate: config.preallocate,
      initialMalloced: testInitialMalloc(),
      lru: { ...config.lru },
      crawler: { enabled: config.lruCrawler, sleep: config.lruCrawlerSleep, tocrawl: config.lruCrawlerToCrawl, background: config.lru.maintainer },
      rebalance: slabRebalanceSettings(config),
    };
    const memory = new SlabStore(storeOptions, this.clock, this.counters);
    this.store = memory;
    this.memoryStore = memory;
    this.slabRebalancer = memory.rebalancer;
    if (config.memoryFile !== null) this.warmRestart = new WarmRestart(config.memoryFile, memory, this.clock, config, log);
    // One change feed, subscribers in a fixed order: the disk, then the peers. Memory
    // alone has no feed at all (each change costs the store one null check).
    if (config.dataDir !== null || config.replicationPort !== null) {
      const feed = new ChangeFeed();
      if (config.dataDir !== null) {
        const persistence = new Persistence(new DiskStore(config.dataDir, config.sync, config.maxItemSize, log), this.clock, config.diskLimit);
        this.persistence = persistence;
        this.durability = persistence;
        feed.subscribe(persistence);
        memory.readFrom(persistence);
      }
      if (config.replicationPort !== null) {
        const secret = config.replicationSecretFile === null ? null : Buffer.from(readFileSync(config.replicationSecretFile, 'utf8').trim());
        this.replication = new Replicator(config, memory, feed, this.clock, log, secret, this.persistence);
        feed.subscribe(this.replication, true);
      }
      memory.reportTo(feed);
    }
    this.prefixStats = new PrefixStats(config.prefixDelimiter, config.detailEnabled);
    this.logStream = new LogStream(config.extended.has('watcher_logbuf_size') ? Number(config.extended.get('watcher_logbuf_size')) : undefined);
    memory.onEviction = (item) => {
      const log = this.logStream;
      if (!log.evictions) return;
      const now = this.clock.now;
      log.eviction(item.key, item.fetched, item.exptime === 0 ? -1 : item.exptime - now, now - item.lastAccess, item.sizeClass, item.valueLength);
    };
    this.latency = new LatencyRecorder(config.metricsPort !== null);
    this.saslPasswords = config.saslPasswordFile === null ? null : new PasswordFile(config.saslPasswordFile);
    this.asciiPasswords = config.authFile === null ? null : new PasswordFile(config.authFile);
    this.clock.onTick((now) => this.kickIdle(now));
    this.memoryGuard = new MemoryGuard(() => memory.bytesLimit);
    this.partialValues = new PartialValueBudget(partialValueLimit(config));
  }

  setVerbosity(level: number): void {
    this.log.level = levelForVerbosity(level);
  }

  requestShutdown(graceful: boolean): void {
    this.onShutdownRequest(graceful);
  }

  /**
   * Brings back what the data dir holds, or what the memory file saved (-e),
   * before listening: clients see a loaded cache. Throws MemoryFileCorrupt when
   * the memory file's metadata is not one (the start must stop).
   */
  async load(): Promise<void> {
    this.warmRestart?.load();
    await this.persistence?.load(this.memoryStore, this.log);
  }

  /** -e: saves the cache to the memory file (after close(): nothing changes it any more). False when it failed (logged). */
  saveMemoryFile(): boolean {
    const warm = this.warmRestart;
    if (warm === null) return false;
    this.log.info({ memoryFile: warm.path }, 'saving memory file');
    try {
      const bytes = warm.save();
      this.log.info({ memoryFile: warm.path, bytes, items: this.memoryStore.itemCount }, `memory file saved: ${this.memoryStore.itemCount} items, ${bytes} bytes`);
      return true;
    } catch (error) {
      this.log.error({ err: error, memoryFile: warm.path }, `memory file not saved: ${(error as Error).message}`);
      return false;
    }
  }

  /**
   * Opens the replication listener and starts joining the peers (a full sync from
   * one that serves). listen() opens the client listeners, but holds the connections
   * they accept, unread, until the join is done. Resolves with the listener's HOST:PORT.
   */
  async replicate(): Promise<string | null> {
    const replication = this.replication;
    if (replication === null) return null;
    const address = await replication.listen();
    this.joining = replication.join();
    this.held = new Map();
    return address;
  }

  /** Waits for the join, then serves the connections held meanwhile. */
  private async joined(): Promise<void> {
    if (this.joining === null) return;
    await this.joining;
    this.replication?.markServing();
    const held = this.held ?? new Map<Socket, () => void>();
    this.held = null;
    for (const [socket, release] of held) {
      release();
      // Counted when accepted: served now, or (closed, its close no longer heard) uncounted.
      if (socket.destroyed) this.counters.curr_connections--;
      else this.serve(socket);
    }
  }

  /**
   * A client that connected while the node syncs (already counted in curr_connections):
   * it waits, or gets NOT_READY after --sync-wait-timeout.
   */
  private hold(socket: Socket, held: Map<Socket, () => void>): void {
    const onError = (): void => {
      socket.destroy();
    };
    socket.on('error', onError);
    const seconds = this.config.syncWaitTimeout;
    const timer = seconds === 0 ? null : setTimeout(() => {
      held.delete(socket);
      // Reads on (discarding) so the client's close is noticed, and the socket closes.
      socket.resume();
      socket.end(NOT_READY);
      setTimeout(() => socket.destroy(), 5000).unref();
    }, seconds * 1000);
    const onClose = (): void => {
      if (timer !== null) clearTimeout(timer);
      held.delete(socket);
      this.counters.curr_connections--;
    };
    socket.once('close', onClose);
    held.set(socket, () => {
      if (timer !== null) clearTimeout(timer);
      socket.off('error', onError);
      socket.off('close', onClose);
    });
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
      this.addListener(endpointText('unix', config.unixSocket, undefined), false);
      await this.joined();
      this.ready = true;
      return addresses;
    }
    const tls = config.tls === null ? null : tlsServerOptions(config.tls);
    // -Z alone: the -p listener speaks TLS, as in memcached; --tls-port adds one next to it.
    const tlsOnPort = tls !== null && config.tls!.port === null;
    // -p 0: no TCP listener, as memcached 1.6.18 allows (UDP only, or nothing at all).
    if (config.port !== null) {
      const server = this.streamServer(tlsOnPort ? tls : null);
      await listenOn(server, { port: config.port, host: config.listen, backlog: config.backlog });
      const tcp = server.address() as AddressInfo;
      addresses.push({ transport: tlsOnPort ? 'tls' : 'tcp', address: `${tcp.address}:${tcp.port}`, port: tcp.port });
      this.addListener(endpointText('tcp', tcp.address, tcp.port), false);
    }
    if (tls !== null && !tlsOnPort) {
      const tlsServer = this.streamServer(tls);
      await listenOn(tlsServer, { port: config.tls!.port!, host: config.listen, backlog: config.backlog });
      const bound = tlsServer.address() as AddressInfo;
      addresses.push({ transport: 'tls', address: `${bound.address}:${bound.port}`, port: bound.port });
      this.addListener(endpointText('tcp', bound.address, bound.port), false);
    }
    // With peers: connections accepted so far wait for the sync; UDP opens after it.
    await this.joined();
    if (config.udpPort !== 0) {
      const entry = this.addListener('', true);
      this.udp = new UdpListener(this, entry);
      const udp = await this.udp.listen(config.listen, config.udpPort === -1 ? 0 : config.udpPort);
      entry.addr = endpointText('udp', udp.address, udp.port);
      addresses.push({ transport: 'udp', address: `${udp.address}:${udp.port}`, port: udp.port });
    }
    this.ready = true;
    return addresses;
  }

  private addListener(addr: string, udp: boolean): ListenerEntry {
    const entry = new ListenerEntry(this.nextConnectionId++, addr, udp, this.clock.now);
    this.listeners.push(entry);
    return entry;
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
    // A TLS client still in its handshake is not a connection yet: nothing to finish.
    for (const socket of this.handshaking.values()) socket.destroy();
    for (const socket of this.held?.keys() ?? []) socket.destroy();
    const timer = setTimeout(() => {
      for (const connection of this.connections) connection.destroy();
    }, graceMs);
    await Promise.all(closed);
    clearTimeout(timer);
    // A page move under way ends now, so the arena is whole (every chunk in use, free or in the pool);
    // before the disk closes, as the items it lets go of are reported on the feed.
    this.slabRebalancer.finishNow();
    this.slabRebalancer.stop();
    await this.udp?.close();
    await this.replication?.close();
    await this.persistence?.close();
    this.clock.stop();
    if (this.memoryStore instanceof SlabStore) this.memoryStore.stop();
    this.memoryGuard.stop();
  }

  private streamServer(tls: TlsOptions | null = null): Server {
    const server = tls === null ? createServer((socket) => this.accept(socket)) : this.tlsServer(tls);
    // After listen: an accept error (out of descriptors, say) is logged, never thrown.
    server.on('error', (error) => {
      if (server.listening) this.log.warn({ err: error }, 'listener error');
    });
    this.streams.push(server);
    return server;
  }

  /**
   * A TLS listener: each socket joins the same connection handling once its
   * handshake is done. A handshake that fails (a plain-text client, a missing or
   * untrusted client certificate) only drops that socket.
   */
  private tlsServer(options: TlsOptions): Server {
    const server = createTlsServer(options, (socket) => {
      this.handshaking.delete(`${socket.remoteAddress}|${socket.remotePort}`);
      if (peerRejected(this.config.tls!, socket)) {
        this.log.debug({ remote: socket.remoteAddress, reason: socket.authorizationError }, 'TLS client certificate refused');
        socket.destroy();
        return;
      }
      this.accept(socket);
    });
    server.on('tlsClientError', (error, socket) => {
      this.log.debug({ err: error, remote: socket.remoteAddress }, 'TLS handshake failed');
      socket.destroy();
    });
    server.on('connection', (raw: Socket) => {
      // Handshakes in progress count against -c: idle TLS sockets must not lock clients out.
      if (this.counters.curr_connections + this.handshaking.size >= this.config.connLimit) {
        this.counters.rejected_connections++;
        raw.destroy();
        return;
      }
      const key = `${raw.remoteAddress}|${raw.remotePort}`;
      this.handshaking.set(key, raw);
      raw.once('close', () => {
        if (this.handshaking.get(key) === raw) this.handshaking.delete(key);
      });
    });
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
    if (this.held !== null) return this.hold(socket, this.held);
    this.serve(socket);
  }

  /** A counted client connection starts being served. */
  private serve(socket: Socket): void {
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
        connection.destroy('idle_timeout');
      }
    }
  }
}

/** A listening socket or the UDP socket as `stats conns` lists it. */
export class ListenerEntry implements ConnectionInfo {
  readonly listenAddr = null;
  readonly readBytes = 0;
  readonly unsentBytes = 0;
  constructor(
    readonly id: number,
    public addr: string,
    readonly udp: boolean,
    /** Clock second it opened (listeners), or of the last datagram (UDP), as memcached counts. */
    public lastActive: number,
  ) {}

  /** memcached's states: a listener listens; the UDP socket is always reading. */
  get state(): string {
    return this.udp ? 'conn_read' : 'conn_listening';
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

/**
 * memcached's test suite fakes how much memory is allocated already (64bit.t:
 * just over 4 GiB) through T_MEMD_INITIAL_MALLOC, read by its slabs_init; the
 * same variable does the same here, so that test runs against Mnemo. 0 when unset.
 */
function testInitialMalloc(): number {
  const text = process.env['T_MEMD_INITIAL_MALLOC'];
  if (text === undefined || !/^\d+$/.test(text)) return 0;
  return Number(text);
}
