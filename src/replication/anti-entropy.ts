import { T_AE_BUCKETS, T_AE_DIGEST, T_AE_KEYS, T_AE_WANT, type FrameWriter } from './frames.js';
import { compareVersions, wallMs } from './hlc.js';
import type { Store } from '../store/store.js';
import { AE_BUCKETS, type Version, type VersionTable } from './versions.js';

/**
 * Anti-entropy: repairs divergence between two nodes' version tables, whatever its
 * cause (a lost or dropped change, a bug, a partition longer than the change log).
 * The tables say what each node serves (the audit in VersionTable.prune deletes an
 * item served under a tombstone and forgets a live entry whose item is gone), so
 * comparing them compares served state, not only the history of changes.
 *
 * Every interval each link (the initiator, this node's subscription to a peer) sends
 * one small T_AE_DIGEST: its flush_all version and the root digest of its version
 * table (the XOR of 1024 bucket digests, each the XOR of a 64-bit hash of every
 * (key, version, tombstone) in the bucket, kept up to date on every change). When
 * the peer (the responder) has the same, nothing more is sent. Otherwise:
 *   responder -> T_AE_BUCKETS: its flush version and its 1024 bucket digests;
 *   initiator -> T_AE_KEYS: its (key, version) lists of some differing buckets
 *                (up to MAX_ROUND_ENTRIES entries; later rounds take the rest);
 *   responder -> the items and tombstones where it is newer (or the initiator lacks
 *                the key), and T_AE_WANT naming the keys where the initiator is newer;
 *   initiator -> those items and tombstones.
 * The newer side always sends; applying is last-writer-wins, so a repair that races a
 * change in flight is harmless. Differences younger than RECENT_MS are left to the
 * change stream (they are most likely in flight), so steady writes do not cause repairs.
 * An item that left memory (expired, evicted) is not sent: there is nothing to send.
 */

/** What anti-entropy reads of the node: its version table, and what it serves. */
export interface DigestSource {
  readonly versions: VersionTable;
  readonly memory: Store;
}

/** Differences this young are most likely in flight: the change stream delivers them. */
export const RECENT_MS = 1000;
/** (key, version) entries one round lists at most. */
const MAX_ROUND_ENTRIES = 20_000;
/** Value bytes one round repairs at most (more differences: later rounds). */
const MAX_ROUND_BYTES = 16 * 1024 * 1024;

/** The first frame of a round (initiator). */
export function writeDigest(rep: DigestSource, w: FrameWriter, round: number): void {
  const v = rep.versions;
  w.control(T_AE_DIGEST, [round, v.flushHlc, v.flushNode, v.rootA, v.rootB]);
}

/** Sends our flush_all version when it is newer than theirs. */
function sendFlushIfNewer(rep: DigestSource, w: FrameWriter, theirHlc: number, theirNode: number): void {
  const v = rep.versions;
  if (v.flushHlc >= 0 && compareVersions(v.flushHlc, v.flushNode, theirHlc, theirNode) > 0) w.flush(0, v.flushHlc, v.flushNode, 0);
}

/** Responder: a digest arrived. True when it differed (a bucket list was sent). */
export function onDigest(rep: DigestSource, w: FrameWriter, buf: Buffer, start: number): boolean {
  const round = buf.readDoubleBE(start);
  const flushHlc = buf.readDoubleBE(start + 8);
  const flushNode = buf.readDoubleBE(start + 16);
  const rootA = buf.readDoubleBE(start + 24);
  const rootB = buf.readDoubleBE(start + 32);
  const v = rep.versions;
  sendFlushIfNewer(rep, w, flushHlc, flushNode);
  if (rootA === v.rootA && rootB === v.rootB && flushHlc === v.flushHlc && flushNode === v.flushNode) return false;
  const digests = Buffer.allocUnsafe(AE_BUCKETS * 8);
  for (let i = 0; i < AE_BUCKETS; i++) {
    digests.writeUInt32BE(v.digestA[i]!, i * 8);
    digests.writeUInt32BE(v.digestB[i]!, i * 8 + 4);
  }
  w.control(T_AE_BUCKETS, [round, v.flushHlc, v.flushNode], digests);
  return true;
}

/** Encodes one (key, version) entry. */
function entryBytes(key: string, version: Version): Buffer {
  const b = Buffer.allocUnsafe(1 + key.length + 13);
  b[0] = key.length;
  let o = 1 + b.write(key, 1, 'latin1');
  o = b.writeDoubleBE(version.hlc, o);
  o = b.writeUInt32BE(version.node, o);
  b[o] = version.tomb ? 1 : 0;
  return b;
}

