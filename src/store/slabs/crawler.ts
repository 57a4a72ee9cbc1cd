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
/** memcached's MAX_MAINTCRAWL_WAIT: every class is crawled at least once an hour. */
const MAX_AUTOCRAWL_WAIT = 60 * 60;
/** Per class, remaining TTLs of the items an autocrawl saw, in minutes 0..60 (memcached's crawlerstats histo). */
const HISTOGRAM_BUCKETS = 61;
const TWO_32 = 4294967296;
/** The class bits of an LRU id (memcached's CLEAR_LRU: segments are the top two bits). */
const CLASS_MASK = CLASS_SLOTS - 1;

const EXPIRE = 0;
const METADUMP = 1;
/** memcached's CRAWLER_AUTOEXPIRE: an expire crawl the maintainer scheduled, which keeps crawlerstats. */
const AUTOEXPIRE = 2;

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
 * A crawl or metadump runs ITEMS_PER_BATCH items per event-loop turn, pausing
 * lru_crawler_sleep µs per batch as memcached sleeps per crawls_persleep items
 * (sleeps under 1 ms add up until they make one). With the LRU maintainer on,
 * the clock's tick schedules autocrawls as memcached's maintainer does
 * (tick()), and they are crawls like the others: running, counted in
 * lru_crawler_starts, and a request meanwhile is answered BUSY.
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
  /** memcached's lru_maintainer_crawler_check state, per class: when to crawl next, and how long to wait. */
  private readonly nextCrawl = new Float64Array(CLASS_SLOTS);
  private readonly nextCrawlWait = new Float64Array(CLASS_SLOTS);
  /** memcached's crawlerstats of the last autocrawl, per class. */
  private readonly autoSeen = new Float64Array(CLASS_SLOTS);
  private readonly autoNoExpiry = new Float64Array(CLASS_SLOTS);
  private readonly autoHistogram = new Float64Array(CLASS_SLOTS * HISTOGRAM_BUCKETS);
  private readonly runComplete = new Uint8Array(CLASS_SLOTS);
  /** No autocrawl before this time (a crawl request was refused, as memcached's block_ae_until). */
  private blockAutoUntil = 0;
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

  /**
   * The clock ticked: memcached's lru_maintainer_crawler_check. A class whose
   * last autocrawl finished gets its next one scheduled from what it saw
   * (sooner when over 1% of its items with a TTL expire within the coming
   * minutes, a minute later each time there was nothing to reclaim, at most an
   * hour apart); due classes are crawled together.
   */
  tick(): void {
    if (!this.enabled || !this.background) return;
    const now = this.arena.now;
    let due = false;
    const largest = this.arena.classes.largest;
    for (let id = 1; id <= largest; id++) {
      if (this.runComplete[id] === 1) {
        this.runComplete[id] = 0;
        const possible = this.autoSeen[id]! - this.autoNoExpiry[id]!;
        const lowWatermark = Math.floor(possible / 100) + 1;
        let available = 0;
        for (let minute = 0; minute < 60; minute++) {
          available += this.autoHistogram[id * HISTOGRAM_BUCKETS + minute]!;
          if (available > lowWatermark) {
            if (this.nextCrawlWait[id]! < minute * 60) this.nextCrawlWait[id]! += 60;
            else if (this.nextCrawlWait[id]! >= 60) this.nextCrawlWait[id]! -= 60;
            break;
          }
        }
        if (available === 0) this.nextCrawlWait[id]! += 60;
        if (this.nextCrawlWait[id]! > MAX_AUTOCRAWL_WAIT) this.nextCrawlWait[id] = MAX_AUTOCRAWL_WAIT;
        this.nextCrawl[id] = now + this.nextCrawlWait[id]! + 5;
      }
      if (now > this.nextCrawl[id]!) due = true;
    }
    if (!due || this.job !== null || this.blockAutoUntil > now) return;
    const walk = this.jobWalk;
    walk.reset(this.tocrawl);
    for (let id = 1; id <= largest; id++) {
      if (now <= this.nextCrawl[id]!) continue;
      walk.classes[id] = 1;
      // The minimum retry wait, as memcached's.
      this.nextCrawl[id] = now + 5;
    }
    walk.allPages = walk.classes[largest] === 1;
    // As memcached's crawler_expired_init: every class's figures start again.
    this.autoSeen.fill(0);
    this.autoNoExpiry.fill(0);
    this.autoHistogram.fill(0);
    this.runComplete.fill(0);
    this.begin(walk, AUTOEXPIRE, null);
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
    if (this.job !== null) {
      // memcached holds the autocrawler back for a minute after refusing a request.
      this.blockAutoUntil = this.arena.now + 60;
      return 'busy';
    }
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
    this.begin(walk, mode, client);
    return 'ok';
  }

  private begin(walk: Walk, mode: number, client: CrawlerClient | null): void {
    this.job = walk;
    this.mode = mode;
    this.client = client;
    this.starts++;
    this.sleepOwed = 0;
    // An autocrawl takes its first batch within the tick: a small cache is crawled before any
    // request can find the crawler busy. A request's crawl starts after its reply is sent.
    if (mode === AUTOEXPIRE) this.batch();
    else setImmediate(this.runBatch);
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
    if (this.mode === AUTOEXPIRE) {
      const classes = this.jobWalk.classes;
      for (let id = 1; id < CLASS_SLOTS; id++) if (classes[id] === 1) this.runComplete[id] = 1;
    }
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
        if (mode !== METADUMP) {
          // A held item is busy (memcached's refcount check): passed by, not counted.
          if (words[field + H_HOLDS] !== 0) continue;
          walk.seen[id]!++;
          this.checked[id]!++;
          if (this.isGone(ref)) {
            this.reclaimed[id]!++;
            // As memcached's crawler_expired_eval: a flushed item does not count as expired unfetched.
            const unfetched = (flags & ITEM_FETCHED) === 0 && !arena.isFlushed(ref);
            if (unfetched) arena.expiredUnfetched[id]!++;
            this.owner.reclaimCrawled(ref, unfetched);
          } else if (mode === AUTOEXPIRE) {
            this.countTtl(id, words[field + H_EXPTIME]!);
          }
        } else {
          walk.seen[id]!++;
          if (walk.counted) this.checked[id]!++;
          if (!this.isGone(ref)) this.list(words, field, page, id);
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

  /** memcached's crawler_expired_eval for a live item: its remaining TTL in the class's histogram. */
  private countTtl(id: number, exptime: number): void {
    this.autoSeen[id]!++;
    if (exptime === 0) {
      this.autoNoExpiry[id]!++;
      return;
    }
    const remaining = exptime - this.arena.now;
    if (remaining > 3599) return;
    const bucket = Math.floor(remaining / 60);
    if (bucket <= 60) this.autoHistogram[id * HISTOGRAM_BUCKETS + bucket]!++;
  }

  /**
   * Expired or flushed, as crawler.c decides it: expired once its exptime is
   * past (a get already misses it in its last second; memcached's crawler and
   * metadump let that second go by).
   */
  private isGone(ref: number): boolean {
    const exptime = this.arena.exptime(ref);
    return (exptime !== 0 && exptime < this.arena.now) || this.arena.isFlushed(ref);
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
