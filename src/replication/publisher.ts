import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Clock } from '../base/clock.js';
import type { Persistence } from '../store/persistence.js';
import { isLoopback } from '../base/loopback.js';
import { MAC_BYTES, NONCE_BYTES, nonce, proof, proofMatches } from './auth.js';
import { onDigest, onKeys, type DigestSource } from './anti-entropy.js';
import { KIND_FLUSH, KIND_ITEM, KIND_TOMB, KIND_TOUCH, type ChangeLog } from './change-log.js';
import {
  FrameReader,
  FrameWriter,
  MAX_FRAME,
  MAX_FRAME_UNAUTHENTICATED,
  PROTOCOL_VERSION,
  T_ACK,
  T_AE_DIGEST,
  T_AE_KEYS,
  T_AUTH,
  T_CHALLENGE,
  T_FLUSH,
  T_HEARTBEAT,
  T_HELLO,
  T_ITEM,
  T_TOUCH,
  T_REFUSED,
  T_SNAPSHOT_BEGIN,
  T_SNAPSHOT_END,
  T_SUBSCRIBE,
  T_TOMB,
  T_WELCOME,
} from './frames.js';

/** Stop queueing on a socket that has this much unsent. */
const HIGH_WATER = 4 * 1024 * 1024;
/** Bytes per write. */
const BATCH = 1024 * 1024;
const HEARTBEAT_MS = 1000;
/**
 * A subscribed peer sends at least an ACK a second (see subscriber.ts); one silent
 * this long is taken as gone (a silent partition: no reset ever comes) and closed.
 */
const SILENCE_MS = 5000;
/** A connection that has not authenticated by then is dropped. */
const AUTH_TIMEOUT_MS = 10_000;

type State = 'hello' | 'auth' | 'welcomed' | 'snapshot' | 'streaming' | 'closed';

/** What a session serving a subscribed peer uses of this node (the Replicator). */
export interface PublisherHost extends DigestSource {
  readonly nodeId: string;
  readonly node: number;
  readonly epoch: number;
  readonly secret: Buffer | null;
  readonly insecure: boolean;
  readonly hasBaseState: boolean;
  readonly serving: boolean;
  readonly dropFraction: number;
  readonly changes: ChangeLog;
  readonly clock: Clock;
  readonly disk: Persistence | null;
  readonly log: Logger;
  dropped: number;
  lastApplied: boolean;
  aeSent: number;
  aeApplied: number;
  /** Applies one change frame from the peer (anti-entropy repairs); returns bytes consumed. */
  applyRecord(type: number, buf: Buffer, start: number, end: number): number;
  sessionClosed(session: PublisherSession): void;
}

/**
 * One peer subscribed to this node's changes (an inbound replication connection):
 * authenticates it, then streams a snapshot and/or this node's change log from its
 * cursor, in order, batched, and paced by the socket's backpressure.
 */
export class PublisherSession {
  /** Small frames only until the peer has authenticated. */
  private readonly reader = new FrameReader(MAX_FRAME_UNAUTHENTICATED);
  private readonly writer = new FrameWriter();
  private state: State = 'hello';
  private readonly ourNonce = nonce();
  private theirNonce: Buffer = Buffer.alloc(0);
  remoteNodeId = '';
  /** Last log sequence number queued to the peer. */
  cursor = 0;
  /** Last one the peer said it applied. */
  acked = 0;
  bytesSent = 0;
  bytesReceived = 0;
  /** When anything last arrived from the peer. */
  private lastHeard = Date.now();
  private snapshotKeys: string[] = [];
  /** With --data-dir: keys only the disk holds (evicted from memory, or never loaded). */
  private snapshotDiskKeys: string[] = [];
  private snapshotTombs: string[] = [];
  private snapshotIndex = 0;
  private snapshotCursor = 0;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly authTimer: NodeJS.Timeout;
  private slicePending = false;

