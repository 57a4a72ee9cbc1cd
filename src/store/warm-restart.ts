import type { Clock } from '../base/clock.js';
import { MNEMO_VERSION } from '../base/version.js';
import type { SlabStore } from './slab-store.js';
import { loadMemoryFile, saveMemoryFile, type MemoryFileLog } from './slabs/memory-file.js';

/** The settings the slab layout depends on: a memory file saved under others is not loaded. */
export interface LayoutSettings {
  /** -m, in bytes. */
  memoryLimit: number;
  /** -I, in bytes. */
  maxItemSize: number;
  /** -f */
  slabGrowthFactor: number;
  /** -n */
  slabMinSize: number;
  /** -C turns it off (items are charged 8 bytes less). */
  casEnabled: boolean;
}

/**
 * memcached's warm restart (-e, memcached.c's _mc_meta_save_cb/_mc_meta_load_cb)
 * on the slab store: what the metadata record says besides the state, and the
 * clock. Time goes on from the saved clock: the clock comes back at the saved
 * time plus the seconds the server was stopped, so items expire while it is down
 * as they would have had it run (and a test's `debugtime` skew carries over).
 */
export class WarmRestart {
  constructor(
    readonly path: string,
    private readonly store: SlabStore,
    private readonly clock: Clock,
    private readonly settings: LayoutSettings,
    private readonly log: MemoryFileLog,
  ) {}

  /** The layout settings as metadata lines, with the values this process has. */
  private layout(memoryLimit: number): Array<[string, string]> {
    const arena = this.store.arena;
    const s = this.settings;
    return [
      ['version', MNEMO_VERSION],
      ['maxbytes', String(memoryLimit)],
      ['chunk_size', String(s.slabMinSize)],
      ['growth_factor', String(s.slabGrowthFactor)],
      ['item_size_max', String(s.maxItemSize)],
      ['slab_page_size', String(arena.pages.pageSize)],
      ['slab_chunk_max', String(arena.classes.chunkSizes[arena.classes.largest])],
      ['use_cas', String(s.casEnabled)],
      ['slab_classes', arena.classes.chunkSizes.slice(1, arena.classes.largest + 1).join(',')],
    ];
  }

  /** Saves the cache; returns the bytes written. Throws on an I/O error (nothing loadable is left then). */
  save(): number {
    const store = this.store;
    store.prepareSave();
    const clock = this.clock;
    const meta: Array<[string, string]> = [
      ...this.layout(store.bytesLimit),
      ['current_time', String(clock.now)],
      ['process_started', String(clock.started)],
      ['stop_time', String(Math.floor(Date.now() / 1000))],
    ];
    return saveMemoryFile(this.path, meta, store.stateEntries(), this.log);
  }

  /**
   * Loads the cache a save left, if it matches this start. Logs one line: what
   * was loaded, or why the cache starts clean. Throws MemoryFileCorrupt (the
   * start must stop) for a metadata file that is not one.
   */
  load(): boolean {
    let resumeAt = 0;
    let started = 0;
    const check = (meta: Map<string, string>): string | null => {
      for (const [key, value] of this.layout(this.settings.memoryLimit)) {
        const saved = meta.get(key);
        if (saved !== value) return `saved with ${key} ${saved ?? '(none)'}, this start has ${value}`;
      }
      const now = Number(meta.get('current_time'));
      const stopped = Number(meta.get('stop_time'));
      started = Number(meta.get('process_started'));
      if (![now, stopped, started].every(Number.isSafeInteger)) return 'the metadata lacks the saved clock';
      const down = Math.floor(Date.now() / 1000) - stopped;
      if (down < 0) return `the system clock is ${-down} s behind the time of the save`;
      resumeAt = now + down;
      return null;
    };
    const result = loadMemoryFile(this.path, this.store.stateEntries(), check, this.log);
    if (!result.loaded) {
      if (result.found) this.log.warn({ memoryFile: this.path, reason: result.reason }, `memory file not loaded: ${result.reason}; starting with a clean cache`);
      else this.log.info({ memoryFile: this.path }, 'no memory file saved; starting with a clean cache');
      return false;
    }
    this.clock.restore(resumeAt, started);
    this.store.stateLoaded();
    this.log.info(
      { memoryFile: this.path, bytes: result.bytes, items: this.store.itemCount, clock: resumeAt },
      `memory file loaded: ${this.store.itemCount} items`,
    );
    return true;
  }
}
