import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, ftruncateSync, openSync, readFileSync, statSync, writeSync, accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import type { Database, RootDatabase } from 'lmdb';
import type { Logger } from 'pino';
import { ConfigError, type SyncPolicy } from '../config/config.js';
import { CommitTracker } from './commit-tracker.js';
import { DiskSpace, PAGE_BYTES } from './disk-space.js';
import { PendingWrites, REMOVED } from './pending-writes.js';
import type { ItemView, StoredRecord } from './store.js';

/** lmdb is loaded when a data dir is opened, not at start: a node without -H does not carry its ~10 MB of RSS. */
export const lmdb = (): typeof import('lmdb') => createRequire(import.meta.url)('lmdb') as typeof import('lmdb');

/**
 * Bumped when the on-disk layout changes; a data dir of an unknown version is refused,
 * never rewritten. 2 added the base64-key mark (CAS_BINARY_KEY); a version 1 dir reads
 * as is (its records have the bit clear) and is marked 2, so an older Mnemo refuses it.
 * 3 added the expiries table (a touch writes the new exptime there, not the record);
 * a version 1 or 2 dir has none and reads as is.
 */
export const FORMAT_VERSION = 3;
const READABLE_FORMATS = ['1', '2', '3'];
const FORMAT_KEY = 'format';
/** Written while the disk refuses writes, to notice when it takes them again. */
const PROBE_KEY = 'probe';
/**
 * How long a reply may wait for the disk (--sync always) before the connection is
 * closed as for a failed write: a disk that does not answer (a hung device, a frozen
 * file system) must not hold a connection's replies forever.
 */
export const DURABLE_DEADLINE_MS = 10_000;
/** flags u32, exptime u32, cas f64, then the value. */
const RECORD_HEADER = 16;
/**
 * The CAS's sign bit (a CAS is never negative): set when the item was stored under a
 * base64 key. A spare bit rather than a new field, so records of format 1 read unchanged.
 */
const CAS_BINARY_KEY = 0x80;

/** The bytes a record takes in the disk tier's accounting (LMDB's page overhead aside). */
export function recordBytes(key: string, valueLength: number): number {
  return key.length + RECORD_HEADER + valueLength;
}

/**
 * Items on LMDB (memcachedb's role): one record per key, written in lmdb's
 * batched transactions. Keys are the raw key bytes; records carry flags,
 * expiry and CAS so a restart brings items back exactly.
 */
export class DiskStore {
  private readonly root: RootDatabase;
  private readonly items: Database<Buffer, Buffer>;
  /**
   * Exptimes set by a touch since the key's record was last written: 4 bytes per key
   * instead of the whole record again. A later write or removal of the record drops its row.
   */
  private readonly expiries: Database<Buffer, Buffer>;
  /**
   * Every row of expiries, by key (loaded at open). Reads consult it rather than the
   * table, so it is also what reads see of touches not yet committed.
   */
  private readonly touched = new Map<string, number>();
  /** Bytes handed to LMDB to write (keys, records, expiries), for `stats` (disk_write_bytes). */
  writeBytes = 0;
  private readonly meta: Database<string, string>;
  /** The open lock file: its flock lasts while this descriptor (or the process) lives. */
  private readonly lockFd: number;
  /** With --sync interval: the commit count at the last flush to disk. */
  private flushedCommits = 0;
  /** Writes not yet committed: what reads must see instead of the last commit. */
  private readonly pending = new PendingWrites();
  private readonly flushTimer: NodeJS.Timeout | null = null;
  /** Commits, failures and the failing state (a full disk, an I/O error). */
  readonly writes: CommitTracker;
  /** The data dir's free space: writes are refused before LMDB could meet a full disk. */
  readonly space: DiskSpace;
  flushes = 0;

