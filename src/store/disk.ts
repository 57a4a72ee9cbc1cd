import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, ftruncateSync, openSync, readFileSync, statSync, writeSync, accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { ConfigError } from '../config.js';
import type { StoredRecord } from './store.js';

/**
 * Bumped when the on-disk layout changes; a data dir of an unknown version is refused,
 * never rewritten. 2 added the base64-key mark (CAS_BINARY_KEY); a version 1 dir reads
 * as is (its records have the bit clear) and is marked 2, so an older Mnemo refuses it.
 */
export const FORMAT_VERSION = 2;
const READABLE_FORMATS = ['1', '2'];
const FORMAT_KEY = 'format';
/** Written while the disk refuses writes, to notice when it takes them again. */
const PROBE_KEY = 'probe';
const PROBE_EVERY_MS = 1000;
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

export type SyncPolicy = { kind: 'always' } | { kind: 'interval'; ms: number } | { kind: 'none' };

/**
 * Items on LMDB (memcachedb's role): one record per key, written in lmdb's
 * batched transactions. Keys are the raw key bytes; records carry flags,
 * expiry and CAS so a restart brings items back exactly.
 */
export class DiskStore {
  private readonly root: RootDatabase;
  private readonly items: Database<Buffer, Buffer>;
  private readonly meta: Database<string, string>;
  /** The open lock file: its flock lasts while this descriptor (or the process) lives. */
  private readonly lockFd: number;
  /** The commit the latest writes joined (lmdb batches writes: one promise per commit). */
  private commit: Promise<unknown> = Promise.resolve();
  /** The latest commit with its failure counted, for callers that must wait for durability. */
  private lastWrite: Promise<unknown> = Promise.resolve();
  /** With --sync interval: commits since the last flush to disk. */
  private unflushed = false;
  private readonly flushTimer: NodeJS.Timeout | null = null;
  /** While the disk refuses writes (full, or an I/O error): retries a small write until one commits. */
  private probeTimer: NodeJS.Timeout | null = null;
  /** Bumped on every write: lets a connection tell whether its batch wrote anything. */
  generation = 0;
  /** The last commit failed (a full disk): new writes are refused until a commit succeeds again. */
  failing = false;
  writeErrors = 0;
  commits = 0;
  commitMsTotal = 0;
  flushes = 0;

  constructor(
    readonly path: string,
    readonly sync: SyncPolicy,
  ) {
    checkDirectory(path);
    ignoreStrayCommitRejections();
    this.lockFd = takeLock(join(path, 'mnemo.lock'));
    try {
      // interval: commits skip fsync and a timer flushes them (lmdb has no interval option).
      // always: each commit includes its fsync, so a write's promise settles once it is on disk.
      this.root = open({ path: join(path, 'lmdb'), maxDbs: 4, noSync: sync.kind !== 'always', overlappingSync: false });
      const meta = this.root.openDB<string, string>({ name: 'meta', encoding: 'string', keyEncoding: 'ordered-binary' });
      this.meta = meta;
      const format = meta.get(FORMAT_KEY);
      if (format !== undefined && !READABLE_FORMATS.includes(format)) {
        throw new ConfigError(`--data-dir: ${path} holds format version ${format}, this Mnemo reads ${READABLE_FORMATS.join(' and ')}`);
      }
      if (format !== String(FORMAT_VERSION)) meta.putSync(FORMAT_KEY, String(FORMAT_VERSION));
      this.items = this.root.openDB<Buffer, Buffer>({ name: 'items', encoding: 'binary', keyEncoding: 'binary' });
    } catch (error) {
      closeSync(this.lockFd);
      throw error;
    }
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

  get(key: string): StoredRecord | null {
    const bytes = this.items.getBinary(Buffer.from(key, 'latin1'));
    return bytes === undefined ? null : decode(bytes);
  }

  put(key: string, record: StoredRecord): void {
    this.track(this.items.put(Buffer.from(key, 'latin1'), encode(record)));
  }

  remove(key: string): void {
    this.track(this.items.remove(Buffer.from(key, 'latin1')));
  }

  clear(): void {
    this.track(this.items.clearAsync());
  }

  /**
   * Resolves once every write so far is on disk (flushed, not just committed):
   * true, or false when a commit failed meanwhile (one of those writes may be lost).
   */
  async durable(): Promise<boolean> {
    const errors = this.writeErrors;
    await this.lastWrite;
    // After a failed commit lmdb's flushed promise never settles: do not wait for it.
    if (this.writeErrors !== errors) return false;
    await this.root.flushed;
    return true;
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
      visit(bytes.toString('latin1'), decode(value));
      last = Buffer.from(bytes);
      if (++count === limit) return last;
    }
    return null;
  }

