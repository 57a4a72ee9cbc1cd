import { statfs, statfsSync } from 'node:fs';
import type { Logger } from 'pino';

/** LMDB's page size on the platforms Mnemo runs on (lmdb-js keeps the OS default). */
export const PAGE_BYTES = 4096;
/** How often the free space is read while nothing else asks for it. */
const SAMPLE_EVERY_MS = 100;
/**
 * Room kept free beyond the writes in flight: one commit's own pages besides the
 * records (branch pages copied on the way down, the free-list records, the
 * probe), and the version store's small records (replication).
 */
const COMMIT_OVERHEAD_BYTES = 256 * 1024;

/**
 * The disk bytes a write of `recordBytes` may take before its commit shows in the
 * file system's free space: LMDB copies on write, so each write dirties at least a
 * leaf page of its own, and a large value takes overflow pages of its own.
 */
export function writeCost(recordBytes: number): number {
  return PAGE_BYTES + Math.ceil(recordBytes / PAGE_BYTES) * PAGE_BYTES;
}

/**
 * Keeps LMDB from ever meeting a full disk (lmdb-js does not survive ENOSPC: a
 * failed write under noSync has aborted the process). Watches the free space of
 * the data dir's file system and counts every write accepted since the last
 * sample that the sample could not have seen yet; while what is left falls below
 * the reserve, `low` is true and the store refuses changes.
 *
 * The reserve is one write of the largest item (the write that passes the check
 * just before it) plus one commit's own overhead. What counts as pending depends
 * on --sync (the writers call `settle` when their bytes are safely accounted):
 * always and none at commit (the pages are written, the sample sees them);
 * interval at the flush after the commit, so that a file system that allocates
 * at write-back (mdb_env_sync) still finds room. LMDB's map grows by doubling
 * (lmdb-js: 2 x the pages in use, in 256 KB steps), but without MDB_WRITEMAP the
 * file is not extended to the map size, so growth takes address space, not disk.
 */
export class DiskSpace {
  /** Bytes free for this process at the last sample (statfs bavail). */
  private free: number;
  /** Write costs accepted so far, and those settled (see above). */
  private accepted = 0;
  private settled = 0;
  /** `settled` when the last sample began: what was settled by then, the sample includes. */
  private settledAtSample = 0;
  private sampling = false;
  /** What the log last said: writes refused for want of space, or not. */
  private loggedLow = false;
  private readonly timer: NodeJS.Timeout;
  readonly reserve: number;
  /** Samples that failed (statfs errors); the last good one stays in use. */
  sampleErrors = 0;

  constructor(
    readonly path: string,
    largestWrite: number,
    private readonly log: Logger | null = null,
  ) {
    this.reserve = writeCost(largestWrite) + COMMIT_OVERHEAD_BYTES;
    this.free = freeBytes(statfsSync(path));
    this.timer = setInterval(() => this.sample(), SAMPLE_EVERY_MS);
    this.timer.unref();
  }

  /** Bytes that may still be written before the reserve: negative while low. */
  get headroom(): number {
    return this.free - this.unsettled - this.reserve;
  }

  /** Below the reserve: changes are refused until a sample shows room again. */
  get low(): boolean {
    return this.headroom < 0;
  }

  /** Write costs the last sample could not have seen (0 once every write settled before a sample). */
  get unsettled(): number {
    return this.accepted - this.settledAtSample;
  }

  /** Free bytes at the last sample, for `stats`. */
  get freeBytes(): number {
    return this.free;
  }

  /** A write of this cost (writeCost) was handed to LMDB. */
  accept(cost: number): void {
    this.accepted += cost;
  }

  /** Writes of this total cost are on disk as far as free space shows (or failed). */
  settle(cost: number): void {
    this.settled += cost;
    // Near the reserve, read the free space again at once rather than at the next tick.
    if (this.headroom < this.reserve) this.sample();
  }

  /** Reads the free space now (at most one read at a time). */
  sample(): void {
    if (this.sampling) return;
    this.sampling = true;
    const settled = this.settled;
    statfs(this.path, (error, stats) => {
      this.sampling = false;
      if (error) {
        this.sampleErrors++;
        return;
      }
      this.free = freeBytes(stats);
      this.settledAtSample = settled;
      this.logChange();
    });
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** Says when writes start and stop being refused for want of space (only then, not per write). */
  private logChange(): void {
    const low = this.low;
    if (low === this.loggedLow) return;
    this.loggedLow = low;
    const fields = { path: this.path, freeBytes: this.free, reserveBytes: this.reserve };
    if (low) this.log?.error(fields, 'data dir: free space below the reserve; writes are refused until there is room');
    else this.log?.info(fields, 'data dir: free space above the reserve again; writes resume');
  }
}

function freeBytes(stats: { bavail: number; bsize: number }): number {
  return stats.bavail * stats.bsize;
}
