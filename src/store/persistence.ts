import type { Logger } from 'pino';
import type { Clock } from '../base/clock.js';
import { recordBytes, type DiskStore } from './disk.js';
import type { DiskSpace } from './disk-space.js';
import {
  CHANGE_DELETED,
  CHANGE_EVICTED,
  CHANGE_FLUSHED,
  CHANGE_FLUSH_DUE,
  CHANGE_REMOVED,
  CHANGE_STORED,
  CHANGE_TOUCHED,
  type ChangeKind,
  type ChangeSubscriber,
  type Durability,
  type LowerTier,
} from './change-feed.js';
import type { ItemView, StoredRecord } from './store.js';

/** How often the start-up load reports progress, and how many records it reads between yields. */
const PROGRESS_EVERY_MS = 1000;
const LOAD_SLICE = 20_000;

/** Where the start-up load puts records (the memory store): false when one does not fit. */
export interface RestoreTarget {
  restore(key: string, record: StoredRecord): boolean;
}

/**
 * --data-dir: memory serves, LMDB keeps. Every change the memory store accepts
 * is written to disk; items that do not fit in memory stay on disk and come
 * back on access; a restart loads what fits.
 *
 * With --disk-limit (tiered mode) the disk is a bounded tier of its own: an
 * item evicted from memory becomes the disk's most recent, and the disk drops
 * its least recent items beyond the limit.
 */
export class Persistence implements ChangeSubscriber, LowerTier, Durability {
  /** Tiered mode: every key on disk with its size, least recent first (a Map keeps insertion order). */
  private readonly tier: Map<string, number> | null;
  private tierBytes = 0;
  hits = 0;
  evictions = 0;

  constructor(
    private readonly disk: DiskStore,
    private readonly clock: Clock,
    readonly diskLimit: number | null = null,
  ) {
    this.tier = diskLimit === null ? null : new Map();
  }

  /**
   * The change feed's first subscriber. A touch writes only the new expiry; an
   * invalidation and a scheduled flush write nothing (the flush writes when it comes due).
   */
  change(kind: ChangeKind, key: string, item: ItemView | null, _time: number): void {
    switch (kind) {
      case CHANGE_STORED:
        return this.stored(key, item!);
      case CHANGE_TOUCHED:
        this.disk.touch(key, item!.exptime);
        if (this.tier !== null && this.tier.has(key)) this.enterTier(key, this.tier.get(key)!);
        return;
      case CHANGE_DELETED:
      case CHANGE_REMOVED:
        return this.removed(key);
      case CHANGE_FLUSHED:
      case CHANGE_FLUSH_DUE:
        return this.cleared();
      case CHANGE_EVICTED:
        return this.evicted(key, item!);
    }
  }

  private stored(key: string, item: ItemView): void {
    this.disk.put(key, item);
    if (this.tier !== null) this.enterTier(key, recordBytes(key, item.valueLength));
  }

  private removed(key: string): void {
    this.disk.remove(key);
    if (this.tier !== null) this.leaveTier(key);
  }

  private cleared(): void {
    this.disk.clear();
    this.tier?.clear();
    this.tierBytes = 0;
  }

  /** Every key on disk, in key order (a full scan: for replication snapshots). */
  forEachKey(visit: (key: string) => void): void {
    this.disk.forEachKey(visit);
  }

  /** The record on disk, without counting a hit or touching the tier's LRU. */
  record(key: string): StoredRecord | null {
    return this.disk.get(key);
  }

  /** The data dir's free space, which the replication version store writes count against too. */
  get space(): DiskSpace {
    return this.disk.space;
  }

  /** True when the disk holds a live record of the key (not expired), without reading its value. */
  holds(key: string): boolean {
    const exptime = this.disk.exptimeOf(key);
    return exptime === 0 || exptime > this.clock.now;
  }

  /** False while the disk refuses writes (full): the store then refuses changes too. */
  get writable(): boolean {
    return !this.disk.refusing;
  }

  fetch(key: string): StoredRecord | null {
    const record = this.disk.get(key);
    if (record === null) return null;
    this.hits++;
    if (this.tier !== null) this.enterTier(key, recordBytes(key, record.value.length));
    return record;
  }