  /** Every key, in key order, without reading the records. */
  forEachKey(visit: (key: string) => void): void {
    for (const key of this.items.getKeys()) visit((key as Buffer).toString('latin1'));
  }

  async close(): Promise<void> {
    if (this.flushTimer !== null) clearInterval(this.flushTimer);
    if (this.probeTimer !== null) clearInterval(this.probeTimer);
    await this.lastWrite;
    // After a failed commit lmdb's flushed promise never settles: a full disk must not hang shutdown.
    if (!this.failing) {
      await this.root.flushed;
      if (this.sync.kind === 'interval') await new Promise((resolve) => syncToDisk(this.root, resolve));
    }
    await this.root.close();
    // Closing releases the lock. The file stays (removing it could let two processes lock
    // two different files); emptied, so the pid check that stands in for flock finds no owner.
    ftruncateSync(this.lockFd, 0);
    closeSync(this.lockFd);
  }

  private track(write: Promise<unknown>): void {
    this.generation++;
    if (write === this.commit) return;
    // The first write of a new commit: time it once, not every write in it.
    this.commit = write;
    const started = performance.now();
    this.lastWrite = write.then(
      () => {
        this.commits++;
        this.commitMsTotal += performance.now() - started;
        this.unflushed = true;
        this.recovered();
      },
      (error: { commitError?: Promise<unknown> }) => {
        error.commitError?.catch(() => {}); // the cause, already logged by lmdb
        this.writeErrors++;
        this.startFailing();
      },
    );
  }

  private startFailing(): void {
    this.failing = true;
    if (this.probeTimer !== null) return;
    this.probeTimer = setInterval(() => this.track(this.meta.put(PROBE_KEY, String(Date.now()))), PROBE_EVERY_MS);
    this.probeTimer.unref();
  }

  private recovered(): void {
    this.failing = false;
    if (this.probeTimer === null) return;
    clearInterval(this.probeTimer);
    this.probeTimer = null;
  }

  private flushIfNeeded(): void {
    if (!this.unflushed) return;
    this.unflushed = false;
    syncToDisk(this.root, (error) => {
      if (error) this.writeErrors++;
      else this.flushes++;
    });
  }
}

/**
 * For every failed commit (a full disk), lmdb also rejects an internal promise
 * that nothing can attach a handler to; the write's own promise reports the
 * failure. That stray rejection must not take the server down; every other
 * unhandled rejection still does.
 */
function ignoreStrayCommitRejections(): void {
  if (process.listeners('unhandledRejection').includes(onUnhandledRejection)) return;
  process.on('unhandledRejection', onUnhandledRejection);
}

function onUnhandledRejection(reason: unknown): void {
  if (reason instanceof Error && reason.message.startsWith('Commit failed (see commitError')) return;
  throw reason;
}

/** mdb_env_sync: lmdb-js has it (`sync`) but its types do not declare it. */
function syncToDisk(root: RootDatabase, done: (error?: unknown) => void): void {
  (root as unknown as { sync(callback: (error?: unknown) => void): void }).sync(done);
}

function encode(record: StoredRecord): Buffer {
  const bytes = Buffer.allocUnsafe(RECORD_HEADER + record.value.length);
  bytes.writeUInt32BE(record.flags, 0);
  bytes.writeUInt32BE(record.exptime, 4);
  bytes.writeDoubleBE(record.cas, 8);
  if (record.binaryKey) bytes[8]! |= CAS_BINARY_KEY;
  record.value.copy(bytes, RECORD_HEADER);
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
