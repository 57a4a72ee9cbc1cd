import { join } from 'node:path';
import type { Database, RootDatabase } from 'lmdb';
import type { Logger } from 'pino';
import { CommitTracker } from '../store/commit-tracker.js';
import { lmdb } from '../store/disk.js';
import type { DiskSpace } from '../store/disk-space.js';
import { compareVersions } from './hlc.js';
import type { VersionTable } from './versions.js';


/** hlc f64, node u32, tomb u8, since f64. */
const RECORD = 8 + 4 + 1 + 8;
const FLUSH_KEY = 'flush';
/** Written while commits fail, to notice when the disk takes writes again. */
const PROBE_KEY = 'probe';

/**
 * With --data-dir: the version table kept on LMDB next to the items (its own
 * environment, `<data-dir>/replication-versions`), so that after a restart the
 * node's items keep their versions: a peer's older write does not replace them, and
 * anti-entropy sends the newer ones out. Writes go through lmdb's batched
 * transactions (fsynced per commit only with --sync always; otherwise the OS writes
 * them, which survives a process crash). The items and their versions are committed
 * separately: after a crash an item may be there without its version (it then counts
 * as older than any peer's) or a version without its item (anti-entropy forgets it
 * when it finds the item missing).
 */
export class VersionStore {
  private readonly root: RootDatabase;
  private readonly versions: Database<Buffer, Buffer>;
  private readonly meta: Database<string, string>;
  /**
   * Commits, failures and the failing state, as for the items; its writes count
   * against the data dir's free space with them. A version that fails to commit
   * is only reported: the item's write is what clients are refused.
   */
  readonly writes: CommitTracker;

  constructor(dataDir: string, syncEveryCommit: boolean, space: DiskSpace, log: Logger | null = null) {
    this.root = lmdb().open({ path: join(dataDir, 'replication-versions'), maxDbs: 2, noSync: !syncEveryCommit, overlappingSync: false });
    this.versions = this.root.openDB<Buffer, Buffer>({ name: 'versions', encoding: 'binary', keyEncoding: 'binary' });
    const meta = this.root.openDB<string, string>({ name: 'meta', encoding: 'string', keyEncoding: 'ordered-binary' });
    this.meta = meta;
    // Nothing flushes this environment (the OS writes it back): its writes settle at commit.
    const probe = (): Promise<unknown> => meta.put(PROBE_KEY, String(Date.now()));
    this.writes = new CommitTracker('replication versions', space, false, probe, log);
  }

  put(key: string, hlc: number, node: number, tomb: boolean, since: number): void {
    const record = Buffer.allocUnsafe(RECORD);
    record.writeDoubleBE(hlc, 0);
    record.writeUInt32BE(node, 8);
    record[12] = tomb ? 1 : 0;
    record.writeDoubleBE(since, 13);
    this.writes.track(this.versions.put(Buffer.from(key, 'latin1'), record), key.length + RECORD);
  }

  remove(key: string): void {
    this.writes.track(this.versions.remove(Buffer.from(key, 'latin1')), key.length);
  }

  flushed(hlc: number, node: number): void {
    this.writes.track(this.meta.put(FLUSH_KEY, `${hlc} ${node}`), 64);
  }

  /** Fills the table with what was kept (before it reports changes here); returns how many entries. */
  load(table: VersionTable, now: number): number {
    const flush = this.meta.get(FLUSH_KEY);
    if (flush !== undefined) {
      const [hlc, node] = flush.split(' ').map(Number);
      table.flushHlc = hlc!;
      table.flushNode = node!;
    }
    let loaded = 0;
    for (const { key, value } of this.versions.getRange()) {
      if (value.length !== RECORD) continue;
      const hlc = value.readDoubleBE(0);
      const node = value.readUInt32BE(8);
      if (compareVersions(hlc, node, table.flushHlc, table.flushNode) <= 0) continue;
      const tomb = value[12] === 1;
      const since = value.readDoubleBE(13);
      table.set((key as Buffer).toString('latin1'), hlc, node, tomb, tomb ? since : now, tomb ? 0 : since);
      loaded++;
    }
    return loaded;
  }

  async close(): Promise<void> {
    this.writes.stop();
    await this.writes.lastWrite;
    await this.root.close();
  }
}
