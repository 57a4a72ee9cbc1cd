import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { DiskStore } from './disk.js';
import type { MemoryStore } from './memory.js';
import type { ItemView, StoreBacking, StoredRecord } from './store.js';

/** How often the start-up load reports progress, and how many records it reads between yields. */
const PROGRESS_EVERY_MS = 1000;
const LOAD_SLICE = 20_000;

/**
 * --data-dir: memory serves, LMDB keeps. Every change the memory store accepts
 * is written to disk; items that do not fit in memory stay on disk and come
 * back on access; a restart loads what fits.
 */
export class Persistence implements StoreBacking {
  constructor(
    private readonly disk: DiskStore,
    private readonly clock: Clock,
  ) {}

  stored(key: string, item: ItemView): void {
    this.disk.put(key, { value: item.value, flags: item.flags, exptime: item.exptime, cas: item.cas });
  }

  removed(key: string): void {
    this.disk.remove(key);
  }

  cleared(): void {
    this.disk.clear();
  }

  fetch(key: string): StoredRecord | null {
    return this.disk.get(key);
  }

  /** Changes since a batch began: the connection waits for durability only when there were some. */
  get generation(): number {
    return this.disk.generation;
  }

  /** With --sync always, replies to writes wait for this. */
  durable(): Promise<void> {
    return this.disk.durable();
  }

  get mustWaitForDisk(): boolean {
    return this.disk.sync.kind === 'always';
  }

  /**
   * Loads what fits in memory, purging expired records, and logs progress with
   * counts, rate and time left, so a large data dir does not start in silence.
   * Works in slices so the event loop (and /readyz) keeps answering meanwhile.
   */
  async load(memory: MemoryStore, log: Logger): Promise<{ loaded: number; onDisk: number; expired: number }> {
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
        else if (memory.restore(key, record)) loaded++;
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

  get writeErrors(): number {
    return this.disk.writeErrors;
  }

  get diskItems(): number {
    return this.disk.count;
  }

  close(): Promise<void> {
    return this.disk.close();
  }
}
