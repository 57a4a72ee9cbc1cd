import type { Logger } from 'pino';
import { writeCost, type DiskSpace } from './disk-space.js';

/** While commits fail: how often a small write tries again, to notice when the disk takes writes again. */
const PROBE_EVERY_MS = 1000;

/**
 * What one LMDB environment's batched writes came to: commits, failures, and
 * the failing state a failed commit (a full disk, an I/O error) puts it in until
 * a later commit succeeds. Shared by the items (DiskStore) and the replication
 * version store. Every write's cost goes to the data dir's DiskSpace, settled
 * at commit, or at the flush after it (see DiskSpace).
 */
export class CommitTracker {
  /** Bumped on every write: lets a connection tell whether its batch wrote anything. */
  generation = 0;
  /** The last commit failed: writes are refused until one succeeds again. */
  failing = false;
  writeErrors = 0;
  commits = 0;
  commitMsTotal = 0;
  /** Numbers the commits (batches) writes join: the batch of the latest write. */
  batch = 0;
  /** The latest commit with its failure counted, for callers that must wait for durability. */
  lastWrite: Promise<unknown> = Promise.resolve();
  /** The commit the latest writes joined (lmdb batches writes: one promise per commit), and its cost so far. */
  private commit: Promise<unknown> = Promise.resolve();
  private commitCost = { cost: 0 };
  /** Costs committed since the last flush began (settled at flush only). */
  private unflushedCost = 0;
  private probeTimer: NodeJS.Timeout | null = null;

  constructor(
    /** What the logs call this environment. */
    private readonly name: string,
    private readonly space: DiskSpace,
    private readonly settleAtFlush: boolean,
    /** A small write that tells whether the disk takes writes again. */
    private readonly probe: () => Promise<unknown>,
    private readonly log: Logger | null,
    /** Told when each batch commits (ok) or fails, after the counters. */
    private readonly onSettled: ((batch: number, ok: boolean) => void) | null = null,
  ) {}

  /** A write was handed to lmdb: recordBytes is what it stores (key and value). */
  track(write: Promise<unknown>, recordBytes: number): void {
    this.generation++;
    const cost = writeCost(recordBytes);
    this.space.accept(cost);
    if (write === this.commit) {
      this.commitCost.cost += cost;
      return;
    }
    // The first write of a new commit: time it once, not every write in it.
    this.commit = write;
    const commitCost = { cost };
    this.commitCost = commitCost;
    const batch = ++this.batch;
    const started = performance.now();
    this.lastWrite = write.then(
      () => {
        this.commits++;
        this.commitMsTotal += performance.now() - started;
        if (this.settleAtFlush) this.unflushedCost += commitCost.cost;
        else this.space.settle(commitCost.cost);
        this.recovered();
        this.onSettled?.(batch, true);
      },
      (error: { commitError?: Promise<unknown> }) => {
        error.commitError?.catch(() => {}); // the cause, already logged by lmdb
        this.writeErrors++;
        this.space.settle(commitCost.cost);
        this.startFailing(error);
        this.onSettled?.(batch, false);
      },
    );
  }

  /** A flush (mdb_env_sync) begins: returns what it covers, for flushed(). */
  flushing(): number {
    const cost = this.unflushedCost;
    this.unflushedCost = 0;
    return cost;
  }

  flushed(cost: number, error: unknown): void {
    this.space.settle(cost);
    if (error) this.writeErrors++;
  }

  stop(): void {
    if (this.probeTimer !== null) clearInterval(this.probeTimer);
    this.probeTimer = null;
  }

  private startFailing(error: unknown): void {
    if (!this.failing) this.log?.error({ err: error }, `${this.name}: a commit failed; writes are refused until one succeeds`);
    this.failing = true;
    if (this.probeTimer !== null) return;
    this.probeTimer = setInterval(() => {
      // Never probe into a disk with no room: that is the failure this avoids.
      if (!this.space.low) this.track(this.probe(), 64);
    }, PROBE_EVERY_MS);
    this.probeTimer.unref();
  }

  private recovered(): void {
    if (this.failing) this.log?.info(`${this.name}: commits succeed again; writes resume`);
    this.failing = false;
    this.stop();
  }
}
