/**
 * The writes LMDB has been given but not yet committed. lmdb-js queues writes and
 * commits them in batches on another thread; until a batch commits, reads see the
 * previous commit. Without this, a key deleted a moment ago would read back as its
 * last committed value, and an overwritten one as its older value.
 *
 * Each key maps to its latest pending write (an encoded record, or a removal) and
 * the batch that carries it; a clear (flush_all) marks every key as removed unless
 * written after it. A batch's entries go once it commits. When a batch fails (a full
 * disk), its entries stay, so reads keep matching what clients were told, and
 * retry() hands them back to be written again once the disk takes writes.
 */

/** A pending removal. */
export const REMOVED: null = null;

class PendingEntry {
  constructor(
    public batch: number,
    /** The encoded record, or REMOVED. */
    public bytes: Buffer | null,
  ) {}
}

/** What a read must see instead of the disk: a record's bytes, a removal, or (undefined) the disk itself. */
export type PendingRead = Buffer | null | undefined;

export class PendingWrites {
  private readonly entries = new Map<string, PendingEntry>();
  /** Keys written in each batch not yet settled, by batch number. */
  private readonly batchKeys = new Map<number, string[]>();
  /** The batch of a clear not yet committed, or -1. */
  private clearBatch = -1;
  /** A clear failed: it and every entry written since must be written again. */
  private clearFailed = false;
  /** Keys whose latest write failed: written again by retry(). */
  private readonly failed = new Set<string>();

  /** True while there are failed writes that retry() would write again. */
  get mustRetry(): boolean {
    return this.clearFailed || this.failed.size > 0;
  }

  noteWrite(key: string, bytes: Buffer | null, batch: number): void {
    const entry = this.entries.get(key);
    if (entry === undefined) this.entries.set(key, new PendingEntry(batch, bytes));
    else {
      entry.batch = batch;
      entry.bytes = bytes;
    }
    let keys = this.batchKeys.get(batch);
    if (keys === undefined) this.batchKeys.set(batch, (keys = []));
    keys.push(key);
    if (this.failed.size > 0) this.failed.delete(key);
  }

  noteClear(batch: number): void {
    this.entries.clear();
    this.batchKeys.clear();
    this.failed.clear();
    this.clearFailed = false;
    this.clearBatch = batch;
  }

  /** What the key reads as, or undefined: read the disk. */
  read(key: string): PendingRead {
    const entry = this.entries.get(key);
    if (entry !== undefined) return entry.bytes;
    return this.clearBatch >= 0 ? REMOVED : undefined;
  }

  /** True when the disk's committed records do not count (a clear is pending): only the entries here do. */
  get diskHidden(): boolean {
    return this.clearBatch >= 0;
  }

  /** Visits the keys a pending write gives a record. */
  forEachWritten(visit: (key: string) => void): void {
    for (const [key, entry] of this.entries) if (entry.bytes !== REMOVED) visit(key);
  }

  /** The batch committed: the disk now shows its writes (and those of every batch before it). */
  committed(batch: number): void {
    if (this.clearBatch >= 0 && this.clearBatch <= batch && !this.clearFailed) this.clearBatch = -1;
    const keys = this.batchKeys.get(batch);
    if (keys === undefined) return;
    this.batchKeys.delete(batch);
    // After a failed clear the disk still holds what the clear should have removed: keep
    // every entry, so the clear and these writes can be made again together.
    if (this.clearFailed) return;
    for (const key of keys) {
      const entry = this.entries.get(key);
      if (entry !== undefined && entry.batch === batch) this.entries.delete(key);
    }
  }

  /** The batch failed: none of it is on disk. Its entries stay and are marked for retry(). */
  failedBatch(batch: number): void {
    if (this.clearBatch === batch) this.clearFailed = true;
    const keys = this.batchKeys.get(batch);
    if (keys === undefined) return;
    this.batchKeys.delete(batch);
    for (const key of keys) {
      const entry = this.entries.get(key);
      if (entry !== undefined && entry.batch === batch) this.failed.add(key);
    }
  }

  /**
   * Writes the failed writes again, through the given writers (which note them here
   * anew): the clear first if it failed, then every entry it would have wiped, else
   * the failed keys' latest writes.
   */
  retry(clear: () => void, write: (key: string, bytes: Buffer | null) => void): void {
    if (this.clearFailed) {
      const kept = [...this.entries].map(([key, entry]) => [key, entry.bytes] as const);
      clear();
      for (const [key, bytes] of kept) if (bytes !== REMOVED) write(key, bytes);
      return;
    }
    const keys = [...this.failed];
    this.failed.clear();
    for (const key of keys) {
      const entry = this.entries.get(key);
      if (entry !== undefined) write(key, entry.bytes);
    }
  }
}
