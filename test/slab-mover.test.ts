/**
 * The slab page mover (src/store/slabs/rebalancer.ts), driven directly on an
 * arena: a page's items are rescued into free chunks of their class or evicted
 * (chunked items' data chunks too), the hash table and the LRU stay whole, a
 * pinned item holds the move until it is let go, the page reaches its new class
 * or the global pool, and the pool gives back memory past -m.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SlabArena } from '../src/store/slabs/arena.js';
import { H_LRU_NEXT, H_LRU_PREV } from '../src/store/slabs/layout.js';
import { COLD_LRU, HOT_LRU, TEMP_LRU, WARM_LRU } from '../src/store/slabs/lru.js';
import {
  REASSIGN_BADCLASS,
  REASSIGN_NOSPARE,
  REASSIGN_OK,
  REASSIGN_RUNNING,
  REASSIGN_SRC_DST_SAME,
  SlabRebalancer,
  type RebalanceListener,
} from '../src/store/slabs/rebalancer.js';
import { arenaSet } from './helpers/arena.js';

const MiB = 1024 * 1024;

function keyOf(i: number): Buffer {
  return Buffer.from(`key:${i}`);
}

function valueOf(i: number, length: number): Buffer {
  const value = Buffer.alloc(length);
  for (let j = 0; j < length; j++) value[j] = (i * 131 + j * 7) & 0xff;
  return value;
}

function valueAt(arena: SlabArena, key: Buffer): Buffer | null {
  const ref = arena.find(key, 0, key.length);
  if (ref === 0) return null;
  const out = Buffer.alloc(arena.valueLength(ref));
  arena.copyValueTo(ref, out, 0);
  return out;
}

function word(arena: SlabArena, ref: number, field: number): number {
  return arena.pages.words[(ref >>> 16) - 1]![(arena.pages.offsetOf(ref) >>> 2) + field]!;
}

/**
 * Every LRU is a well-linked list of its count, every item on it is found by its
 * own key in the hash table, and the table holds exactly those items.
 */
function assertWhole(arena: SlabArena): number {
  let total = 0;
  for (let id = 1; id <= arena.classes.largest; id++) {
    // Each class's four segments (HOT, WARM, COLD, TEMP): an LRU id is class | segment.
    for (const segment of [HOT_LRU, WARM_LRU, COLD_LRU, TEMP_LRU]) {
      const lruId = id | segment;
      let count = 0;
      let newer = 0;
      for (let ref = arena.lruHead(lruId); ref !== 0; ref = word(arena, ref, H_LRU_NEXT)) {
        assert.equal(word(arena, ref, H_LRU_PREV), newer, `LRU ${lruId}: back link`);
        assert.ok(arena.isLinked(ref), `LRU ${lruId}: item on the LRU is linked`);
        assert.equal(arena.lruId(ref), lruId, `LRU ${lruId}: the item's header names its LRU`);
        const key = Buffer.alloc(arena.keyLength(ref));
        arena.copyKeyTo(ref, key, 0);
        assert.equal(arena.find(key, 0, key.length), ref, `LRU ${lruId}: ${key.toString()} found at its ref`);
        newer = ref;
        count++;
      }
      assert.equal(arena.lruTail(lruId), newer, `LRU ${lruId}: tail`);
      assert.equal(arena.lru.count[lruId], count, `LRU ${lruId}: count`);
      total += count;
    }
  }
  assert.equal(arena.currItems, total, 'hash table count = items on the LRUs');
  return total;
}

class Dropped implements RebalanceListener {
  evicted: string[] = [];
  dead: string[] = [];
  constructor(private readonly arena: SlabArena) {}
  dropping(ref: number, dead: boolean): void {
    const key = Buffer.alloc(this.arena.keyLength(ref));
    this.arena.copyKeyTo(ref, key, 0);
    (dead ? this.dead : this.evicted).push(key.toString());
  }
}

function mover(arena: SlabArena): SlabRebalancer {
  const rebalancer = new SlabRebalancer(arena, { reassign: true, automove: 0, ratio: 0.8, window: 30 });
  rebalancer.stop(); // no timers: the tests drive the move with finishNow
  return rebalancer;
}

/** Fills one class with n items of the given value length; returns the class id. */
function fill(arena: SlabArena, n: number, length: number, from = 0): number {
  for (let i = from; i < from + n; i++) assert.ok(arenaSet(arena, keyOf(i), valueOf(i, length)) > 0, `stored ${i}`);
  const last = keyOf(from + n - 1);
  return arena.classId(arena.find(last, 0, last.length));
}

