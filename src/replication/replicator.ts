import { randomInt } from 'node:crypto';
import { createServer, type AddressInfo, type Server } from 'node:net';
import type { Logger } from 'pino';
import { MAX_RELATIVE_EXPTIME, type Clock } from '../base/clock.js';
import type { Config } from '../config/config.js';
import type { Persistence } from '../store/persistence.js';
import {
  CHANGE_DELETED,
  CHANGE_FLUSHED,
  CHANGE_FLUSH_SCHEDULED,
  CHANGE_STORED,
  CHANGE_TOUCHED,
  type ChangeFeed,
  type ChangeKind,
  type ChangeSubscriber,
} from '../store/change-feed.js';
import { STORE_BINARY_KEY, type ItemView, type Store, type StoreResult } from '../store/store.js';
import { ChangeLog, KIND_FLUSH, KIND_ITEM, KIND_TOMB, KIND_TOUCH } from './change-log.js';
import { FLUSH_FIXED, ITEM_FIXED, TOMB_FIXED, TOUCH_FIXED, T_FLUSH, T_ITEM, T_TOMB, T_TOUCH } from './frames.js';
import { HybridClock, MAX_AHEAD_MS, compareVersions, nodeNumber } from './hlc.js';
import { resolveNodeId } from './node-id.js';
import { PublisherSession, type PublisherHost } from './publisher.js';
import { PeerLink, type PeerLinkHost } from './subscriber.js';
import { VersionStore } from './version-store.js';
import { PRUNE_PER_TICK, PRUNE_PER_TICK_DISK, VersionTable, type ServedKeys } from './versions.js';

/**
 * Multi-master replication: every change a client makes here goes into the change
 * log with a version (hybrid logical clock, node number) and streams to every peer
 * subscribed to this node; this node subscribes to each --peer the same way and
 * applies what arrives last-writer-wins against the side map of versions. A peer's
 * change applied here is not logged, so nothing loops; every node must list every
 * other (a full mesh).
 */
export class Replicator implements ChangeSubscriber, ServedKeys, PublisherHost, PeerLinkHost {
  readonly hlc = new HybridClock();
  readonly versions = new VersionTable();
  readonly changes = new ChangeLog();
  readonly nodeId: string;
  readonly node: number;
  /** This process's incarnation: log positions from another one mean nothing. */
  readonly epoch = randomInt(1, 2 ** 47);
  /** This node serves clients (its snapshot is worth copying). */
  serving = false;
  /** Still starting: links to ready peers ask for a full snapshot before serving. */
  joining = true;
  readonly secret: Buffer | null;
  readonly insecure: boolean;
  /** The store held items before replication started (a data dir). */
  readonly hasBaseState: boolean;
  readonly links: PeerLink[];
  private readonly sessions = new Set<PublisherSession>();
  private server: Server | null = null;
  private flushScheduled = false;
  private joinDone: (() => void) | null = null;
  private joinDeadlinePassed = false;
  private joinTimer: NodeJS.Timeout | null = null;
  address = '';
  /** --anti-entropy-interval in ms (0: off). */
  readonly antiEntropyMs: number;
  /** --test-drop-changes: the fraction of log entries not sent to peers (tests only). */
  readonly dropFraction: number;
  /** applyRecord's last call changed something here (its version was newer). */
  lastApplied = false;
  /** Anti-entropy: rounds started here, rounds that found a difference, repairs sent and applied here. */
  aeRounds = 0;
  aeDiffering = 0;
  aeSent = 0;
  aeApplied = 0;
  /** Log entries --test-drop-changes dropped. */
  dropped = 0;
  /** Items the audit found served under a tombstone and deleted again. */
  unserved = 0;
  /** Peers' items this node's store refused (too large, no memory, a full disk). */
  refused = 0;
  /** With --data-dir: the version table on disk. */
  private readonly versionStore: VersionStore | null;