  constructor(
    private readonly socket: Socket,
    private readonly rep: PublisherHost,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.resume());
    socket.on('error', (error) => rep.log.debug({ err: error, remote: this.remote }, 'replication session error'));
    socket.on('close', () => this.onClose());
    this.heartbeat = setInterval(() => {
      if (!this.subscribed) return;
      if (Date.now() - this.lastHeard > SILENCE_MS) {
        rep.log.warn({ remote: this.remote, node: this.remoteNodeId }, `replication peer ${this.remoteNodeId} silent for ${SILENCE_MS / 1000} s; closing its session`);
        this.close();
        return;
      }
      this.send(T_HEARTBEAT, [rep.changes.head, Date.now()]);
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
    this.authTimer = setTimeout(() => {
      if (this.state !== 'hello' && this.state !== 'auth') return;
      rep.log.warn({ remote: this.remote, node: this.remoteNodeId || undefined }, `replication peer did not authenticate within ${AUTH_TIMEOUT_MS / 1000} s; closing`);
      this.close();
    }, AUTH_TIMEOUT_MS);
    this.authTimer.unref();
  }

  get remote(): string {
    return `${this.socket.remoteAddress}:${this.socket.remotePort}`;
  }

  get streaming(): boolean {
    return this.state === 'streaming';
  }

  /** Authenticated and subscribed: the peer may take part in anti-entropy. */
  private get subscribed(): boolean {
    return this.state === 'streaming' || this.state === 'snapshot';
  }

  close(): void {
    this.state = 'closed';
    this.socket.destroy();
  }

  private onClose(): void {
    this.state = 'closed';
    clearInterval(this.heartbeat);
    clearTimeout(this.authTimer);
    this.rep.sessionClosed(this);
  }

  private refuse(reason: string): void {
    this.rep.log.warn({ remote: this.remote, node: this.remoteNodeId || undefined, reason }, `replication peer refused: ${reason}`);
    // Whatever a handler left half-written goes; only REFUSED is sent.
    this.writer.take();
    this.send(T_REFUSED, [], Buffer.from(reason));
    this.state = 'closed';
    this.socket.end();
    this.socket.once('finish', () => this.socket.destroy());
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    this.lastHeard = Date.now();
    this.bytesReceived += chunk.length;
    this.reader.push(chunk);
    const r = this.reader;
    try {
      for (let type = r.next(); type !== -1 && (this.state as State) !== 'closed'; type = r.next()) this.onFrame(type, r.buf, r.start, r.end);
    } catch (error) {
      this.refuse((error as Error).message);
    }
  }

  private onFrame(type: number, buf: Buffer, start: number, end: number): void {
    const rep = this.rep;
    switch (type) {
      case T_HELLO: {
        if (this.state !== 'hello') return this.refuse('unexpected hello');
        if (end - start < 1 + NONCE_BYTES) return this.refuse('short hello');
        if (buf[start] !== PROTOCOL_VERSION) return this.refuse(`protocol version ${buf[start]} is not ${PROTOCOL_VERSION}`);
        this.theirNonce = Buffer.from(buf.subarray(start + 1, start + 1 + NONCE_BYTES));
        this.remoteNodeId = buf.toString('utf8', start + 1 + NONCE_BYTES, end);
        if (this.remoteNodeId === rep.nodeId) return this.refuse(`node id ${rep.nodeId} is this node's own`);
        if (rep.secret === null && !rep.insecure && !isLoopback(this.socket.remoteAddress)) {
          return this.refuse('not a loopback peer (give both nodes --replication-secret-file, or --replication-insecure)');
        }
        const mac = rep.secret === null ? Buffer.alloc(0) : proof(rep.secret, 'publisher', this.theirNonce, this.ourNonce);
        const body = Buffer.concat([this.ourNonce, Buffer.from([mac.length]), mac, Buffer.from(rep.nodeId)]);
        this.send(T_CHALLENGE, [], body);
        this.state = 'auth';
        return;
      }
      case T_AUTH: {
        if (this.state !== 'auth') return this.refuse('unexpected auth');
        if (rep.secret !== null) {
          const expected = proof(rep.secret, 'subscriber', this.ourNonce, this.theirNonce);
          if (end - start !== MAC_BYTES) return this.refuse('peer did not prove the shared secret (it has none)');
          if (!proofMatches(expected, buf.subarray(start, end))) return this.refuse('wrong secret');
        }
        this.state = 'welcomed';
        clearTimeout(this.authTimer);
        this.reader.limit = MAX_FRAME;
        const log = rep.changes;
        this.send(T_WELCOME, [rep.epoch, rep.serving ? 1 : 0, log.tail, log.head, rep.hasBaseState ? 1 : 0]);
        rep.log.info({ remote: this.remote, node: this.remoteNodeId }, 'replication peer subscribed');
        return;
      }
      case T_SUBSCRIBE: {
        if (this.state !== 'welcomed' || end - start < 16) return this.refuse('unexpected subscribe');
        const snapshot = buf.readDoubleBE(start) === 1;
        const cursor = buf.readDoubleBE(start + 8);
        if (snapshot || cursor < rep.changes.tail || cursor > rep.changes.head) {
          this.startSnapshot();
        } else {
          this.cursor = cursor;
          this.acked = cursor;
          this.state = 'streaming';
          this.pump();
        }
        return;
      }
      case T_ACK:
        if (!this.subscribed) return this.refuse('unexpected ack');
        // During a snapshot (and just after) the peer's ACKs only keep the link alive: its cursor lags ours.
        if (this.state === 'streaming' && end - start >= 8) this.acked = Math.max(this.acked, buf.readDoubleBE(start));
        return;
      // Anti-entropy, from the peer's link (it starts the rounds; see anti-entropy.ts).
      case T_AE_DIGEST:
        if (!this.subscribed) return this.refuse('unexpected anti-entropy digest');
        if (end - start >= 40 && onDigest(rep, this.writer, buf, start)) this.write();
        return;
      case T_AE_KEYS:
        if (!this.subscribed) return this.refuse('unexpected anti-entropy keys');
        if (end - start >= 10) {
          rep.aeSent += onKeys(rep, this.writer, buf, start, end);
          this.write();
        }
        return;
      case T_ITEM:
      case T_TOMB:
      case T_TOUCH:
      case T_FLUSH:
        // Repairs the peer sends in an anti-entropy round (sequence number 0).
        if (!this.subscribed) return this.refuse('unexpected data frame');
        rep.applyRecord(type, buf, start, end);
        if (rep.lastApplied) rep.aeApplied++;
        return;
      default:
        return this.refuse(`unexpected frame type ${type}`);
    }
  }

  private send(type: number, numbers: readonly number[], tail: Buffer | null = null): void {
    this.writer.control(type, numbers, tail);
    this.write();
  }

  private write(): void {
    const pieces = this.writer.take();
    if (pieces.length === 0 || this.socket.destroyed) return;
    const socket = this.socket;
    if (pieces.length > 1) socket.cork();
    for (const piece of pieces) {
      this.bytesSent += piece.length;
      socket.write(piece);
    }
    if (pieces.length > 1) socket.uncork();
  }

  private resume(): void {
    if (this.state === 'streaming') this.pump();
    else if (this.state === 'snapshot') this.scheduleSlice();
  }

  /** Queues log entries after the cursor until the socket has enough unsent. */
  pump(): void {
    if (this.state !== 'streaming') return;
    const log = this.rep.changes;
    if (this.cursor < log.tail) {
      // The peer fell further behind than the log reaches: it needs everything again.
      this.rep.log.warn({ node: this.remoteNodeId, cursor: this.cursor, tail: log.tail }, 'replication peer fell behind the change log; sending a full snapshot');
      this.startSnapshot();
      return;
    }
    const node = this.rep.node;
    const drop = this.rep.dropFraction;
    const w = this.writer;
    while (this.cursor < log.head && this.socket.writableLength < HIGH_WATER && !this.socket.destroyed) {
      while (this.cursor < log.head && w.size < BATCH) {
        const seq = ++this.cursor;
        if (drop > 0 && Math.random() < drop) {
          // --test-drop-changes: the change is lost on the way (anti-entropy must repair it).
          this.rep.dropped++;
          continue;
        }
        const kind = log.kind(seq);
        if (kind === KIND_ITEM) w.item(seq, log.hlc(seq), node, log.flagsOf(seq), log.time(seq), log.binaryKey(seq), log.key(seq), log.value(seq)!);
        else if (kind === KIND_TOMB) w.tomb(seq, log.hlc(seq), node, log.key(seq));
        else if (kind === KIND_TOUCH) w.touch(seq, log.hlc(seq), node, log.baseHlc(seq), log.flagsOf(seq), log.time(seq), log.key(seq));
        else if (kind === KIND_FLUSH) w.flush(seq, log.hlc(seq), node, log.time(seq));
      }
      this.write();
    }
  }

  private startSnapshot(): void {
    const rep = this.rep;
    this.state = 'snapshot';
    this.snapshotCursor = rep.changes.head;
    const keys: string[] = [];
    rep.memory.dump((item) => {
      keys.push(item.key);
      return true;
    });
    const diskKeys: string[] = [];
    if (rep.disk !== null) {
      const inMemory = new Set(keys);
      rep.disk.forEachKey((key) => {
        if (!inMemory.has(key)) diskKeys.push(key);
      });
    }
    const tombs: string[] = [];
    for (const [key, version] of rep.versions.map) if (version.tomb) tombs.push(key);
    this.snapshotKeys = keys;
    this.snapshotDiskKeys = diskKeys;
    this.snapshotTombs = tombs;
    this.snapshotIndex = 0;
    const items = keys.length + diskKeys.length;
    rep.log.info({ node: this.remoteNodeId, items, onDiskOnly: diskKeys.length, tombstones: tombs.length }, `sending a snapshot to ${this.remoteNodeId}: ${items} items`);
    this.send(T_SNAPSHOT_BEGIN, [items + tombs.length]);
    if (rep.versions.flushHlc >= 0) this.writer.flush(0, rep.versions.flushHlc, rep.versions.flushNode, 0);
    this.scheduleSlice();
  }

  private scheduleSlice(): void {
    if (this.slicePending) return;
    this.slicePending = true;
    setImmediate(() => {
      this.slicePending = false;
      this.snapshotSlice();
    });
  }

  /** Queues the next part of the snapshot, then lets the event loop run. */
  private snapshotSlice(): void {
    if (this.state !== 'snapshot' || this.socket.destroyed) return;
    const rep = this.rep;
    const memory = rep.memory;
    const versions = rep.versions;
    const w = this.writer;
    const keys = this.snapshotKeys;
    const diskKeys = this.snapshotDiskKeys;
    const items = keys.length + diskKeys.length;
    const total = items + this.snapshotTombs.length;
    while (this.snapshotIndex < total && w.size < BATCH) {
      const index = this.snapshotIndex++;
      if (index < keys.length) {
        const key = keys[index]!;
        const keyBuffer = Buffer.from(key, 'latin1');
        const item = memory.peek(keyBuffer, 0, keyBuffer.length);
        if (item === null) continue;
        const version = versions.get(key);
        const live = version !== undefined && !version.tomb;
        w.item(0, live ? version.hlc : 0, live ? version.node : 0, item.flags, item.exptime, item.binaryKey, key, item.copyValue());
      } else if (index < items) {
        // Read from disk directly: a snapshot must not churn memory by promoting every item.
        const key = diskKeys[index - keys.length]!;
        const record = rep.disk!.record(key);
        if (record === null || (record.exptime !== 0 && record.exptime <= rep.clock.now)) continue;
        const version = versions.get(key);
        if (version !== undefined && version.tomb) continue;
        w.item(0, version?.hlc ?? 0, version?.node ?? 0, record.flags, record.exptime, record.binaryKey, key, record.value);
      } else {
        const key = this.snapshotTombs[index - items]!;
        const version = versions.get(key);
        if (version !== undefined && version.tomb) w.tomb(0, version.hlc, version.node, key);
      }
    }
    if (this.snapshotIndex < total) {
      this.write();
      if (this.socket.writableLength < HIGH_WATER) this.scheduleSlice();
      return;
    }
    this.snapshotKeys = [];
    this.snapshotDiskKeys = [];
    this.snapshotTombs = [];
    w.control(T_SNAPSHOT_END, [this.snapshotCursor]);
    this.write();
    this.cursor = this.snapshotCursor;
    this.state = 'streaming';
    this.pump();
  }
}
