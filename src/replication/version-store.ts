import { join } from 'node:path';
import { createRequire } from 'node:module';
import type { Database, RootDatabase } from 'lmdb';
import { compareVersions } from './hlc.js';
import type { VersionTable } from './versions.js';

/** lmdb is loaded when a data dir is opened, not at start: a node without -H does not carry its ~10 MB of RSS. */
const lmdb = (): typeof import('lmdb') => createRequire(import.meta.url)('lmdb') as typeof import('lmdb');

/** hlc f64, node u32, tomb u8, since f64. */
const RECORD = 8 + 4 + 1 + 8;
const FLUSH_KEY = 'flush';

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
  writeErrors = 0;

  constructor(dataDir: string, syncEveryCommit: boolean) {
    this.root = lmdb().open({ path: join(dataDir, 'replication-versions'), maxDbs: 2, noSync: !syncEveryCommit, overlappingSync: false });
    this.versions = this.root.openDB<Buffer, Buffer>({ name: 'versions', encoding: 'binary', keyEncoding: 'binary' });
    this.meta = this.root.openDB<string, string>({ name: 'meta', encoding: 'string', keyEncoding: 'ordered-binary' });
  }

  private readonly failed = (): void => {
    this.writeErrors++;
  };

  put(key: string, hlc: number, node: number, tomb: boolean, since: number): void {
    const record = Buffer.allocUnsafe(RECORD);
    record.writeDoubleBE(hlc, 0);
    record.writeUInt32BE(node, 8);
    record[12] = tomb ? 1 : 0;
    record.writeDoubleBE(since, 13);
    this.versions.put(Buffer.from(key, 'latin1'), record).catch(this.failed);
  }

  remove(key: string): void {
    this.versions.remove(Buffer.from(key, 'latin1')).catch(this.failed);
  }

  flushed(hlc: number, node: number): void {
    this.meta.put(FLUSH_KEY, `${hlc} ${node}`).catch(this.failed);
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

  close(): Promise<void> {
    return this.root.close();
  }
}
