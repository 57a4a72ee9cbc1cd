import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Memory above -m that the process may hold (Node itself, buffers, garbage not
 * yet collected) before the guard asks for a full garbage collection.
 */
export const MEMORY_HEADROOM = 96 * 1024 * 1024;
const CHECK_EVERY_MS = 500;
/** A full collection pauses the event loop: at most one per this many ms. */
const MIN_MS_BETWEEN_COLLECTIONS = 2000;

/**
 * Keeps the process near -m plus a fixed headroom. V8 lets garbage (values of
 * evicted items, mostly) pile up to several times the live heap before it
 * collects; under heavy churn that would take the process far past -m. When
 * the resident set passes the limit, the guard runs a full collection, which
 * also frees the Buffers of evicted values.
 */
export class MemoryGuard {
  private readonly timer: NodeJS.Timeout;
  private readonly collect: () => void;
  private lastCollection = 0;

  constructor(private readonly limitBytes: () => number) {
    // --expose-gc at run time: the gc function appears in contexts created afterwards.
    setFlagsFromString('--expose-gc');
    this.collect = runInNewContext('gc') as () => void;
    this.timer = setInterval(() => this.check(), CHECK_EVERY_MS);
    this.timer.unref();
  }

  private check(): void {
    const now = Date.now();
    if (now - this.lastCollection < MIN_MS_BETWEEN_COLLECTIONS) return;
    if (anonymousMemory() <= this.limitBytes() + MEMORY_HEADROOM) return;
    this.lastCollection = now;
    this.collect();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/**
 * RssAnon from /proc/self/status: resident memory that is not a mapped file, so
 * LMDB's data file (--data-dir) does not count. The whole resident set elsewhere.
 */
function anonymousMemory(): number {
  try {
    const match = /RssAnon:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'latin1'));
    if (match !== null) return Number(match[1]) * 1024;
  } catch {
    // not Linux
  }
  return process.memoryUsage.rss();
}