  /** largestWrite: the largest record a write may bring (-I), which the free-space reserve must fit. */
  constructor(
    readonly path: string,
    readonly sync: SyncPolicy,
    largestWrite: number,
    log: Logger | null = null,
  ) {
    checkDirectory(path);
    this.lockFd = takeLock(join(path, 'mnemo.lock'));
    try {
      // interval: commits skip fsync and a timer flushes them (lmdb has no interval option).
      // always: each commit includes its fsync, so a write's promise settles once it is on disk.
      this.root = lmdb().open({ path: join(path, 'lmdb'), maxDbs: 4, noSync: sync.kind !== 'always', overlappingSync: false });
      const meta = this.root.openDB<string, string>({ name: 'meta', encoding: 'string', keyEncoding: 'ordered-binary' });
      this.meta = meta;
      const format = meta.get(FORMAT_KEY);
      if (format !== undefined && !READABLE_FORMATS.includes(format)) {
        throw new ConfigError(`--data-dir: ${path} holds format version ${format}, this Mnemo reads ${READABLE_FORMATS.join(' and ')}`);
      }
      if (format !== String(FORMAT_VERSION)) meta.putSync(FORMAT_KEY, String(FORMAT_VERSION));
      this.items = this.root.openDB<Buffer, Buffer>({ name: 'items', encoding: 'binary', keyEncoding: 'binary' });
      this.expiries = this.root.openDB<Buffer, Buffer>({ name: 'expiries', encoding: 'binary', keyEncoding: 'binary' });
      for (const { key, value } of this.expiries.getRange({})) this.touched.set((key as Buffer).toString('latin1'), (value as Buffer).readUInt32BE(0));
    } catch (error) {
      closeSync(this.lockFd);
      throw error;
    }
    this.space = new DiskSpace(path, largestWrite, log);
    const meta = this.meta;
    const probe = (): Promise<unknown> => meta.put(PROBE_KEY, String(Date.now()));
    this.writes = new CommitTracker('data dir', this.space, sync.kind === 'interval', probe, log, (batch, ok) => this.settled(batch, ok));
    if (sync.kind === 'interval') {
      this.flushTimer = setInterval(() => this.flushIfNeeded(), sync.ms);
      this.flushTimer.unref();
    }
  }

  /** Bytes of LMDB pages the items use (what the data dir holds, free pages aside). */
  get bytesUsed(): number {
    const stats = this.items.getStats() as { pageSize: number; treeBranchPageCount: number; treeLeafPageCount: number; overflowPages: number };
    return stats.pageSize * (stats.treeBranchPageCount + stats.treeLeafPageCount + stats.overflowPages);
  }

  get count(): number {
    return this.items.getCount();
  }

  /** Bumped on every write: lets a connection tell whether its batch wrote anything. */
  get generation(): number {
    return this.writes.generation;
  }

  /** A commit failed, or the free space is below the reserve: changes are refused. */
  get refusing(): boolean {
    return this.writes.failing || this.space.low;
  }

  /** The key's record as last written, committed or not. */
  get(key: string): StoredRecord | null {
    const pending = this.pending.read(key);
    let record: StoredRecord | null;
    if (pending !== undefined) record = pending === REMOVED ? null : decode(pending);
    else {
      const bytes = this.items.getBinary(Buffer.from(key, 'latin1'));
      record = bytes === undefined ? null : decode(bytes);
    }
    if (record !== null && this.touched.size > 0) record.exptime = this.touched.get(key) ?? record.exptime;
    return record;
  }

  /** The key's exptime as last written (0: never), or -1 when it has no record; reads no value. */
  exptimeOf(key: string): number {
    const touched = this.touched.size > 0 ? this.touched.get(key) : undefined;
    if (touched !== undefined) return touched;
    const pending = this.pending.read(key);
    if (pending !== undefined) return pending === REMOVED ? -1 : pending.readUInt32BE(4);
    const bytes = this.items.getBinary(Buffer.from(key, 'latin1'));
    return bytes === undefined ? -1 : bytes.readUInt32BE(4);
  }

  /** Writes an item from memory; its value is copied once, straight into the record. */
  put(key: string, item: ItemView): void {
    this.putBytes(key, encode(item));
    if (this.touched.size > 0) this.untouch(key);
  }

  /**
   * A new exptime for the key's record, if it has one: a small row in expiries (the
   * record, value and all, is not written again). Reads see it at once.
   */
  touch(key: string, exptime: number): void {
    if (this.exptimeOf(key) === -1) return;
    this.touched.set(key, exptime);
    this.putExpiry(key, exptime);
  }

  remove(key: string): void {
    this.writeBytes += key.length;
    this.writes.track(this.items.remove(Buffer.from(key, 'latin1')), recordBytes(key, 0));
    this.pending.noteWrite(key, REMOVED, this.writes.batch);
    if (this.touched.size > 0) this.untouch(key);
  }

  clear(): void {
    this.clearTables();
    this.touched.clear();
  }

