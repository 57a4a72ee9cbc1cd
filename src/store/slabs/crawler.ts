import type { CrawlStart, CrawlerClient, CrawlerSettings, ItemCrawler, ItemDump } from '../store.js';
import type { SlabArena } from './arena.js';
import {
  H_CAS_HIGH,
  H_CAS_LOW,
  H_CLIENT_FLAGS,
  H_EXPTIME,
  H_HASH,
  H_HOLDS,
  H_META,
  H_TIME,
  H_VALUE_LENGTH,
  ITEM_FETCHED,
  ITEM_LINKED,
  ITEM_SLABBED,
  KEY_OFFSET,
  memcachedItemTotal,
} from './layout.js';
import { CLASS_SLOTS } from './pages.js';

/** memcached's settings.crawls_persleep: items looked at between two sleeps of lru_crawler_sleep. */
const ITEMS_PER_BATCH = 1000;
/** Chunks looked at per batch at most (free ones cost a look too), so a sparse page never makes a long batch. */
const CHUNKS_PER_BATCH = 16 * 1024;
/** Items the background walk looks at per clock tick (what SlabStore's expiry sweep looked at). */
const BACKGROUND_ITEMS_PER_TICK = 10_000;
const TWO_32 = 4294967296;
/** The class bits of an LRU id (memcached's CLEAR_LRU: segments are the top two bits). */
const CLASS_MASK = CLASS_SLOTS - 1;

const EXPIRE = 0;
const METADUMP = 1;

/** Told of each dead item the crawler is about to free; the store frees it (and reports it). */
export interface CrawlerOwner {
  reclaimCrawled(ref: number, unfetched: boolean): void;
}

/** Where a walk is: a chunk of a page, and what it is for. */
class Walk {
  page = 0;
  chunk = 0;
  /** Classes (LRU class ids) whose items the walk looks at. */
  readonly classes = new Uint8Array(CLASS_SLOTS);
  /** Every page, not only the selected classes' (a chunked item's header is in a smaller class's page). */
  allPages = false;
  /** Items looked at this walk per class, for tocrawl. */
  readonly seen = new Uint32Array(CLASS_SLOTS);
  limit = 0;
  /** Count crawler_items_checked (a hash-order metadump does not, as memcached's). */
  counted = true;

  reset(limit: number): void {
    this.page = 0;
    this.chunk = 0;
    this.classes.fill(0);
    this.seen.fill(0);
    this.allPages = false;
    this.limit = limit;
    this.counted = true;
  }
}

/**
 * memcached's LRU crawler (crawler.c) on the slab arena. Rather than walking
 * the LRU lists (which the maintainer reorders while the walk runs, and whose
 * shape is the LRU's business), it walks the pages of the selected classes
 * chunk by chunk: a position is just (page, chunk), valid across batches
 * whatever is freed, bumped or stored meanwhile, so no item is pinned between
 * batches. Free chunks (ITEM_SLABBED), chunks not linked (being written, a
 * chunked item's data chunks) and not yet carved ones are passed by. As with
 * memcached's LRU walk, a key stored again during a walk may be met twice or
 * not at all (its new chunk may lie behind or ahead of the walk). `metadump
 * hash` (memcached walks the hash table) walks every page: the same items.
 *
 * A requested crawl or metadump runs ITEMS_PER_BATCH items per event-loop turn,
 * pausing lru_crawler_sleep µs per batch as memcached sleeps per
 * crawls_persleep items (sleeps under 1 ms add up until they make one). The
 * background walk stands in for the maintainer's autocrawl
 * (lru_maintainer_crawler_check, which schedules whole crawls per class from a
 * histogram of TTLs): it looks at a bounded slice of pages every clock tick,
 * so expired items go soon at a fixed cost per second, and it never holds the
 * crawler busy: a requested crawl pauses it.
 */
export class LruCrawler implements ItemCrawler {
  enabled: boolean;
  sleep: number;
  tocrawl: number;
  starts = 0;
  private readonly background: boolean;
  private readonly reclaimed = new Float64Array(CLASS_SLOTS);
  private readonly checked = new Float64Array(CLASS_SLOTS);
  /** The requested crawl or metadump under way, or null. */
  private job: Walk | null = null;
  private mode = EXPIRE;
  private client: CrawlerClient | null = null;
  private readonly jobWalk = new Walk();
  private readonly backgroundWalk = new Walk();
  private backgroundStarted = false;
  /** Microseconds of sleep owed, paid once they make a whole millisecond. */
  private sleepOwed = 0;
  private readonly dump: ItemDump = {
    key: '', exptime: 0, lastAccess: 0, cas: 0, fetched: false, sizeClass: 0, size: 0, valueLength: 0,
  };
  private readonly runBatch = (): void => this.batch();