  constructor(
    private readonly config: Config,
    readonly memory: Store,
    /** The store's change feed: this replicator subscribes to it, and marks the changes it applies for peers. */
    private readonly feed: ChangeFeed,
    readonly clock: Clock,
    readonly log: Logger,
    secret: Buffer | null,
    /** --data-dir: items memory let go of live here; a snapshot sends them too. */
    readonly disk: Persistence | null,
  ) {
    this.nodeId = resolveNodeId(config.nodeId, config.dataDir);
    this.node = nodeNumber(this.nodeId);
    this.secret = secret;
    this.insecure = config.replicationInsecure;
    this.hasBaseState = disk !== null;
    this.versionStore =
      config.dataDir === null || disk === null ? null : new VersionStore(config.dataDir, config.sync.kind === 'always', disk.space, log);
    this.antiEntropyMs = Math.round(config.antiEntropyInterval * 1000);
    this.dropFraction = config.testDropChanges;
    this.links = config.peers.map((peer) => new PeerLink(peer.host, peer.port, this));
    const perTick = disk === null ? PRUNE_PER_TICK : PRUNE_PER_TICK_DISK;
    clock.onTick((now) => this.versions.prune(now, this, perTick));
  }

  // --- Changes clients make here -------------------------------------------------

  /**
   * The change feed's second subscriber; it hears only this node's own changes (the
   * feed keeps those applied for peers from it). Removals other than a delete
   * (expiry, eviction), a flush coming due and an invalidation are not shipped: each
   * node expires and flushes on its own clock, and the stale mark is local (README).
   */
  change(kind: ChangeKind, key: string, item: ItemView | null, time: number): void {
    switch (kind) {
      case CHANGE_STORED:
        return this.localItem(key, item!);
      case CHANGE_TOUCHED:
        return this.localTouch(key, item!);
      case CHANGE_DELETED:
        return this.localDelete(key);
      case CHANGE_FLUSHED:
        return this.localFlush(0);
      case CHANGE_FLUSH_SCHEDULED:
        return this.localFlush(time);
    }
  }

  private localItem(key: string, item: ItemView): void {
    const hlc = this.hlc.next();
    this.versions.set(key, hlc, this.node, false, this.clock.now, item.exptime);
    this.changes.append(KIND_ITEM, key, item.copyValue(), item.flags, item.exptime, hlc, item.binaryKey);
    this.schedule();
  }

  /**
   * A new expiry ships as the expiry alone, with the version of the value it applies
   * to: a peer holding that same version takes it; one holding another value ignores
   * it (the touch's newer version leaves the difference to anti-entropy).
   */
  private localTouch(key: string, item: ItemView): void {
    const base = this.versions.get(key);
    // No version to name (pruned, or never given): the whole item is the only safe frame.
    if (base === undefined || base.tomb) return this.localItem(key, item);
    const hlc = this.hlc.next();
    const baseHlc = base.hlc;
    const baseNode = base.node;
    this.versions.set(key, hlc, this.node, false, this.clock.now, item.exptime);
    this.changes.append(KIND_TOUCH, key, null, baseNode, item.exptime, hlc, false, baseHlc);
    this.schedule();
  }

  private localDelete(key: string): void {
    const hlc = this.hlc.next();
    this.versions.set(key, hlc, this.node, true, this.clock.now);
    this.changes.append(KIND_TOMB, key, null, 0, 0, hlc, false);
    this.schedule();
  }

  /** at: when a delayed flush_all comes due (absolute), or 0 for now. */
  private localFlush(at: number): void {
    const hlc = this.hlc.next();
    if (at === 0) this.versions.flush(hlc, this.node);
    this.changes.append(KIND_FLUSH, '', null, 0, at, hlc, false);
    this.schedule();
  }

  /** Sends new log entries to subscribed peers once per event loop turn, batched. */
  private schedule(): void {
    if (this.flushScheduled || this.sessions.size === 0) return;
    this.flushScheduled = true;
    setImmediate(this.pumpAll);
  }

  private readonly pumpAll = (): void => {
    this.flushScheduled = false;
    for (const session of this.sessions) if (session.streaming) session.pump();
  };

  // --- Changes peers made ------------------------------------------------------