  private clearTables(): void {
    // Dropping the items frees their pages, and the free list records each (8 bytes a page).
    this.writes.track(this.items.clearAsync(), Math.ceil(this.bytesUsed / PAGE_BYTES) * 8);
    this.pending.noteClear(this.writes.batch);
    if (this.touched.size > 0) this.writes.track(this.expiries.clearAsync(), this.touched.size * 8);
  }

  private putBytes(key: string, bytes: Buffer): void {
    this.writeBytes += key.length + bytes.length;
    this.writes.track(this.items.put(Buffer.from(key, 'latin1'), bytes), key.length + bytes.length);
    this.pending.noteWrite(key, bytes, this.writes.batch);
  }

  private putExpiry(key: string, exptime: number): void {
    const bytes = Buffer.allocUnsafe(4);
    bytes.writeUInt32BE(exptime, 0);
    this.writeBytes += key.length + 4;
    this.writes.track(this.expiries.put(Buffer.from(key, 'latin1'), bytes), key.length + 4);
  }

  /** The record is written again or removed: a touch's row no longer applies. */
  private untouch(key: string): void {
    if (!this.touched.delete(key)) return;
    this.writeBytes += key.length;
    this.writes.track(this.expiries.remove(Buffer.from(key, 'latin1')), key.length);
  }