  constructor(
    private readonly arena: SlabArena,
    private readonly owner: CrawlerOwner,
    settings: CrawlerSettings,
  ) {
    this.enabled = settings.enabled;
    this.sleep = settings.sleep;
    this.tocrawl = settings.tocrawl;
    this.background = settings.background;
  }

  get running(): boolean {
    return this.job !== null;
  }

  enable(): boolean {
    if (this.enabled) return false;
    this.enabled = true;
    return true;
  }

  disable(): void {
    this.enabled = false;
  }

  reclaimedIn(id: number): number {
    return this.reclaimed[id] ?? 0;
  }

  checkedIn(id: number): number {
    return this.checked[id] ?? 0;
  }

  crawl(classes: string): CrawlStart {
    return this.start(classes, EXPIRE, null);
  }

  metadump(classes: string, client: CrawlerClient): CrawlStart {
    return this.start(classes, METADUMP, client);
  }

  /** The clock ticked: the background walk takes its slice, unless a requested walk runs. */
  tick(): void {
    if (!this.enabled || !this.background || this.job !== null) return;
    const walk = this.backgroundWalk;
    if (!this.backgroundStarted) {
      walk.reset(this.tocrawl);
      walk.classes.fill(1, 1);
      walk.allPages = true;
      this.backgroundStarted = true;
      this.starts++;
    }
    if (this.step(walk, EXPIRE, BACKGROUND_ITEMS_PER_TICK, BACKGROUND_ITEMS_PER_TICK * 4)) this.backgroundStarted = false;
  }

  /** memcached's lru_crawler_crawl: which classes, then lru_crawler_start. */
  private start(classes: string, mode: number, client: CrawlerClient | null): CrawlStart {
    const walk = this.jobWalk;
    const limit = mode === METADUMP ? 0 : this.tocrawl;
    // Chosen into the job's walk only once it is known no job runs.
    const chosen = new Uint8Array(CLASS_SLOTS);
    let hash = false;
    if (classes === 'all') {
      chosen.fill(1, 1);
    } else if (classes === 'hash') {
      hash = true;
    } else {
      for (const part of classes.split(',')) {
        if (part === '') continue;
        const id = /^\+?\d+$/.test(part) ? Number(part) : NaN;
        if (!(id >= 1 && id < CLASS_SLOTS)) return 'badclass';
        chosen[id] = 1;
      }
    }
    if (this.job !== null) return 'busy';
    // memcached walks the hash table only for a metadump.
    if (hash && mode !== METADUMP) return 'error';
    if (!hash && chosen.indexOf(1) === -1) return 'notstarted';
    walk.reset(limit);
    if (hash) {
      walk.classes.fill(1, 1);
      walk.allPages = true;
      walk.counted = false;
    } else {
      walk.classes.set(chosen);
      // Chunked items age in the largest class, their header chunks in smaller classes' pages.
      walk.allPages = chosen[this.arena.classes.largest] === 1;
    }
    this.job = walk;
    this.mode = mode;
    this.client = client;
    this.starts++;
    this.sleepOwed = 0;
    setImmediate(this.runBatch);
    return 'ok';
  }

  private batch(): void {
    const walk = this.job;
    if (walk === null) return;
    const client = this.client;
    if (client !== null && client.gone) {
      this.finish();
      return;
    }
    if (this.step(walk, this.mode, ITEMS_PER_BATCH, CHUNKS_PER_BATCH)) {
      this.finish();
      return;
    }
    if (client !== null && !client.flush(this.runBatch)) return;
    this.sleepOwed += this.sleep;
    if (this.sleepOwed >= 1000) {
      const ms = Math.floor(this.sleepOwed / 1000);
      this.sleepOwed -= ms * 1000;
      setTimeout(this.runBatch, ms);
    } else {
      setImmediate(this.runBatch);
    }
  }

  private finish(): void {
    const client = this.client;
    this.job = null;
    this.client = null;
    if (client !== null) client.end();
  }