  /**
   * Applies an ITEM, TOMB or FLUSH frame body if it is newer than what is here; returns
   * its sequence number. Throws on a malformed frame, or a version time this node's
   * clock refuses (see HybridClock.observe), before anything is recorded: the caller
   * drops the connection.
   */
  applyRecord(type: number, buf: Buffer, start: number, end: number): number {
    const length = end - start;
    const fixed = type === T_ITEM ? ITEM_FIXED : type === T_TOMB ? TOMB_FIXED : type === T_TOUCH ? TOUCH_FIXED : FLUSH_FIXED;
    if (length < fixed) throw new Error(`malformed replication frame (type ${type}, ${length} bytes)`);
    const seq = buf.readDoubleBE(start);
    const hlc = buf.readDoubleBE(start + 8);
    const node = buf.readUInt32BE(start + 16);
    if (!Number.isInteger(seq) || seq < 0) throw new Error(`malformed replication frame (sequence number ${seq})`);
    let keyStart = 0;
    let keyEnd = 0;
    if (type === T_ITEM || type === T_TOMB || type === T_TOUCH) {
      keyStart = start + fixed;
      keyEnd = keyStart + buf[start + fixed - 1]!;
      if (keyEnd === keyStart || keyEnd > end || (type !== T_ITEM && keyEnd !== end)) {
        throw new Error(`malformed replication frame (type ${type}: key length ${keyEnd - keyStart} in ${length} bytes)`);
      }
    } else if (length !== FLUSH_FIXED) {
      throw new Error(`malformed replication frame (flush_all of ${length} bytes)`);
    }
    const time =
      type === T_ITEM ? buf.readDoubleBE(start + 24) : type === T_FLUSH ? buf.readDoubleBE(start + 20) : type === T_TOUCH ? buf.readDoubleBE(start + 32) : 0;
    if (!Number.isFinite(time) || time < 0) throw new Error(`malformed replication frame (time ${time})`);
    const before = this.hlc.now;
    // Refused before anything is recorded (version time 0, of snapshot items without a version, is fine).
    if (!this.hlc.observe(hlc)) {
      throw new Error(`version time ${hlc} is not valid or more than ${MAX_AHEAD_MS / 1000} s ahead of this node's clock (node ${node}); change refused`);
    }
    this.lastApplied = false;
    const memory = this.memory;
    const feed = this.feed;
    if (type === T_ITEM) {
      const flags = buf.readUInt32BE(start + 20);
      const exptime = time;
      const binaryKey = buf[start + 32] === 1;
      const key = buf.toString('latin1', keyStart, keyEnd);
      if (!this.versions.isNewer(key, hlc, node)) return seq;
      // An absolute exptime as the protocol takes it; one already past stays past.
      const protocolExptime = exptime === 0 ? 0 : exptime <= MAX_RELATIVE_EXPTIME ? -1 : exptime;
      let result: StoreResult;
      feed.fromPeer = true;
      try {
        result = memory.store('set', buf, keyStart, keyEnd, buf, keyEnd, end, flags, protocolExptime, 0, binaryKey ? STORE_BINARY_KEY : 0);
      } finally {
        feed.fromPeer = false;
      }
      if (result !== 'stored') {
        // Refused here (too large for -I, no memory, a full disk): the key keeps the
        // version of what it holds, so anti-entropy still sees the difference.
        this.refused++;
        this.log.debug({ key, node, result }, 'replicated change refused by the store');
        return seq;
      }
      this.lastApplied = true;
      this.versions.set(key, hlc, node, false, this.clock.now, exptime);
    } else if (type === T_TOMB) {
      const key = buf.toString('latin1', keyStart, keyEnd);
      if (!this.versions.isNewer(key, hlc, node)) return seq;
      this.lastApplied = true;
      this.versions.set(key, hlc, node, true, this.clock.now);
      feed.fromPeer = true;
      try {
        memory.delete(buf, keyStart, keyEnd);
      } finally {
        feed.fromPeer = false;
      }
    } else if (type === T_TOUCH) {
      const key = buf.toString('latin1', keyStart, keyEnd);
      if (!this.versions.isNewer(key, hlc, node)) return seq;
      // Only the value the touch was made on takes its expiry; another value here stays as it is.
      const baseHlc = buf.readDoubleBE(start + 20);
      const baseNode = buf.readUInt32BE(start + 28);
      const version = this.versions.get(key);
      if (version === undefined || version.tomb || version.hlc !== baseHlc || version.node !== baseNode) return seq;
      const protocolExptime = time === 0 ? 0 : time <= MAX_RELATIVE_EXPTIME ? -1 : time;
      feed.fromPeer = true;
      try {
        const item = memory.peek(buf, keyStart, keyEnd);
        if (item === null) return seq;
        memory.setExptime(item, protocolExptime);
      } finally {
        feed.fromPeer = false;
      }
      this.lastApplied = true;
      this.versions.set(key, hlc, node, false, this.clock.now, time);
    } else {
      const at = time;
      feed.fromPeer = true;
      try {
        if (at > 0) memory.flushAll(at);
        else this.applyFlush(hlc, node, before);
      } finally {
        feed.fromPeer = false;
      }
    }
    return seq;
  }