describe('slab page mover', () => {
  it('rescues the items of the first page into free chunks of their class; hash table and LRU stay whole', () => {
    const arena = new SlabArena({ memoryLimit: 16 * MiB });
    const length = 900;
    const id = fill(arena, 3000, length);
    const perPage = arena.pages.perPage[id]!;
    assert.ok(arena.pages.totalPages[id]! >= 3);
    // Free a third of the items, spread over all pages: room for the first page's items elsewhere.
    for (let i = 0; i < 3000; i += 3) arena.free(arena.find(keyOf(i), 0, keyOf(i).length));
    const pagesBefore = arena.pages.totalPages[id]!;
    const itemsBefore = assertWhole(arena);
    const rebalancer = mover(arena);
    const listener = new Dropped(arena);
    rebalancer.listener = listener;
    assert.equal(rebalancer.reassign(id, 0), REASSIGN_OK);
    assert.equal(rebalancer.isRunning, true);
    assert.equal(rebalancer.reassign(id, 0), REASSIGN_RUNNING, 'one move at a time');
    assert.equal(rebalancer.finishNow(), true);
    assert.equal(rebalancer.slabsMoved, 1);
    assert.equal(arena.pages.totalPages[id], pagesBefore - 1);
    assert.equal(rebalancer.globalPagePool, 1, 'the page went to the global pool');
    // The first page held perPage chunks; two thirds of them were live, and all were rescued.
    assert.ok(rebalancer.rescues > perPage / 2, `rescues ${rebalancer.rescues}`);
    assert.equal(rebalancer.evictionsNomem, 0);
    assert.deepEqual(listener.evicted, []);
    assert.equal(assertWhole(arena), itemsBefore, 'no item lost');
    const movedPage = (arena.pages.poolPages[0]!);
    for (let i = 0; i < 3000; i++) {
      const key = keyOf(i);
      const ref = arena.find(key, 0, key.length);
      if (i % 3 === 0) {
        assert.equal(ref, 0);
        continue;
      }
      assert.notEqual((ref >>> 16) - 1, movedPage, `${i} is off the moved page`);
      assert.deepEqual(valueAt(arena, key), valueOf(i, length), `${i} byte for byte`);
    }
    // The class's free chunks do not include any of the moved page.
    assert.equal(arena.pages.freeChunks(id) + arena.pages.usedChunks(id), arena.pages.totalPages[id]! * perPage);
    for (let ref = arena.pages.freeHead[id]!; ref !== 0; ref = word(arena, ref, 0)) {
      assert.notEqual((ref >>> 16) - 1, movedPage, 'no free chunk of the moved page');
    }
  });

  it('evicts what it cannot rescue (slab_reassign_evictions_nomem), drops dead items, and gives the page to the destination', () => {
    const arena = new SlabArena({ memoryLimit: 8 * MiB });
    const id = fill(arena, 30000, 300);
    // Full (allocations past -m evicted, no chunk is free); some items expired.
    assert.ok(arena.evicted[id]! > 0);
    assert.equal(arena.pages.freeChunks(id), 0);
    const perPage = arena.pages.perPage[id]!;
    arena.now = 1000;
    const firstPage = arena.pages.firstPageOf(id);
    let expiredOnPage = 0;
    for (let i = 0; i < perPage; i++) {
      const ref = ((firstPage + 1) << 16) | i;
      if (arena.isLinked(ref) && i % 10 === 0) {
        arena.setExptime(ref, 999);
        expiredOnPage++;
      }
    }
    const itemsBefore = assertWhole(arena);
    const usedOnPage = perPage; // a full class: every chunk of its first page holds an item
    const rebalancer = mover(arena);
    const listener = new Dropped(arena);
    rebalancer.listener = listener;
    const dst = id + 3;
    const dstPages = arena.pages.totalPages[dst]!;
    assert.equal(rebalancer.reassign(id, dst), REASSIGN_OK);
    assert.equal(rebalancer.finishNow(), true);
    assert.equal(listener.dead.length, expiredOnPage, 'expired items are dropped, not rescued');
    assert.equal(rebalancer.evictionsNomem, usedOnPage - expiredOnPage, 'no free chunk: every live item evicted');
    assert.equal(listener.evicted.length, usedOnPage - expiredOnPage);
    assert.equal(assertWhole(arena), itemsBefore - usedOnPage);
    for (const key of listener.evicted) assert.equal(arena.find(Buffer.from(key), 0, key.length), 0);
    // The destination class has the page: its chunks are free there.
    assert.equal(arena.pages.totalPages[dst], dstPages + 1);
    assert.equal(arena.pages.classOfChunk(((firstPage + 1) << 16) | 0), dst);
    const before = arena.pages.freeChunks(dst);
    assert.ok(before >= arena.pages.perPage[dst]!);
    const big = arena.pages.chunkSize[dst]! - 100;
    for (let i = 0; i < arena.pages.perPage[dst]!; i++) assert.ok(arenaSet(arena, keyOf(100000 + i), valueOf(i, big)) > 0);
    assertWhole(arena);
  });

  it('moves chunked items: data chunks rescued and relinked, or the whole item evicted', () => {
    const arena = new SlabArena({ memoryLimit: 32 * MiB, slabChunkMax: 16384 });
    const largest = arena.classes.largest;
    assert.equal(arena.pages.chunkSize[largest], 16384);
    const length = 40000; // two 16 KiB data chunks and a smaller last one
    for (let i = 0; i < 300; i++) assert.ok(arenaSet(arena, keyOf(i), valueOf(i, length)) > 0);
    for (let i = 0; i < 300; i += 2) arena.free(arena.find(keyOf(i), 0, keyOf(i).length));
    const rebalancer = mover(arena);
    assert.equal(rebalancer.reassign(largest, 0), REASSIGN_OK);
    assert.equal(rebalancer.finishNow(), true);
    assert.ok(rebalancer.chunkRescues > 0, `chunk rescues ${rebalancer.chunkRescues}`);
    assert.equal(rebalancer.evictionsNomem, 0);
    for (let i = 1; i < 300; i += 2) assert.deepEqual(valueAt(arena, keyOf(i)), valueOf(i, length), `${i} byte for byte`);
    assertWhole(arena);

    // Now a full largest class: moving a page evicts the items whose chunks it holds, whole.
    for (let i = 1000; i < 3000; i++) arenaSet(arena, keyOf(i), valueOf(i, length));
    const itemsBefore = assertWhole(arena);
    assert.equal(rebalancer.reassign(largest, 0), REASSIGN_OK);
    assert.equal(rebalancer.finishNow(), true);
    assert.ok(rebalancer.evictionsNomem > 0);
    const left = assertWhole(arena);
    assert.ok(left < itemsBefore);
    for (let i = 1000; i < 3000; i++) {
      const value = valueAt(arena, keyOf(i));
      if (value !== null) assert.deepEqual(value, valueOf(i, length), `${i} byte for byte`);
    }
  });

  it('waits for a pinned item, and moves it once it is let go', () => {
    const arena = new SlabArena({ memoryLimit: 16 * MiB });
    const id = fill(arena, 3000, 900);
    for (let i = 1; i < 3000; i += 3) arena.free(arena.find(keyOf(i), 0, keyOf(i).length));
    const page = arena.pages.firstPageOf(id);
    const pinned = ((page + 1) << 16) | 3; // key 3: live, on the first page
    assert.ok(arena.isLinked(pinned));
    const key = Buffer.alloc(arena.keyLength(pinned));
    arena.copyKeyTo(pinned, key, 0);
    const value = valueAt(arena, key);
    arena.pin(pinned);
    const rebalancer = mover(arena);
    assert.equal(rebalancer.reassign(id, 0), REASSIGN_OK);
    assert.equal(rebalancer.finishNow(5), false, 'the move waits for the held item');
    assert.ok(rebalancer.isRunning);
    assert.equal(arena.find(key, 0, key.length), pinned, 'the held item stays where it is, linked');
    assert.ok(rebalancer.busyItems >= 5);
    arena.unpin(pinned);
    assert.equal(rebalancer.finishNow(), true);
    const moved = arena.find(key, 0, key.length);
    assert.notEqual((moved >>> 16) - 1, page);
    assert.deepEqual(valueAt(arena, key), value);
    assertWhole(arena);
  });

  it('waits for an item the segmented LRU\'s bump queue pins, then rescues it into the segment its header names', () => {
    const arena = new SlabArena({ memoryLimit: 16 * MiB });
    const id = fill(arena, 3000, 900);
    for (let i = 1; i < 3000; i += 3) arena.free(arena.find(keyOf(i), 0, keyOf(i).length));
    // The maintainer's juggles push HOT's tail (the oldest items, on the first page) down into COLD.
    for (let run = 0; run < 20; run++) arena.juggle(id);
    const page = arena.pages.firstPageOf(id);
    let queued = 0;
    for (let index = 0; index < arena.pages.perPage[id]! && queued === 0; index++) {
      const ref = ((page + 1) << 16) | index;
      if (arena.isLinked(ref) && arena.lruId(ref) === (id | COLD_LRU)) queued = ref;
    }
    assert.notEqual(queued, 0, 'an item of the first page is in COLD');
    const key = Buffer.alloc(arena.keyLength(queued));
    arena.copyKeyTo(queued, key, 0);
    const value = valueAt(arena, key);
    arena.bump(queued);
    arena.bump(queued); // the second hit makes it active: queued for WARM, pinned while queued
    assert.equal(arena.bumpLength, 1);
    const rebalancer = mover(arena);
    assert.equal(rebalancer.reassign(id, 0), REASSIGN_OK);
    assert.equal(rebalancer.finishNow(5), false, 'the move waits for the queued item');
    assert.equal(arena.find(key, 0, key.length), queued, 'the queued item stays where it is');
    arena.processBumps(Number.POSITIVE_INFINITY);
    assert.equal(rebalancer.finishNow(), true);
    const moved = arena.find(key, 0, key.length);
    assert.notEqual((moved >>> 16) - 1, page);
    assert.equal(arena.lruId(moved), id | WARM_LRU, 'moved to WARM by the queue, and rescued there');
    assert.deepEqual(valueAt(arena, key), value);
    assertWhole(arena);
  });

  it('answers as memcached: BADCLASS, SAME, NOSPARE; -1 picks any class with a spare page', () => {
    const arena = new SlabArena({ memoryLimit: 16 * MiB });
    const id = fill(arena, 3000, 900);
    const rebalancer = mover(arena);
    assert.equal(rebalancer.reassign(id, id), REASSIGN_SRC_DST_SAME);
    assert.equal(rebalancer.reassign(id, 64), REASSIGN_BADCLASS);
    assert.equal(rebalancer.reassign(-2, 1), REASSIGN_BADCLASS);
    assert.equal(rebalancer.reassign(1, id), REASSIGN_NOSPARE, 'class 1 has no page');
    assert.equal(rebalancer.reassign(0, id), REASSIGN_NOSPARE, 'the pool has no page');
    assert.equal(rebalancer.reassign(-1, id), REASSIGN_BADCLASS, 'no other class has two pages');
    assert.equal(rebalancer.reassign(-1, 1), REASSIGN_OK, 'picks the one class with pages to spare');
    assert.equal(rebalancer.finishNow(), true);
    assert.equal(arena.pages.totalPages[1], 1);
  });

  it('the global pool: new pages come from it first; a lower -m gives pool pages back', () => {
    const arena = new SlabArena({ memoryLimit: 8 * MiB });
    const id = fill(arena, 6000, 900);
    const malloced = arena.totalMalloced;
    for (let i = 0; i < 6000; i++) {
      const ref = arena.find(keyOf(i), 0, keyOf(i).length);
      if (ref !== 0) arena.free(ref);
    }
    const rebalancer = mover(arena);
    for (let moves = 0; moves < 3; moves++) {
      assert.equal(rebalancer.reassign(id, 0), REASSIGN_OK);
      assert.equal(rebalancer.finishNow(), true);
    }
    assert.equal(rebalancer.globalPagePool, 3);
    assert.equal(arena.totalMalloced, malloced, 'pool pages still count in total_malloced');
    // Another class takes its pages from the pool before any new memory.
    for (let i = 0; i < 40; i++) assert.ok(arenaSet(arena, keyOf(50000 + i), valueOf(i, 60000)) > 0);
    assert.equal(rebalancer.globalPagePool, 0);
    assert.equal(arena.totalMalloced, malloced);
    for (let i = 0; i < 40; i++) assert.deepEqual(valueAt(arena, keyOf(50000 + i)), valueOf(i, 60000));
    // Back to the pool, then -m lowered: memory past it goes.
    for (let i = 0; i < 40; i++) arena.free(arena.find(keyOf(50000 + i), 0, keyOf(50000 + i).length));
    const big = arena.classId(arenaSet(arena, keyOf(1), valueOf(1, 60000)));
    while (arena.pages.totalPages[big]! > 1) {
      assert.equal(rebalancer.reassign(big, 0), REASSIGN_OK);
      assert.equal(rebalancer.finishNow(), true);
    }
    const pool = rebalancer.globalPagePool;
    assert.ok(pool >= 2);
    arena.setMemoryLimit(malloced - 2 * MiB);
    assert.equal(arena.totalMalloced, malloced - 2 * MiB);
    assert.equal(rebalancer.globalPagePool, pool - 2);
    assert.deepEqual(valueAt(arena, keyOf(1)), valueOf(1, 60000));
    assertWhole(arena);
  });
});