  /**
   * Resolves once every write so far is on disk (flushed, not just committed):
   * true, or false when a commit failed meanwhile (one of those writes may be lost),
   * or when the disk has not answered within DURABLE_DEADLINE_MS: no wait lasts forever.
   */
  async durable(): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), DURABLE_DEADLINE_MS);
    });
    try {
      return await Promise.race([this.onDisk(), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async onDisk(): Promise<boolean> {
    const writes = this.writes;
    const errors = writes.writeErrors;
    await writes.lastWrite;
    if (writes.writeErrors !== errors) return false;
    // Under --sync always a commit includes its fsync: committed is on disk. lmdb's flushed
    // follows the latest commit, not ours: it rejects, or never settles, when a later one fails.
    if (this.sync.kind === 'always') return true;
    try {
      await this.root.flushed;
    } catch {
      return false;
    }
    return writes.writeErrors === errors;
  }

  /**
   * Visits up to limit records in key order, after the key `after` (null: from
   * the start). Returns the last key visited, or null at the end.
   */
  scan(after: Buffer | null, limit: number, visit: (key: string, record: StoredRecord) => void): Buffer | null {
    let last: Buffer | null = null;
    let count = 0;
    for (const { key, value } of this.items.getRange(after === null ? {} : { start: after })) {
      const bytes = key as Buffer;
      if (after !== null && bytes.equals(after)) continue;
      const name = bytes.toString('latin1');
      const record = decode(value);
      if (this.touched.size > 0) record.exptime = this.touched.get(name) ?? record.exptime;
      visit(name, record);
      last = Buffer.from(bytes);
      if (++count === limit) return last;
    }
    return null;
  }

  /** Every key with a record as last written (committed or not), without reading the records. */
  forEachKey(visit: (key: string) => void): void {
    const pending = this.pending;
    if (!pending.diskHidden) {
      for (const key of this.items.getKeys()) {
        const name = (key as Buffer).toString('latin1');
        if (pending.read(name) === undefined) visit(name);
      }
    }
    pending.forEachWritten(visit);
  }

  async close(): Promise<void> {
    if (this.flushTimer !== null) clearInterval(this.flushTimer);
    this.writes.stop();
    this.space.close();
    await this.writes.lastWrite;
    // After a failed commit lmdb's flushed promise never settles: a full disk must not hang shutdown.
    if (!this.writes.failing) {
      await this.root.flushed;
      if (this.sync.kind === 'interval') await new Promise((resolve) => syncToDisk(this.root, resolve));
    }
    await this.root.close();
    // Closing releases the lock. The file stays (removing it could let two processes lock
    // two different files); emptied, so the pid check that stands in for flock finds no owner.
    ftruncateSync(this.lockFd, 0);
    closeSync(this.lockFd);
  }

  /** A batch of writes committed or failed: the pending writes follow it. */
  private settled(batch: number, ok: boolean): void {
    if (!ok) {
      this.pending.failedBatch(batch);
      return;
    }
    this.pending.committed(batch);
    if (this.pending.mustRetry) this.retryFailed();
  }

  /** The disk takes writes again: the writes of failed commits are made again (reads have been seeing them all along). */
  private retryFailed(): void {
    try {
      // Rows of expiries are not in the pending writes: every one is written again too
      // (the map holds them all, as reads have been seeing them).
      this.pending.retry(() => this.clearTables(), (key, bytes) => (bytes === REMOVED ? this.remove(key) : this.putBytes(key, bytes)));
      for (const [key, exptime] of this.touched) this.putExpiry(key, exptime);
    } catch {
      this.writes.writeErrors++; // closing: the writes are lost, as any not committed at close
    }
  }

  private flushIfNeeded(): void {
    if (this.writes.commits === this.flushedCommits) return;
    this.flushedCommits = this.writes.commits;
    const cost = this.writes.flushing();
    syncToDisk(this.root, (error) => {
      this.writes.flushed(cost, error);
      if (!error) this.flushes++;
    });
  }
}

/** mdb_env_sync: lmdb-js has it (`sync`) but its types do not declare it. */
function syncToDisk(root: RootDatabase, done: (error?: unknown) => void): void {
  (root as unknown as { sync(callback: (error?: unknown) => void): void }).sync(done);
}

function encode(item: ItemView): Buffer {
  const bytes = Buffer.allocUnsafe(RECORD_HEADER + item.valueLength);
  bytes.writeUInt32BE(item.flags, 0);
  bytes.writeUInt32BE(item.exptime, 4);
  bytes.writeDoubleBE(item.cas, 8);
  if (item.binaryKey) bytes[8]! |= CAS_BINARY_KEY;
  item.copyValueTo(bytes, RECORD_HEADER);
  return bytes;
}

function decode(bytes: Buffer): StoredRecord {
  return {
    flags: bytes.readUInt32BE(0),
    exptime: bytes.readUInt32BE(4),
    // abs() clears the mark (and turns the -0 of a marked CAS 0 into 0).
    cas: Math.abs(bytes.readDoubleBE(8)),
    binaryKey: (bytes[8]! & CAS_BINARY_KEY) !== 0,
    // Copied out of lmdb's reusable read buffer: stored values must not change under us.
    value: Buffer.from(bytes.subarray(RECORD_HEADER)),
  };
}

function checkDirectory(path: string): void {
  if (!existsSync(path) || !statSync(path).isDirectory()) {
    throw new ConfigError(`--data-dir: ${path} is not a directory`);
  }
  try {
    accessSync(path, constants.W_OK | constants.R_OK);
  } catch {
    throw new ConfigError(`--data-dir: ${path} is not writable`);
  }
}

/**
 * LMDB lets several processes share an environment; two Mnemos on one data dir
 * would still overwrite each other's items, so the first holds an exclusive
 * flock(2) on mnemo.lock. The kernel drops it when the process dies, however it
 * dies, even while it is an unreaped zombie, and a recycled pid cannot make it
 * look held. Node has no flock, so flock(1) takes it on our descriptor (passed
 * as its fd 3): the lock belongs to the open file, which stays open here after
 * flock(1) exits. The file also holds the owner's pid, for the message.
 * Where flock(1) is missing (a minimal image), a pid check stands in.
 * Returns the descriptor to keep open.
 */
function takeLock(path: string): number {
  const fd = openSync(path, constants.O_RDWR | constants.O_CREAT, 0o644);
  try {
    const result = spawnSync('flock', ['-n', '-x', '3'], { stdio: ['ignore', 'ignore', 'pipe', fd] });
    if (result.error !== undefined && (result.error as NodeJS.ErrnoException).code === 'ENOENT') {
      if (heldByLivePid(path)) throw inUse(path);
    } else if (result.status === 1) {
      throw inUse(path);
    } else if (result.status !== 0) {
      const reason = result.error?.message ?? result.stderr.toString().trim();
      throw new ConfigError(`--data-dir: cannot lock ${path}: ${reason}`);
    }
    ftruncateSync(fd, 0);
    writeSync(fd, `${process.pid}\n`, 0);
    return fd;
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

function inUse(path: string): ConfigError {
  const pid = Number(readFileSync(path, 'utf8').trim());
  const owner = Number.isInteger(pid) && pid > 0 ? `pid ${pid}, ` : '';
  return new ConfigError(`--data-dir: in use by another Mnemo (${owner}lock ${path})`);
}

/** Without flock(1): the pid in the lock file names a process that is alive (a zombie is not). */
function heldByLivePid(path: string): boolean {
  const pid = Number(readFileSync(path, 'utf8').trim());
  // Our own pid there is a previous run's (a container's process often has the same pid every start).
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // /proc/<pid>/stat: "pid (comm) state ..."; Z is a dead process its parent has not reaped.
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}