  /** flush_all from a peer: what is older than it goes; what is newer (written here meanwhile) stays. */
  private applyFlush(hlc: number, node: number, before: number): void {
    const versions = this.versions;
    if (compareVersions(hlc, node, versions.flushHlc, versions.flushNode) <= 0) return;
    this.lastApplied = true;
    if (before < hlc) {
      // Every version here is older than the flush.
      this.memory.flushAll(0);
    } else {
      const doomed: string[] = [];
      this.memory.dump((item) => {
        const version = versions.get(item.key);
        if (version === undefined || compareVersions(version.hlc, version.node, hlc, node) < 0) doomed.push(item.key);
        return true;
      });
      for (const key of doomed) {
        const buffer = Buffer.from(key, 'latin1');
        this.memory.delete(buffer, 0, buffer.length);
      }
    }
    versions.flush(hlc, node);
  }

  // --- What this node serves (the audit) -----------------------------------------

  serves(key: string): boolean {
    // The disk first: it holds what memory let go of, and reading it promotes nothing.
    if (this.disk !== null && this.disk.holds(key)) return true;
    const buffer = Buffer.from(key, 'latin1');
    return this.memory.peek(buffer, 0, buffer.length) !== null;
  }

  unserve(key: string): void {
    const buffer = Buffer.from(key, 'latin1');
    // Not a change to ship: the audit makes this node agree with the versions it has.
    this.feed.fromPeer = true;
    try {
      if (this.memory.delete(buffer, 0, buffer.length)) this.unserved++;
    } finally {
      this.feed.fromPeer = false;
    }
  }

  /**
   * Items the data dir holds without a version (written, then the process died before
   * their version was kept; or kept before replication was on) get the oldest version
   * that still counts: just after the last flush_all. A peer's own change to the key
   * wins over it, and a peer that has none takes it, so the nodes agree either way.
   */
  private versionUnversioned(): number {
    const versions = this.versions;
    const hlc = Math.max(versions.flushHlc + 1, 0);
    const now = this.clock.now;
    let count = 0;
    this.disk!.forEachKey((key) => {
      if (versions.get(key) !== undefined || !this.serves(key)) return;
      versions.set(key, hlc, 0, false, now);
      count++;
    });
    return count;
  }

  // --- Lifecycle -----------------------------------------------------------------

  /** Opens the replication listener and starts the links to peers; resolves with HOST:PORT. */
  async listen(): Promise<string> {
    const kept = this.versionStore;
    if (kept !== null) {
      // After the data dir's items are loaded: their versions as they were.
      const loaded = kept.load(this.versions, this.clock.now);
      this.versions.sink = kept;
      // Versions made from now on come after every kept one, even if the wall clock went back.
      this.hlc.advance(this.versions.flushHlc);
      for (const version of this.versions.map.values()) this.hlc.advance(version.hlc);
      this.log.info({ versions: loaded }, `replication versions loaded: ${loaded}`);
      const unversioned = this.versionUnversioned();
      if (unversioned > 0) this.log.info({ unversioned }, `replication: ${unversioned} items on disk had no version; given the oldest`);
    }
    const server = createServer((socket) => {
      const session = new PublisherSession(socket, this);
      this.sessions.add(session);
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.config.listen, port: this.config.replicationPort }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (error) => this.log.error({ err: error }, 'replication listener error'));
    const address = server.address() as AddressInfo;
    this.address = `${address.address}:${address.port}`;
    this.log.info({ node: this.nodeId, address: this.address, peers: this.links.map((link) => link.address) }, 'replication listening');
    for (const link of this.links) link.start();
    return this.address;
  }