describe('slab page mover against a model (seeded)', () => {
  for (const seed of [7, 10]) {
    it(`keeps every value byte for byte through random sets, hits, juggles between LRU segments, deletes, pins and page moves in slices (seed ${seed})`, () => {
      let state = seed;
      const random = (): number => {
        state = (state * 1103515245 + 12345) & 0x7fffffff;
        return state / 0x7fffffff;
      };
      const arena = new SlabArena({ memoryLimit: 12 * MiB, slabChunkMax: 16384 });
      const rebalancer = mover(arena);
      const slice = (): void => (rebalancer as unknown as { step(): void }).step();
      const model = new Map<string, Buffer>();
      const pinned: Array<{ ref: number; value: Buffer }> = [];
      const sizes = [50, 300, 900, 3000, 9000, 20000, 45000];
      const check = (name: string): void => {
        const key = Buffer.from(name);
        const ref = arena.find(key, 0, key.length);
        if (ref === 0) {
          model.delete(name); // evicted (or never stored)
          return;
        }
        assert.deepEqual(valueAt(arena, key), model.get(name), name);
      };
      for (let op = 0; op < 60_000; op++) {
        const r = random();
        const name = `k${Math.floor(random() * 3000)}`;
        const key = Buffer.from(name);
        if (r < 0.4) {
          const value = Buffer.alloc(sizes[Math.floor(random() * sizes.length)]! + Math.floor(random() * 40), Math.floor(random() * 256));
          value[0] = op & 0xff;
          const ref = arenaSet(arena, key, value);
          if (ref > 0) model.set(name, value);
          else model.delete(name);
        } else if (r < 0.5) {
          const ref = arena.find(key, 0, key.length);
          if (ref !== 0) arena.free(ref);
          model.delete(name);
        } else if (r < 0.8) {
          check(name);
          // A hit, as a get makes it: marks the item, and an active COLD one is queued (pinned) for WARM.
          const ref = arena.find(key, 0, key.length);
          if (ref !== 0) arena.bump(ref);
        } else if (r < 0.82) {
          const ref = arena.find(key, 0, key.length);
          if (ref !== 0 && pinned.length < 5) {
            arena.pin(ref);
            pinned.push({ ref, value: valueAt(arena, key)! });
          }
        } else if (r < 0.83) {
          const held = pinned.shift();
          if (held !== undefined) {
            const bytes = Buffer.alloc(arena.valueLength(held.ref));
            arena.copyValueTo(held.ref, bytes, 0);
            assert.deepEqual(bytes, held.value, 'a held item keeps its bytes');
            arena.unpin(held.ref);
          }
        } else if (r < 0.9) {
          const src = random() < 0.7 ? -1 : Math.floor(random() * (arena.classes.largest + 1));
          const size = Math.min(16384, sizes[Math.floor(random() * sizes.length)]! + 70);
          rebalancer.reassign(src, random() < 0.3 ? 0 : arena.classes.classOf(size));
        } else if (r < 0.95) {
          slice();
        } else if (r < 0.98) {
          // The LRU maintainer's work: items move between HOT, WARM and COLD (the mover relinks them in theirs).
          arena.juggle(1 + Math.floor(random() * arena.classes.largest), 50);
        } else {
          arena.processBumps(20);
        }
      }
      for (const held of pinned) arena.unpin(held.ref);
      arena.processBumps(Number.POSITIVE_INFINITY);
      assert.equal(rebalancer.finishNow(), true);
      assert.ok(rebalancer.slabsMoved > 100, `pages moved: ${rebalancer.slabsMoved}`);
      assert.ok(rebalancer.rescues > 0 && rebalancer.chunkRescues > 0 && rebalancer.evictionsNomem > 0);
      assertWhole(arena);
      for (const name of [...model.keys()]) check(name);
      assert.ok(model.size > 100);
    });
  }
});