  /** Memory let go of an item: in tiered mode it moves to the disk's recent end (written again if the disk had dropped it). */
  private evicted(key: string, item: ItemView): void {
    if (this.tier === null) return;
    if (!this.tier.has(key)) this.disk.put(key, item);
    this.enterTier(key, recordBytes(key, item.valueLength));
  }

  private enterTier(key: string, bytes: number): void {
    const tier = this.tier!;
    this.leaveTier(key);
    tier.set(key, bytes);
    this.tierBytes += bytes;
    const limit = this.diskLimit!;
    while (this.tierBytes > limit) {
      const oldest = tier.keys().next().value!;
      if (oldest === key) break; // never drop the item just written
      this.leaveTier(oldest);
      this.disk.remove(oldest);
      this.evictions++;
    }
  }

  private leaveTier(key: string): void {
    const bytes = this.tier!.get(key);
    if (bytes === undefined) return;
    this.tier!.delete(key);
    this.tierBytes -= bytes;
  }

  /** Changes since a batch began: the connection waits for durability only when there were some. */
  get generation(): number {
    return this.disk.generation;
  }

  /** With --sync always, replies to writes wait for this; false when a write may be lost. */
  durable(): Promise<boolean> {
    return this.disk.durable();
  }

  get mustWait(): boolean {
    return this.disk.sync.kind === 'always';
  }

  /**
   * Loads what fits in memory, purging expired records, and logs progress with
   * counts, rate and time left, so a large data dir does not start in silence.
   * Works in slices so the event loop (and /readyz) keeps answering meanwhile.
   */
  async load(memory: RestoreTarget, log: Logger): Promise<{ loaded: number; onDisk: number; expired: number }> {
    const total = this.disk.count;
    const started = Date.now();
    let lastReport = started;
    let seen = 0;
    let loaded = 0;
    const expiredKeys: string[] = [];
    log.info({ path: this.disk.path, items: total }, 'loading data dir');
    let after: Buffer | null = null;
    do {
      after = this.disk.scan(after, LOAD_SLICE, (key, record) => {
        seen++;
        if (record.exptime !== 0 && record.exptime <= this.clock.now) expiredKeys.push(key);
        else {
          if (memory.restore(key, record)) loaded++;
          if (this.tier !== null) this.enterTier(key, recordBytes(key, record.value.length));
        }
      });
      const now = Date.now();
      if (now - lastReport >= PROGRESS_EVERY_MS) {
        lastReport = now;
        const rate = seen / ((now - started) / 1000);
        log.info(
          { seen, total, loaded, rate: Math.round(rate), etaSeconds: Math.round((total - seen) / rate) },
          `loading data dir: ${seen}/${total} items, ${Math.round(rate)}/s`,
        );
      }
      await new Promise((resolve) => setImmediate(resolve));
    } while (after !== null);
    for (const key of expiredKeys) this.disk.remove(key);
    const onDisk = seen - expiredKeys.length;
    const seconds = (Date.now() - started) / 1000;
    log.info({ loaded, onDisk, expired: expiredKeys.length, seconds }, `data dir loaded: ${loaded} of ${onDisk} items in memory`);
    return { loaded, onDisk, expired: expiredKeys.length };
  }

  /** The tier's lines for `stats`, after memcached's own. */
  stats(): Array<[string, number | string]> {
    const disk = this.disk;
    const writes = disk.writes;
    const lines: Array<[string, number | string]> = [
      ['disk_items', disk.count],
      ['disk_bytes', disk.bytesUsed],
      ['disk_hits', this.hits],
      ['disk_commits', writes.commits],
      ['disk_write_bytes', disk.writeBytes],
      ['disk_commit_avg_ms', writes.commits === 0 ? '0.000' : (writes.commitMsTotal / writes.commits).toFixed(3)],
      ['disk_flushes', disk.flushes],
      ['disk_write_errors', writes.writeErrors],
      ['disk_full', disk.refusing ? 1 : 0],
      ['disk_free_bytes', disk.space.freeBytes],
      ['disk_reserve_bytes', disk.space.reserve],
      ['disk_unsettled_bytes', disk.space.unsettled],
    ];
    if (this.diskLimit !== null) {
      lines.push(['disk_limit', this.diskLimit], ['disk_tier_bytes', this.tierBytes], ['disk_evictions', this.evictions]);
    }
    return lines;
  }

  close(): Promise<void> {
    return this.disk.close();
  }
}