/** Initiator: the responder's bucket digests arrived; lists our entries of the buckets that differ. Returns how many differ. */
export function onBuckets(rep: DigestSource, w: FrameWriter, buf: Buffer, start: number, end: number, round: number): number {
  const theirRound = buf.readDoubleBE(start);
  sendFlushIfNewer(rep, w, buf.readDoubleBE(start + 8), buf.readDoubleBE(start + 16));
  const digests = start + 24;
  if (end - digests !== AE_BUCKETS * 8 || theirRound !== round) return 0;
  const v = rep.versions;
  const differing: number[] = [];
  for (let i = 0; i < AE_BUCKETS; i++) {
    if (buf.readUInt32BE(digests + i * 8) !== v.digestA[i] || buf.readUInt32BE(digests + i * 8 + 4) !== v.digestB[i]) differing.push(i);
  }
  if (differing.length === 0) return 0;
  // Start at a place that moves with the round, so every differing bucket gets its turn.
  const first = round % differing.length;
  const chosen = new Uint8Array(AE_BUCKETS);
  const list: number[] = [];
  let entries = 0;
  for (let k = 0; k < differing.length; k++) {
    const bucket = differing[(first + k) % differing.length]!;
    if (list.length > 0 && entries + v.counts[bucket]! > MAX_ROUND_ENTRIES) break;
    chosen[bucket] = 1;
    list.push(bucket);
    entries += v.counts[bucket]!;
  }
  const parts: Buffer[] = [];
  const head = Buffer.allocUnsafe(2 + list.length * 2);
  head.writeUInt16BE(list.length, 0);
  list.forEach((bucket, i) => head.writeUInt16BE(bucket, 2 + i * 2));
  parts.push(head);
  for (const [key, version] of v.map) if (chosen[version.bucket] === 1) parts.push(entryBytes(key, version));
  w.control(T_AE_KEYS, [round], Buffer.concat(parts));
  return differing.length;
}

/** Writes our item or tombstone for the key as a repair; returns its value bytes (-1: nothing to send). */
export function writeRepair(rep: DigestSource, w: FrameWriter, key: string): number {
  const version = rep.versions.get(key);
  if (version === undefined) return -1;
  if (version.tomb) {
    w.tomb(0, version.hlc, version.node, key);
    return 0;
  }
  const keyBuffer = Buffer.from(key, 'latin1');
  const item = rep.memory.peek(keyBuffer, 0, keyBuffer.length);
  if (item === null) {
    // Expired, evicted, or lost in a crash after its version was kept: nothing to
    // send, and the entry is forgotten, so a peer's version of the key can win.
    rep.versions.drop(key);
    return -1;
  }
  w.item(0, version.hlc, version.node, item.flags, item.exptime, item.binaryKey, key, item.copyValue());
  return item.valueLength;
}

function recent(hlc: number, now: number): boolean {
  return now - wallMs(hlc) < RECENT_MS;
}

/** Responder: the initiator's entries arrived. Sends what we have newer, asks for what it has newer; returns keys sent. */
export function onKeys(rep: DigestSource, w: FrameWriter, buf: Buffer, start: number, end: number): number {
  const round = buf.readDoubleBE(start);
  let o = start + 8;
  const count = buf.readUInt16BE(o);
  o += 2;
  if (o + count * 2 > end) throw new Error('bad anti-entropy bucket list');
  const chosen = new Uint8Array(AE_BUCKETS);
  for (let i = 0; i < count; i++, o += 2) chosen[buf.readUInt16BE(o) & (AE_BUCKETS - 1)] = 1;
  const theirs = new Map<string, { hlc: number; node: number }>();
  while (o < end) {
    const keyLength = buf[o]!;
    if (o + 1 + keyLength + 13 > end) throw new Error('bad anti-entropy key list');
    const key = buf.toString('latin1', o + 1, o + 1 + keyLength);
    o += 1 + keyLength;
    theirs.set(key, { hlc: buf.readDoubleBE(o), node: buf.readUInt32BE(o + 8) });
    o += 13;
  }
  const now = Date.now();
  const v = rep.versions;
  const wanted: Buffer[] = [];
  let sent = 0;
  let bytes = 0;
  for (const [key, ours] of v.map) {
    if (chosen[ours.bucket] !== 1) continue;
    const their = theirs.get(key);
    theirs.delete(key);
    const order = their === undefined ? 1 : compareVersions(ours.hlc, ours.node, their.hlc, their.node);
    if (order > 0) {
      if (recent(ours.hlc, now) || bytes > MAX_ROUND_BYTES) continue;
      const size = writeRepair(rep, w, key);
      if (size >= 0) {
        sent++;
        bytes += size;
      }
    } else if (order < 0 && !recent(their!.hlc, now)) {
      wanted.push(Buffer.from([key.length]), Buffer.from(key, 'latin1'));
    }
  }
  // Keys they have and we do not: wanted when newer than our flush_all.
  for (const [key, their] of theirs) {
    if (!recent(their.hlc, now) && v.isNewer(key, their.hlc, their.node)) wanted.push(Buffer.from([key.length]), Buffer.from(key, 'latin1'));
  }
  if (wanted.length > 0) w.control(T_AE_WANT, [round], Buffer.concat(wanted));
  return sent;
}

/** Initiator: the responder wants our newer items; returns keys sent. */
export function onWant(rep: DigestSource, w: FrameWriter, buf: Buffer, start: number, end: number): number {
  let o = start + 8;
  let sent = 0;
  let bytes = 0;
  while (o < end && bytes <= MAX_ROUND_BYTES) {
    const keyLength = buf[o]!;
    if (o + 1 + keyLength > end) throw new Error('bad anti-entropy want list');
    const key = buf.toString('latin1', o + 1, o + 1 + keyLength);
    o += 1 + keyLength;
    const size = writeRepair(rep, w, key);
    if (size >= 0) {
      sent++;
      bytes += size;
    }
  }
  return sent;
}