  /**
   * Looks at up to `items` linked items (and `chunks` chunks) from where the
   * walk is. True when the walk has passed the last page.
   */
  private step(walk: Walk, mode: number, items: number, chunks: number): boolean {
    const arena = this.arena;
    const pages = arena.pages;
    let looked = 0;
    let scanned = 0;
    while (walk.page < pages.pageCount) {
      const page = walk.page;
      const pageClass = pages.pageClass[page]!;
      if (!walk.allPages && walk.classes[pageClass] !== 1) {
        walk.page++;
        walk.chunk = 0;
        continue;
      }
      // The class's newest page is carved only up to carveNext; past it lies memory never used.
      const carveNext = pages.carveNext[pageClass]!;
      const end = (carveNext >>> 16) - 1 === page ? carveNext & 0xffff : pages.perPage[pageClass]!;
      const size = pages.pageChunkSize[page]!;
      const words = pages.words[page]!;
      let chunk = walk.chunk;
      for (; chunk < end; chunk++) {
        if (looked >= items || scanned >= chunks) {
          walk.chunk = chunk;
          return false;
        }
        scanned++;
        const field = (chunk * size) >>> 2;
        const meta = words[field + H_META]!;
        const flags = meta >>> 16;
        if ((flags & ITEM_LINKED) === 0 || (flags & ITEM_SLABBED) !== 0) continue;
        const id = (meta >>> 8) & CLASS_MASK;
        if (walk.classes[id] !== 1) continue;
        if (walk.limit !== 0 && walk.seen[id]! >= walk.limit) continue;
        const ref = ((page + 1) << 16) | chunk;
        if (!this.isIndexed(ref, field, meta & 0xff, page)) continue;
        looked++;
        if (mode === EXPIRE) {
          // A held item is busy (memcached's refcount check): passed by, not counted.
          if (words[field + H_HOLDS] !== 0) continue;
          walk.seen[id]!++;
          this.checked[id]!++;
          if (arena.isDead(ref)) {
            this.reclaimed[id]!++;
            // As memcached's crawler_expired_eval: a flushed item does not count as expired unfetched.
            const unfetched = (flags & ITEM_FETCHED) === 0 && !this.isFlushed(ref);
            if (unfetched) arena.expiredUnfetched[id]!++;
            this.owner.reclaimCrawled(ref, unfetched);
          }
        } else {
          walk.seen[id]!++;
          if (walk.counted) this.checked[id]!++;
          if (!arena.isDead(ref)) this.list(words, field, page, id);
        }
      }
      walk.page++;
      walk.chunk = 0;
    }
    return true;
  }

  /**
   * The hash table finds this chunk under its key: the chunk holds a linked
   * item, not bytes that only look like one (a data chunk, or a page reused by
   * another class that was not cleared). Freeing anything else would corrupt
   * the table and the LRU, so a crawl pays one bucket lookup per item for it.
   */
  private isIndexed(ref: number, field: number, keyLength: number, page: number): boolean {
    const bytes = this.arena.pages.bytes[page]!;
    const keyStart = (field << 2) + KEY_OFFSET;
    if (keyLength === 0 || keyStart + keyLength > bytes.length) return false;
    return this.arena.hashTable.find(bytes, keyStart, keyStart + keyLength, this.arena.pages.words[page]![field + H_HASH]!) === ref;
  }

  private isFlushed(ref: number): boolean {
    const arena = this.arena;
    const oldestLive = arena.oldestLive;
    return oldestLive !== 0 && oldestLive <= arena.now && arena.time(ref) <= oldestLive;
  }

  /** Hands one live item to the metadump's client. */
  private list(words: Uint32Array, field: number, page: number, id: number): void {
    const meta = words[field + H_META]!;
    const keyLength = meta & 0xff;
    const keyStart = (field << 2) + KEY_OFFSET;
    const valueLength = words[field + H_VALUE_LENGTH]!;
    const clientFlags = words[field + H_CLIENT_FLAGS]!;
    const dump = this.dump;
    dump.key = this.arena.pages.bytes[page]!.toString('latin1', keyStart, keyStart + keyLength);
    dump.exptime = words[field + H_EXPTIME]!;
    dump.lastAccess = words[field + H_TIME]!;
    dump.cas = words[field + H_CAS_HIGH]! * TWO_32 + words[field + H_CAS_LOW]!;
    dump.fetched = ((meta >>> 16) & ITEM_FETCHED) !== 0;
    dump.sizeClass = id;
    dump.size = memcachedItemTotal(keyLength, valueLength, clientFlags, this.arena.useCas);
    dump.valueLength = valueLength;
    this.client!.item(dump);
  }
}