  /**
   * Waits until a full sync from the peers that serve is done, or, when none
   * answers as serving within --peer-wait, until that time is up (or every peer
   * answered that it is starting too). Then the node may serve.
   */
  join(): Promise<void> {
    if (this.links.length === 0) {
      this.finishJoin('no peers');
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.joinDone = resolve;
      this.joinTimer = setTimeout(() => {
        this.joinDeadlinePassed = true;
        this.linkChanged();
      }, this.config.peerWait * 1000);
      this.linkChanged();
    });
  }

  /** A link's state changed: the join may be over. */
  linkChanged(): void {
    if (!this.joining || this.joinDone === null) return;
    const links = this.links;
    if (links.some((link) => link.state === 'syncing')) return;
    if (links.some((link) => link.synced)) return this.finishJoin('synced');
    if (links.every((link) => link.answered && !link.peerReady)) return this.finishJoin('every peer is starting too');
    if (this.joinDeadlinePassed) return this.finishJoin('no peer ready within --peer-wait; serving empty');
  }

  private finishJoin(reason: string): void {
    this.joining = false;
    if (this.joinTimer !== null) clearTimeout(this.joinTimer);
    this.log.info({ reason, items: this.memory.itemCount }, `replication join done: ${reason}`);
    const done = this.joinDone;
    this.joinDone = null;
    done?.();
  }

  /** The node serves clients now. */
  markServing(): void {
    this.joining = false;
    this.serving = true;
  }

  sessionClosed(session: PublisherSession): void {
    this.sessions.delete(session);
  }

  async close(): Promise<void> {
    for (const link of this.links) link.close();
    for (const session of this.sessions) session.close();
    if (this.joinTimer !== null) clearTimeout(this.joinTimer);
    const server = this.server;
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
    await this.versionStore?.close();
  }

  // --- stats ----------------------------------------------------------------------

  /** `stats` lines: this node, then one group per --peer. */
  stats(): Array<[string, string | number]> {
    const pairs: Array<[string, string | number]> = [
      ['repl_node_id', this.nodeId],
      ['repl_address', this.address],
      ['repl_log_head', this.changes.head],
      ['repl_log_tail', this.changes.tail],
      ['repl_subscribers', this.sessions.size],
      ['repl_versions', this.versions.map.size],
      ['repl_tombstones', this.versions.tombstones],
      ['repl_store_refused', this.refused],
      ['repl_audit_unserved', this.unserved],
      ['repl_anti_entropy_rounds', this.aeRounds],
      ['repl_anti_entropy_differing', this.aeDiffering],
      ['repl_anti_entropy_sent', this.aeSent],
      ['repl_anti_entropy_applied', this.aeApplied],
    ];
    const kept = this.versionStore;
    if (kept !== null) {
      pairs.push(['repl_version_write_errors', kept.writes.writeErrors], ['repl_versions_failing', kept.writes.failing ? 1 : 0]);
    }
    if (this.dropFraction > 0) pairs.push(['repl_test_dropped', this.dropped]);
    this.links.forEach((link, i) => {
      let sent = link.bytesSent;
      let received = link.bytesReceived;
      let pushLag = 0;
      for (const session of this.sessions) {
        if (session.remoteNodeId !== link.remoteNodeId || link.remoteNodeId === '') continue;
        sent += session.bytesSent;
        received += session.bytesReceived;
        pushLag = Math.max(pushLag, this.changes.head - session.acked);
      }
      pairs.push(
        [`peer_${i}_address`, link.address],
        [`peer_${i}_node`, link.remoteNodeId || '-'],
        [`peer_${i}_state`, link.state],
        [`peer_${i}_lag_ops`, link.lagOps],
        [`peer_${i}_lag_ms`, link.lagMs],
        [`peer_${i}_push_lag_ops`, pushLag],
        [`peer_${i}_applied`, link.applied],
        [`peer_${i}_syncs`, link.syncs],
        [`peer_${i}_bytes_sent`, sent],
        [`peer_${i}_bytes_received`, received],
      );
    });
    return pairs;
  }
}
