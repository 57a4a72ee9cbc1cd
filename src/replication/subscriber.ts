import { connect, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { onBuckets, onWant, writeDigest, type DigestSource } from './anti-entropy.js';
import { MAC_BYTES, NONCE_BYTES, nonce, proof, proofMatches } from './auth.js';
import {
  FrameReader,
  FrameWriter,
  MAX_FRAME,
  MAX_FRAME_UNAUTHENTICATED,
  PROTOCOL_VERSION,
  T_ACK,
  T_AE_BUCKETS,
  T_AE_WANT,
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
import { wallMs } from './hlc.js';

const FIRST_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 2000;
const ACK_MS = 250;
const PROGRESS_MS = 1000;
/**
 * A link that hears nothing for this long is taken as dead and reconnected: the
 * peer sends a heartbeat every second, so only a silent partition (packets
 * dropped, no reset) gets here.
 */
const SILENCE_MS = 5000;
/** A subscribed link that sent nothing for this long sends an ACK anyway, so the publisher can tell silence too. */
const KEEPALIVE_MS = 1000;

export type LinkState = 'connecting' | 'handshake' | 'syncing' | 'connected' | 'down' | 'refused';

/** What the link to a --peer uses of this node (the Replicator). */
export interface PeerLinkHost extends DigestSource {
  readonly nodeId: string;
  readonly secret: Buffer | null;
  readonly antiEntropyMs: number;
  readonly joining: boolean;
  readonly log: Logger;
  lastApplied: boolean;
  aeRounds: number;
  aeDiffering: number;
  aeSent: number;
  aeApplied: number;
  /** Applies one change frame from the peer; returns bytes consumed. */
  applyRecord(type: number, buf: Buffer, start: number, end: number): number;
  /** A link connected, closed or changed state (for stats and readiness). */
  linkChanged(): void;
}

/**
 * This node's subscription to one --peer: connects (reconnecting with backoff),
 * authenticates, asks for the peer's changes from where it left off (or a full
 * snapshot), and applies what arrives, last writer wins.
 */
export class PeerLink {
  state: LinkState = 'down';
  remoteNodeId = '';
  /** The peer's process incarnation the cursor belongs to (-1: none yet). */
  private epoch = -1;
  /** The incarnation WELCOME named: the cursor belongs to it once a snapshot from it is complete. */
  private pendingEpoch = -1;
  /** The peer proved it knows the secret (or needs not: no secret) on this connection. */
  private authenticated = false;
  /** Last sequence number of the peer's change log applied here. */
  cursor = 0;
  private ackedCursor = 0;
  /** The peer's log head, as last heard. */
  peerHead = 0;
  /** Version time of the last change applied from the peer. */
  lastHlc = 0;
  /** Handshake done at least once since start, and whether the peer served then. */
  answered = false;
  peerReady = false;
  /** A full snapshot from this peer finished. */
  synced = false;
  bytesSent = 0;
  bytesReceived = 0;
  applied = 0;
  syncs = 0;
  private socket: Socket | null = null;
  private reader = new FrameReader(MAX_FRAME_UNAUTHENTICATED);
  private readonly writer = new FrameWriter();
  private ourNonce = nonce();
  private backoff = FIRST_BACKOFF_MS;
  private retry: NodeJS.Timeout | null = null;
  private readonly ackTimer: NodeJS.Timeout;
  private closed = false;
  private syncTotal = 0;
  private syncSeen = 0;
  private syncStarted = 0;
  private lastProgress = 0;
  /** When anything last arrived from the peer (or the connection attempt began). */
  private lastHeard = 0;
  /** When anything last went out to the peer. */
  private lastSent = 0;
  private readonly aeTimer: NodeJS.Timeout | null = null;
  /** The anti-entropy round in progress (its number). */
  private aeRound = 0;

  constructor(
    readonly host: string,
    readonly port: number,
    private readonly rep: PeerLinkHost,
  ) {
    this.ackTimer = setInterval(() => {
      if (this.cursor !== this.ackedCursor && this.state === 'connected') {
        this.ackedCursor = this.cursor;
        this.send(T_ACK, [this.cursor]);
      } else if (this.subscribed && Date.now() - this.lastSent >= KEEPALIVE_MS) {
        this.send(T_ACK, [this.ackedCursor]);
      }
      if (this.socket !== null && this.state !== 'refused' && Date.now() - this.lastHeard > SILENCE_MS) {
        this.rep.log.warn({ peer: this.address, node: this.remoteNodeId || undefined, state: this.state }, `replication link to ${this.address} silent for ${SILENCE_MS / 1000} s; reconnecting`);
        this.socket.destroy();
      }
    }, ACK_MS);
    this.ackTimer.unref();
    if (rep.antiEntropyMs > 0) {
      this.aeTimer = setInterval(() => this.antiEntropy(), rep.antiEntropyMs);
      this.aeTimer.unref();
    }
  }

  get address(): string {
    return `${this.host}:${this.port}`;
  }

  /** Changes the peer made that are not applied here yet, as far as its heartbeats tell. */
  get lagOps(): number {
    return Math.max(0, this.peerHead - this.cursor);
  }

  get lagMs(): number {
    return this.lagOps === 0 || this.lastHlc === 0 ? 0 : Math.max(0, Date.now() - wallMs(this.lastHlc));
  }

  start(): void {
    if (this.closed) return;
    this.state = 'connecting';
    this.lastHeard = Date.now();
    this.reader = new FrameReader(MAX_FRAME_UNAUTHENTICATED);
    this.authenticated = false;
    // Nothing left over from the last connection may go out before HELLO.
    this.writer.take();
    this.ourNonce = nonce();
    const socket = connect({ host: this.host, port: this.port });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('connect', () => {
      this.state = 'handshake';
      this.send(T_HELLO, [], Buffer.concat([Buffer.from([PROTOCOL_VERSION]), this.ourNonce, Buffer.from(this.rep.nodeId)]));
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => this.rep.log.debug({ err: error, peer: this.address }, 'replication link error'));
    socket.on('close', () => this.onClose(socket));
  }

  close(): void {
    this.closed = true;
    clearInterval(this.ackTimer);
    if (this.aeTimer !== null) clearInterval(this.aeTimer);
    if (this.retry !== null) clearTimeout(this.retry);
    this.socket?.destroy();
  }

  private onClose(socket: Socket): void {
    if (socket !== this.socket) return;
    this.socket = null;
    const was = this.state;
    if (was !== 'refused') this.state = 'down';
    if (was === 'connected' || was === 'syncing') this.rep.log.warn({ peer: this.address, node: this.remoteNodeId }, 'replication link to peer lost; reconnecting');
    this.rep.linkChanged();
    if (this.closed) return;
    const delay = was === 'refused' ? MAX_BACKOFF_MS : this.backoff;
    this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
    this.retry = setTimeout(() => {
      this.retry = null;
      this.start();
    }, delay * (0.75 + Math.random() / 2));
    this.retry.unref();
  }

  private fail(reason: string): void {
    this.rep.log.warn({ peer: this.address, node: this.remoteNodeId || undefined, reason }, `replication peer refused: ${reason}`);
    this.state = 'refused';
    this.writer.take();
    this.socket?.destroy();
  }

  private send(type: number, numbers: readonly number[], tail: Buffer | null = null): void {
    const socket = this.socket;
    if (socket === null || socket.destroyed) return;
    this.writer.control(type, numbers, tail);
    this.lastSent = Date.now();
    for (const piece of this.writer.take()) {
      this.bytesSent += piece.length;
      socket.write(piece);
    }
  }

  /** Starts an anti-entropy round with the peer: one small digest frame (see anti-entropy.ts). */
  private antiEntropy(): void {
    if (this.state !== 'connected') return;
    this.aeRound++;
    this.rep.aeRounds++;
    writeDigest(this.rep, this.writer, this.aeRound);
    this.flushWriter();
  }

  private flushWriter(): void {
    const socket = this.socket;
    const pieces = this.writer.take();
    if (socket === null || socket.destroyed) return;
    this.lastSent = Date.now();
    if (pieces.length > 1) socket.cork();
    for (const piece of pieces) {
      this.bytesSent += piece.length;
      socket.write(piece);
    }
    if (pieces.length > 1) socket.uncork();
  }

  private onData(chunk: Buffer): void {
    this.lastHeard = Date.now();
    this.bytesReceived += chunk.length;
    const r = this.reader;
    r.push(chunk);
    try {
      for (let type = r.next(); type !== -1 && this.socket !== null && this.state !== 'refused'; type = r.next()) {
        this.onFrame(type, r.buf, r.start, r.end);
      }
    } catch (error) {
      this.fail((error as Error).message);
    }
    if (this.state === 'syncing') this.progress(false);
  }

  /** WELCOME arrived: the peer's changes and snapshots may come. */
  private get subscribed(): boolean {
    return this.state === 'syncing' || this.state === 'connected';
  }

  private onFrame(type: number, buf: Buffer, start: number, end: number): void {
    const rep = this.rep;
    switch (type) {
      case T_ITEM:
      case T_TOMB:
      case T_TOUCH:
      case T_FLUSH: {
        if (!this.subscribed) return this.fail(`unexpected data frame (type ${type}) before the subscription`);
        const seq = rep.applyRecord(type, buf, start, end);
        if (seq > 0) {
          this.cursor = seq;
          if (seq > this.peerHead) this.peerHead = seq;
        } else if (this.state === 'syncing') {
          this.syncSeen++;
        } else {
          // An anti-entropy repair.
          if (rep.lastApplied) rep.aeApplied++;
          return;
        }
        this.lastHlc = buf.readDoubleBE(start + 8);
        this.applied++;
        return;
      }
      case T_AE_BUCKETS: {
        if (!this.subscribed) return this.fail('unexpected anti-entropy buckets');
        if (this.state !== 'connected' || end - start < 24) return;
        const differing = onBuckets(rep, this.writer, buf, start, end, this.aeRound);
        if (differing > 0) {
          rep.aeDiffering++;
          rep.log.debug({ peer: this.address, node: this.remoteNodeId, buckets: differing }, 'anti-entropy: buckets differ');
        }
        this.flushWriter();
        return;
      }
      case T_AE_WANT: {
        if (!this.subscribed) return this.fail('unexpected anti-entropy want list');
        if (this.state !== 'connected') return;
        rep.aeSent += onWant(rep, this.writer, buf, start, end);
        this.flushWriter();
        return;
      }
      case T_HEARTBEAT:
        if (!this.subscribed) return this.fail('unexpected heartbeat');
        if (end - start >= 8) this.peerHead = buf.readDoubleBE(start);
        return;
      case T_CHALLENGE: {
        if (this.state !== 'handshake' || this.authenticated) return this.fail('unexpected challenge');
        if (end - start < NONCE_BYTES + 1 || end - start < NONCE_BYTES + 1 + buf[start + NONCE_BYTES]!) return this.fail('short challenge');
        const theirNonce = buf.subarray(start, start + NONCE_BYTES);
        const macLength = buf[start + NONCE_BYTES]!;
        const mac = buf.subarray(start + NONCE_BYTES + 1, start + NONCE_BYTES + 1 + macLength);
        this.remoteNodeId = buf.toString('utf8', start + NONCE_BYTES + 1 + macLength, end);
        const secret = rep.secret;
        if (secret !== null) {
          if (macLength !== MAC_BYTES) return this.fail('peer did not prove the shared secret (it has none)');
          if (!proofMatches(proof(secret, 'publisher', this.ourNonce, theirNonce), mac)) return this.fail('wrong secret');
        }
        // The peer proved the secret (without one, --peer is loopback or --replication-insecure).
        this.authenticated = true;
        this.reader.limit = MAX_FRAME;
        this.send(T_AUTH, [], secret === null ? null : proof(secret, 'subscriber', theirNonce, this.ourNonce));
        return;
      }
      case T_REFUSED:
        return this.fail(`refused by the peer: ${buf.toString('utf8', start, end)}`);
      case T_WELCOME: {
        if (this.state !== 'handshake' || !this.authenticated) return this.fail('unexpected welcome before the peer proved the secret');
        if (end - start < 40) return this.fail('short welcome');
        const epoch = buf.readDoubleBE(start);
        const ready = buf.readDoubleBE(start + 8) === 1;
        const tail = buf.readDoubleBE(start + 16);
        const head = buf.readDoubleBE(start + 24);
        const hasBaseState = buf.readDoubleBE(start + 32) === 1;
        this.backoff = FIRST_BACKOFF_MS;
        this.answered = true;
        this.peerReady = ready;
        this.peerHead = head;
        let snapshot: boolean;
        if (epoch === this.epoch) {
          // Reconnected to the same process: catch up from its change log (it falls back to a snapshot if it must).
          snapshot = false;
        } else {
          this.cursor = 0;
          // Joining: copy everything from a peer that serves. Otherwise a new process
          // whose log reaches back to its start has nothing else this node lacks. A
          // snapshot from it that was cut off is asked for again.
          snapshot = (rep.joining && ready) || tail > 0 || hasBaseState && ready || this.pendingEpoch === epoch;
          // With a snapshot, the epoch (and so the cursor) counts only once the snapshot
          // is complete (SNAPSHOT_END): one cut off does not reconnect to the log alone.
          if (!snapshot) this.epoch = epoch;
        }
        this.pendingEpoch = epoch;
        rep.log.info(
          { peer: this.address, node: this.remoteNodeId, ready, mode: snapshot ? 'snapshot' : 'log', cursor: this.cursor },
          `replication link to ${this.remoteNodeId} at ${this.address} up`,
        );
        this.state = snapshot ? 'syncing' : 'connected';
        if (snapshot) this.beginSync(0);
        this.ackedCursor = this.cursor;
        this.send(T_SUBSCRIBE, [snapshot ? 1 : 0, this.cursor]);
        rep.linkChanged();
        return;
      }
      case T_SNAPSHOT_BEGIN:
        if (!this.subscribed || end - start < 8) return this.fail('unexpected snapshot');
        this.state = 'syncing';
        this.beginSync(buf.readDoubleBE(start));
        return;
      case T_SNAPSHOT_END: {
        if (this.state !== 'syncing' || end - start < 8) return this.fail('unexpected end of snapshot');
        this.cursor = buf.readDoubleBE(start);
        this.epoch = this.pendingEpoch;
        this.state = 'connected';
        this.synced = true;
        this.syncs++;
        this.progress(true);
        rep.linkChanged();
        return;
      }
      default:
        return this.fail(`unexpected frame type ${type}`);
    }
  }

  private beginSync(total: number): void {
    if (this.syncStarted === 0 || total > 0) {
      this.syncTotal = total;
      this.syncSeen = 0;
      this.syncStarted = Date.now();
      this.lastProgress = this.syncStarted;
    }
  }

  /** The sync's progress line, at most once a second, and its last line. */
  private progress(done: boolean): void {
    const now = Date.now();
    if (!done && now - this.lastProgress < PROGRESS_MS) return;
    this.lastProgress = now;
    const seconds = Math.max(0.001, (now - this.syncStarted) / 1000);
    const rate = Math.round(this.syncSeen / seconds);
    const fields = { peer: this.address, node: this.remoteNodeId, received: this.syncSeen, total: this.syncTotal, rate, seconds };
    if (done) {
      this.rep.log.info(fields, `synced from ${this.remoteNodeId}: ${this.syncSeen} items in ${seconds.toFixed(2)} s (${rate}/s)`);
      this.syncStarted = 0;
    } else {
      this.rep.log.info(fields, `syncing from ${this.remoteNodeId}: ${this.syncSeen}/${this.syncTotal} items, ${rate}/s`);
    }
  }
}
