/**
 * The slab allocator, hash table and per-class LRU (src/store/slabs/), driven
 * directly: memcached's memory arithmetic, eviction order, -M, chunked items,
 * incremental hash expansion, chunk reuse, page accounting (total_malloced,
 * pages given back under a lowered -m), reclaiming expired items before
 * evicting live ones, pinned items, and a seeded differential against a Map.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NO_MEMORY, SlabArena, TOO_LARGE, type EvictionListener } from '../src/store/slabs/arena.js';
import { ITEM_FETCHED, ITEM_STALE, memcachedItemTotal } from '../src/store/slabs/layout.js';
import { COLD_LRU } from '../src/store/slabs/lru.js';
import { PREFETCH_MAX } from '../src/store/slabs/hash-table.js';
import { DEFAULTS, type LruConfig } from '../src/config/config.js';
import { murmur3 } from '../src/store/slabs/murmur3.js';
import { Random } from './helpers/random.js';
import { arenaSet } from './helpers/arena.js';

const MiB = 1024 * 1024;

function keyOf(i: number): Buffer {
  return Buffer.from(`k${String(i).padStart(9, '0')}`);
}

function valueOf(i: number, length: number): Buffer {
  const value = Buffer.alloc(length);
  for (let j = 0; j < length; j++) value[j] = (i * 31 + j * 7) & 0xff;
  return value;
}

/** memcached's compat LRU (-o no_modern): every item in COLD, no maintainer. */
function flatLru(): LruConfig {
  return { ...DEFAULTS.lru, maintainer: false, segmented: false };
}

function get(arena: SlabArena, key: Buffer): Buffer | null {
  const ref = arena.find(key, 0, key.length);
  if (ref === 0) return null;
  const out = Buffer.alloc(arena.valueLength(ref));
  assert.equal(arena.copyValueTo(ref, out, 0), out.length);
  return out;
}

describe('murmur3', () => {
  it('matches MurmurHash3_x86_32 with seed 0 (memcached hash_algorithm=murmur3)', () => {
    const hash = (text: string): number => murmur3(Buffer.from(text), 0, text.length);
    assert.equal(hash(''), 0);
    assert.equal(hash('hello world'), 0x5e928f0f);
    assert.equal(hash('The quick brown fox jumps over the lazy dog'), 0x2e4ff723);
    const inside = Buffer.from('xxhello worldyy');
    assert.equal(murmur3(inside, 2, 13), 0x5e928f0f, 'hashes the bytes where they lie');
  });
});

describe('slab classes and capacity', () => {
  it('charges items as memcached does and fills -m 64 with pages x chunks per page', () => {
    const arena = new SlabArena({ memoryLimit: 64 * MiB });
    // 10-byte key, 100-byte value, flags 0, CAS: 48 + 8 + 11 + 102 = 169 bytes -> the 192-byte class
    assert.equal(memcachedItemTotal(10, 100, 0, true), 169);
    const value = valueOf(0, 100);
    for (let i = 0; i < 450_000; i++) assert.ok(arenaSet(arena, keyOf(i), value) > 0);
    const id = arena.classId(arena.find(keyOf(449_999), 0, 10));
    const slabs = arena.slabStats(id);
    assert.equal(slabs.chunk_size, 192);
    assert.equal(slabs.chunks_per_page, 5461);
    assert.equal(slabs.total_pages, 64);
    // memcached 1.6.18 -m 64 holds 349504 of these (64 pages x 5461), measured with pipelined sets
    assert.equal(arena.currItems, slabs.total_pages * slabs.chunks_per_page);
    assert.equal(arena.currItems, 349_504);
    assert.equal(arena.totalMalloced, 64 * MiB);
    assert.equal(slabs.used_chunks, 349_504);
    assert.equal(slabs.free_chunks, 0);
    assert.equal(slabs.mem_requested, 349_504 * 169);
    assert.equal(arena.itemStats(id).evicted, 450_000 - 349_504);
    assert.equal(arena.itemStats(id).number, 349_504);
    assert.equal(get(arena, keyOf(100_495)), null, 'the oldest went first');
    assert.deepEqual(get(arena, keyOf(100_496)), value);
  });

  it('fills -m 64 with 1 KiB values as memcached: 64 pages of 885 chunks of 1184 bytes', () => {
    const arena = new SlabArena({ memoryLimit: 64 * MiB });
    // 48 + 8 + 11 + 1026 = 1093 bytes -> the 1184-byte class
    const value = valueOf(1, 1024);
    for (let i = 0; i < 70_000; i++) assert.ok(arenaSet(arena, keyOf(i), value) > 0);
    const slabs = arena.slabStats(arena.classId(arena.find(keyOf(69_999), 0, 10)));
    assert.equal(slabs.chunk_size, 1184);
    assert.equal(slabs.chunks_per_page, 885);
    assert.equal(slabs.total_pages, 64);
    // memcached 1.6.18 -m 64 holds 56640 after the same sets
    assert.equal(arena.currItems, 64 * 885);
  });

  it('refuses keys and items that can never fit', () => {
    const arena = new SlabArena({ memoryLimit: 4 * MiB });
    assert.equal(arena.allocate(251, 10, 0, 0), TOO_LARGE);
    assert.equal(arena.allocate(0, 10, 0, 0), TOO_LARGE);
    assert.equal(arena.allocate(10, MiB, 0, 0), TOO_LARGE);
    assert.ok(arena.allocate(10, MiB - 48 - 8 - 11 - 2, 0, 0) > 0, 'exactly -I fits');
  });
});

describe('per-class LRU and eviction', () => {
  const perPage = 5461; // the 192-byte class in a 1 MiB page

  it('flat (no_modern): evicts the least recently used first; a hit a minute after the last relinks and survives', () => {
    const arena = new SlabArena({ memoryLimit: MiB, lru: flatLru() });
    const evictedKeys: string[] = [];
    const listener: EvictionListener = {
      evicting(a, ref) {
        const key = Buffer.alloc(a.keyLength(ref));
        a.copyKeyTo(ref, key, 0);
        evictedKeys.push(key.toString());
      },
    };
    arena.evictionListener = listener;
    const value = valueOf(1, 100);
    for (let i = 0; i < perPage; i++) arenaSet(arena, keyOf(i), value);
    assert.equal(arena.currItems, perPage);
    const id = arena.classId(arena.find(keyOf(0), 0, 10));
    assert.equal(arena.slabStats(id).free_chunks, 0);
    assert.equal(arena.itemStats(id).evicted, 0);
    arena.now = 50;
    const bumped = arena.find(keyOf(1), 0, 10);
    arena.bump(bumped);
    assert.equal(arena.time(bumped), 0, 'within ITEM_UPDATE_INTERVAL: not relinked');
    arena.now = 100;
    arena.bump(bumped);
    assert.ok(arena.hasFlag(bumped, ITEM_FETCHED));
    assert.equal(arena.time(bumped), 100);
    arenaSet(arena, keyOf(perPage), value);
    arenaSet(arena, keyOf(perPage + 1), value);
    assert.deepEqual(evictedKeys, [keyOf(0).toString(), keyOf(2).toString()]);
    assert.equal(get(arena, keyOf(0)), null);
    assert.deepEqual(get(arena, keyOf(1)), value, 'bumped survives');
    assert.equal(get(arena, keyOf(2)), null);
    const stats = arena.itemStats(id);
    assert.equal(stats.evicted, 2);
    assert.equal(stats.evicted_unfetched, 2);
    assert.equal(stats.evicted_time, 100);
    assert.equal(stats.number, perPage);
    assert.equal(arena.slabStats(id).total_pages, 1);
    // The LRU from the head: the two newest, then the bumped one
    // Flat mode keeps every item in COLD: from the head, the two newest, then the bumped one
    const cold = id | COLD_LRU;
    assert.equal(arena.lruHead(cold), arena.find(keyOf(perPage + 1), 0, 10));
    assert.equal(arena.older(arena.lruHead(cold)), arena.find(keyOf(perPage), 0, 10));
    assert.equal(arena.older(arena.older(arena.lruHead(cold))), bumped);
    assert.equal(arena.lruTail(cold), arena.find(keyOf(3), 0, 10));
  });

  it('-M: a full class refuses (outofmemory) and keeps every item', () => {
    const arena = new SlabArena({ memoryLimit: MiB, evictions: false });
    const value = valueOf(2, 100);
    for (let i = 0; i < perPage; i++) assert.ok(arenaSet(arena, keyOf(i), value) > 0);
    assert.equal(arena.allocate(10, 100, 0, 0), NO_MEMORY);
    assert.equal(arenaSet(arena, keyOf(perPage), value), NO_MEMORY);
    const id = arena.classId(arena.find(keyOf(0), 0, 10));
    assert.equal(arena.itemStats(id).outofmemory, 2);
    assert.equal(arena.itemStats(id).evicted, 0);
    for (let i = 0; i < perPage; i++) assert.notEqual(arena.find(keyOf(i), 0, 10), 0);
    // Another class still gets its first page past -m, as memcached's do_slabs_newslab allows
    assert.ok(arenaSet(arena, keyOf(0), valueOf(3, 1000)) > 0);
  });

  it('reclaims expired items at the tail before evicting live ones', () => {
    const arena = new SlabArena({ memoryLimit: MiB });
    const value = valueOf(4, 100);
    arena.now = 100;
    for (let i = 0; i < perPage; i++) arenaSet(arena, keyOf(i), value, 0, i < 3 ? 110 : 0);
    const id = arena.classId(arena.find(keyOf(0), 0, 10));
    arena.now = 110;
    assert.ok(arena.isDead(arena.find(keyOf(0), 0, 10)));
    for (let i = 0; i < 3; i++) arenaSet(arena, keyOf(perPage + i), value);
    let stats = arena.itemStats(id);
    assert.equal(stats.reclaimed, 3);
    assert.equal(stats.expired_unfetched, 3);
    assert.equal(stats.evicted, 0);
    for (let i = 3; i < perPage + 3; i++) assert.notEqual(arena.find(keyOf(i), 0, 10), 0, `key ${i}`);
    arenaSet(arena, keyOf(perPage + 3), value);
    stats = arena.itemStats(id);
    assert.equal(stats.evicted, 1);
    assert.equal(arena.find(keyOf(3), 0, 10), 0, 'then the oldest live item goes');
  });

  it('flush_all (oldestLive) makes older items dead and reclaimable', () => {
    const arena = new SlabArena({ memoryLimit: MiB });
    arena.now = 10;
    for (let i = 0; i < perPage; i++) arenaSet(arena, keyOf(i), valueOf(5, 100));
    arena.now = 11;
    arena.oldestLive = 10;
    assert.ok(arena.isDead(arena.find(keyOf(7), 0, 10)));
    arenaSet(arena, keyOf(perPage), valueOf(5, 100));
    const id = arena.classId(arena.find(keyOf(perPage), 0, 10));
    assert.equal(arena.itemStats(id).reclaimed, 5, 'the five items looked at from the tail');
    assert.equal(arena.itemStats(id).evicted, 0);
    assert.equal(arena.isDead(arena.find(keyOf(perPage), 0, 10)), false);
  });

  it('a pinned item is neither evicted nor reused until unpinned', () => {
    const arena = new SlabArena({ memoryLimit: MiB });
    const value = valueOf(6, 100);
    for (let i = 0; i < perPage; i++) arenaSet(arena, keyOf(i), value);
    const pinned = arena.find(keyOf(0), 0, 10);
    arena.pin(pinned);
    arenaSet(arena, keyOf(perPage), value);
    assert.equal(arena.find(keyOf(0), 0, 10), pinned, 'the tail was passed by');
    assert.equal(arena.find(keyOf(1), 0, 10), 0);
    // Overwritten while a reply holds it: its bytes stay until unpin
    const newer = arenaSet(arena, keyOf(0), valueOf(7, 100));
    assert.notEqual(newer, pinned);
    assert.equal(arena.find(keyOf(0), 0, 10), newer);
    const id = arena.classId(pinned);
    const freeBefore = arena.slabStats(id).free_chunks;
    const held = Buffer.alloc(100);
    arena.copyValueTo(pinned, held, 0);
    assert.deepEqual(held, value);
    arena.unpin(pinned);
    assert.equal(arena.slabStats(id).free_chunks, freeBefore + 1, 'freed at the last unpin');
  });

  it('a deleted item held twice keeps its chunk until both holds go', () => {
    const arena = new SlabArena({ memoryLimit: MiB });
    const value = valueOf(8, 2000);
    const ref = arenaSet(arena, keyOf(0), value);
    const id = arena.classId(ref);
    arena.pin(ref);
    arena.pin(ref);
    arena.free(ref);
    assert.equal(arena.find(keyOf(0), 0, 10), 0, 'gone from the table at once');
    assert.equal(arena.itemStats(id).number, 0);
    const freeAfterDelete = arena.slabStats(id).free_chunks;
    const other = arenaSet(arena, keyOf(1), valueOf(9, 2000));
    assert.notEqual(other, ref, 'a held chunk is not handed out');
    arena.unpin(ref);
    const held = Buffer.alloc(2000);
    arena.copyValueTo(ref, held, 0);
    assert.deepEqual(held, value);
    assert.equal(arena.slabStats(id).free_chunks, freeAfterDelete - 1);
    arena.unpin(ref);
    assert.equal(arena.slabStats(id).free_chunks, freeAfterDelete);
  });
});

describe('chunked items', () => {
  it('round-trip byte for byte past the largest chunk, in pieces and in ranges', () => {
    const arena = new SlabArena({ memoryLimit: 16 * MiB });
    const largest = arena.classes.largest;
    const chunkMax = arena.slabStats(largest).chunk_size;
    assert.equal(chunkMax, 512 * 1024);
    const random = new Random(15);
    const sizes = [chunkMax - 80, chunkMax - 48, chunkMax, chunkMax + 1, 2 * (chunkMax - 48) - 2, 2 * (chunkMax - 48), 1_000_000, MiB - 80];
    for (let n = 0; n < sizes.length; n++) {
      const value = random.bytes(sizes[n]!);
      const key = keyOf(n);
      const ref = arena.allocate(10, value.length, 7, 0);
      assert.ok(ref > 0, `size ${value.length}`);
      arena.writeKey(ref, key, 0, 10);
      // as from a socket: in uneven pieces
      let at = 0;
      while (at < value.length) {
        const end = Math.min(value.length, at + 1 + random.int(200_000));
        arena.writeValue(ref, at, value, at, end);
        at = end;
      }
      arena.link(ref);
      assert.deepEqual(get(arena, key), value, `size ${value.length}`);
      const from = random.int(value.length);
      const to = from + random.int(value.length - from + 1);
      const part = Buffer.alloc(to - from + 4);
      assert.equal(arena.copyValueTo(ref, part, 4, from, to), part.length);
      assert.deepEqual(part.subarray(4), value.subarray(from, to));
      assert.equal(arena.clientFlags(ref), 7);
    }
    assert.ok(arena.itemStats(largest).number >= 4, 'chunked items age in the largest class');
    // Freeing every item returns every chunk and every requested byte
    for (let n = 0; n < sizes.length; n++) arena.free(arena.find(keyOf(n), 0, 10));
    assert.equal(arena.currItems, 0);
    for (let id = 1; id <= largest; id++) {
      const slabs = arena.slabStats(id);
      assert.equal(slabs.used_chunks, 0, `class ${id}`);
      assert.equal(slabs.mem_requested, 0, `class ${id}`);
    }
  });

  it('past 1 MiB under -I 4m, over 512 KiB chunks as memcached (slab_chunk_max does not follow -I)', () => {
    const arena = new SlabArena({ memoryLimit: 16 * MiB, maxItemSize: 4 * MiB });
    assert.equal(arena.slabStats(arena.classes.largest).chunk_size, 512 * 1024);
    const value = new Random(4).bytes(4 * MiB - 100);
    assert.ok(arenaSet(arena, keyOf(1), value) > 0);
    assert.deepEqual(get(arena, keyOf(1)), value);
    assert.equal(arena.allocate(10, 4 * MiB, 0, 0), TOO_LARGE);
  });

  it('evict whole when their class is full', () => {
    const arena = new SlabArena({ memoryLimit: 4 * MiB });
    const values: Buffer[] = [];
    for (let i = 0; i < 12; i++) {
      values.push(valueOf(i, 900_000));
      assert.ok(arenaSet(arena, keyOf(i), values[i]!) > 0, `item ${i}`);
    }
    const largest = arena.classes.largest;
    assert.ok(arena.itemStats(largest).evicted > 0);
    let kept = 0;
    for (let i = 0; i < 12; i++) {
      const got = get(arena, keyOf(i));
      if (got !== null) {
        kept++;
        assert.deepEqual(got, values[i]);
      }
    }
    assert.equal(kept, arena.currItems);
    assert.deepEqual(get(arena, keyOf(11)), values[11]);
  });
});

describe('hash table', () => {
  it('doubles incrementally under load; every key is found during and after', () => {
    const arena = new SlabArena({ memoryLimit: 64 * MiB, hashPower: 12 });
    const value = valueOf(8, 20);
    const count = 200_000;
    let checksWhileExpanding = 0;
    let fullChecks = 0;
    const powers = new Set<number>();
    for (let i = 0; i < count; i++) {
      assert.ok(arenaSet(arena, keyOf(i), value) > 0);
      if (arena.isExpanding) {
        powers.add(arena.hashPower);
        assert.equal(arena.hashBytes, 4 * (2 ** arena.hashPower + 2 ** (arena.hashPower - 1)), 'both tables while moving');
        assert.notEqual(arena.find(keyOf(i), 0, 10), 0);
        const earlier = (i * 7919) % (i + 1);
        assert.notEqual(arena.find(keyOf(earlier), 0, 10), 0, `key ${earlier} while expanding`);
        checksWhileExpanding++;
        if (i > 100_000 && fullChecks === 0) {
          // one full check in the middle of moving buckets
          fullChecks++;
          for (let j = 0; j <= i; j++) assert.notEqual(arena.find(keyOf(j), 0, 10), 0, `key ${j} mid-expansion`);
        }
      }
    }
    assert.ok(checksWhileExpanding > 1000);
    assert.equal(fullChecks, 1);
    assert.ok(powers.size >= 5, `expanded through powers ${[...powers].join(',')}`);
    while (arena.hashTable.expandStep(64));
    assert.equal(arena.isExpanding, false);
    assert.equal(arena.hashPower, 18, '2^17 buckets hold 196608 at 1.5 per bucket; 200k needs 2^18');
    assert.equal(arena.hashBytes, 4 * 2 ** 18);
    assert.equal(arena.currItems, count);
    for (let i = 0; i < count; i++) assert.notEqual(arena.find(keyOf(i), 0, 10), 0);
    assert.equal(arena.find(Buffer.from('k999999999'), 0, 10), 0);
    // Deleting every other key during a later stretch keeps the rest findable
    for (let i = 0; i < count; i += 2) arena.free(arena.find(keyOf(i), 0, 10));
    assert.equal(arena.currItems, count / 2);
    for (let i = 0; i < count; i++) assert.equal(arena.find(keyOf(i), 0, 10) !== 0, i % 2 === 1);
  });
});

/** Every byte of the arena's state (what a warm restart saves), to show that a call changed none. */
function stateSnapshot(arena: SlabArena): Buffer {
  const parts: Buffer[] = [];
  for (const entry of arena.stateEntries()) {
    if (entry.kind === 'scalar') parts.push(Buffer.from(String(entry.get())));
    else if (entry.kind === 'array') parts.push(Buffer.from(entry.array.buffer.slice(0)));
    else if (entry.kind === 'table') {
      const table = entry.get();
      if (table !== null) parts.push(Buffer.from(table.buffer.slice(0)));
    } else for (const block of entry.blocks()) parts.push(Buffer.from(block));
  }
  return Buffer.concat(parts);
}

describe('prefetch (a multi-get reading ahead)', () => {
  it('changes nothing, for keys present and absent, past PREFETCH_MAX keys, while the table doubles', () => {
    const arena = new SlabArena({ memoryLimit: 16 * MiB, hashPower: 4 });
    const value = valueOf(3, 10);
    for (let i = 0; i < 25; i++) arenaSet(arena, keyOf(i), value);
    assert.equal(arena.isExpanding, true, 'past 24 items in 16 buckets the table doubles');
    // a get line's keys: every stored one, some absent, one twice, more than PREFETCH_MAX in all
    const absent = Array.from({ length: 12 }, (_, i) => keyOf(100 + i));
    const keys = [...Array.from({ length: 25 }, (_, i) => keyOf(i)), ...absent.slice(0, 6), keyOf(3), ...absent.slice(6)];
    const line = Buffer.from(`get ${keys.map((k) => k.toString()).join(' ')}`);
    const starts = new Int32Array(keys.length);
    const ends = new Int32Array(keys.length);
    for (let i = 0, at = 4; i < keys.length; i++, at += 11) {
      starts[i] = at;
      ends[i] = at + 10;
    }
    assert.ok(keys.length > PREFETCH_MAX);
    const before = stateSnapshot(arena);
    const found = keys.map((k) => arena.find(k, 0, k.length));
    arena.prefetch(line, starts, ends, 0, keys.length);
    arena.prefetch(line, starts, ends, 20, 22);
    assert.deepEqual(stateSnapshot(arena), before);
    assert.deepEqual(keys.map((k) => arena.find(k, 0, k.length)), found);
    assert.deepEqual(found.map((ref) => ref !== 0), keys.map((_, i) => i < 25 || i === 31));
  });
});

describe('chunk reuse', () => {
  it('reuses freed chunks before carving new ones and counts them', () => {
    const arena = new SlabArena({ memoryLimit: 8 * MiB });
    const value = valueOf(9, 100);
    const refs: number[] = [];
    for (let i = 0; i < 3000; i++) refs.push(arenaSet(arena, keyOf(i), value));
    const id = arena.classId(refs[0]!);
    let slabs = arena.slabStats(id);
    assert.equal(slabs.total_pages, 1);
    assert.equal(slabs.used_chunks, 3000);
    assert.equal(slabs.free_chunks, 5461 - 3000);
    const freed = new Set<number>();
    for (let i = 0; i < 3000; i += 3) {
      const ref = arena.find(keyOf(i), 0, 10);
      assert.ok(arena.unlink(ref));
      assert.equal(arena.unlink(ref), false);
      arena.free(ref);
      freed.add(ref);
    }
    slabs = arena.slabStats(id);
    assert.equal(slabs.used_chunks, 2000);
    assert.equal(slabs.free_chunks, 5461 - 2000);
    assert.equal(slabs.mem_requested, 2000 * 169);
    assert.equal(arena.itemStats(id).number, 2000);
    assert.equal(arena.currItems, 2000);
    for (let i = 0; i < 1000; i++) {
      const ref = arenaSet(arena, keyOf(10_000 + i), value);
      assert.ok(freed.has(ref), 'a freed chunk, not a new one');
    }
    slabs = arena.slabStats(id);
    assert.equal(slabs.used_chunks, 3000);
    assert.equal(slabs.total_pages, 1);
    assert.equal(arena.currItems, 3000);
    const once = arenaSet(arena, keyOf(20_000), value);
    arena.free(once);
    assert.throws(() => arena.free(once), /double free/);
  });

  it('keeps header fields: CAS past 2^32, flags, exptime, flag bits', () => {
    const arena = new SlabArena({ memoryLimit: 2 * MiB });
    const ref = arenaSet(arena, Buffer.from('key'), Buffer.from('value'), 0xfffffffe, 12345);
    arena.setCas(ref, 2 ** 40 + 17);
    assert.equal(arena.cas(ref), 2 ** 40 + 17);
    assert.equal(arena.clientFlags(ref), 0xfffffffe);
    assert.equal(arena.exptime(ref), 12345);
    assert.equal(arena.keyLength(ref), 3);
    assert.equal(arena.valueLength(ref), 5);
    arena.setFlag(ref, ITEM_STALE);
    assert.ok(arena.hasFlag(ref, ITEM_STALE));
    assert.ok(arena.isLinked(ref));
    arena.clearFlag(ref, ITEM_STALE);
    assert.equal(arena.hasFlag(ref, ITEM_STALE), false);
    assert.ok(arena.keyEquals(ref, Buffer.from('xkey'), 1, 4));
    assert.equal(arena.keyEquals(ref, Buffer.from('kez'), 0, 3), false);
    assert.equal(arena.keyLength(ref), 3, 'flag bits leave the key length alone');
  });
});

describe('differential against a Map', () => {
  it('agrees on set/delete/get over a small -m with evictions (seeded)', () => {
    const seed = Number(process.env.SLABS_SEED ?? 20261202);
    const random = new Random(seed);
    const arena = new SlabArena({ memoryLimit: 3 * MiB, hashPower: 4 });
    const reference = new Map<string, Buffer>();
    arena.evictionListener = {
      evicting(a, ref) {
        const key = Buffer.alloc(a.keyLength(ref));
        a.copyKeyTo(ref, key, 0);
        assert.ok(reference.delete(key.toString('latin1')), 'evicted an item the reference has');
      },
    };
    const keySpace = 20_000;
    let chunkedStored = 0;
    for (let op = 0; op < 60_000; op++) {
      const id = random.int(keySpace);
      const key = Buffer.from(`key:${id}:${'x'.repeat(id % 40)}`, 'latin1');
      const name = key.toString('latin1');
      const roll = random.int(100);
      if (roll < 45) {
        const size = random.chance(0.002) ? random.range(520_000, 700_000) : random.chance(0.1) ? random.range(1000, 20_000) : random.range(0, 400);
        const value = random.bytes(size);
        const ref = arenaSet(arena, key, value, random.u32());
        if (ref > 0) {
          reference.set(name, value);
          if (size > 512 * 1024) chunkedStored++;
        }
        // a failed set leaves the old item, as memcached's (it is not unlinked before allocating)
      } else if (roll < 60) {
        const ref = arena.find(key, 0, key.length);
        assert.equal(ref !== 0, reference.has(name), `delete ${name} at op ${op} (seed ${seed})`);
        if (ref !== 0) arena.free(ref);
        reference.delete(name);
      } else {
        const got = get(arena, key);
        const expected = reference.get(name) ?? null;
        assert.deepEqual(got, expected, `get ${name} at op ${op} (seed ${seed})`);
        if (got !== null) arena.bump(arena.find(key, 0, key.length));
      }
      if (op % 10_000 === 9_999) {
        assert.equal(arena.currItems, reference.size);
        let walked = 0;
        for (let ref = arena.nextItem(0); ref !== 0; ref = arena.nextItem(ref)) {
          const key2 = Buffer.alloc(arena.keyLength(ref));
          arena.copyKeyTo(ref, key2, 0);
          assert.ok(reference.has(key2.toString('latin1')));
          walked++;
        }
        assert.equal(walked, reference.size);
      }
    }
    assert.ok(arena.totalEvictions > 1000, `the run evicted (${arena.totalEvictions})`);
    assert.ok(chunkedStored > 10, `chunked items stored (${chunkedStored})`);
    assert.ok(arena.pages.pageCount <= 3 + arena.classes.largest, 'pages within -m (plus one first page per class)');
  });
});

describe('page accounting (memcached mem_malloced)', () => {
  it('charges a whole page with slab_reassign, and only its chunks without it and with whole-page chunks', () => {
    const modern = new SlabArena({ memoryLimit: 64 * MiB });
    const old = new SlabArena({ memoryLimit: 64 * MiB, slabReassign: false, slabChunkMax: MiB });
    for (const arena of [modern, old]) assert.ok(arenaSet(arena, keyOf(1), valueOf(1, 100)) > 0);
    assert.equal(modern.totalMalloced, MiB);
    const id = old.classId(old.find(keyOf(1), 0, 10));
    const slabs = old.slabStats(id);
    assert.equal(old.totalMalloced, slabs.chunk_size * slabs.chunks_per_page);
    assert.ok(old.totalMalloced < MiB);
  });

  it('a class takes its first page past -m, never a second (64bit.t with a faked start)', () => {
    const arena = new SlabArena({ memoryLimit: 4 * MiB, initialMalloced: 4 * MiB - 32, evictions: false });
    assert.equal(arena.totalMalloced, 4 * MiB - 32);
    const big = valueOf(0, 400 * 1024);
    const results: number[] = [];
    for (let i = 0; i < 5; i++) results.push(arenaSet(arena, keyOf(i), big));
    assert.ok(results.includes(NO_MEMORY), 'the class is held to its first page');
    assert.equal(arena.totalMalloced, 5 * MiB - 32);
    // Another class still gets its first page.
    assert.ok(arenaSet(arena, keyOf(100), valueOf(100, 100)) > 0);
    assert.equal(arena.totalMalloced, 6 * MiB - 32);
  });

  it('-L preallocates a page per class', () => {
    const arena = new SlabArena({ memoryLimit: 64 * MiB, preallocate: true });
    for (let id = 1; id <= arena.classes.largest; id++) assert.equal(arena.slabStats(id).total_pages, 1);
    assert.equal(arena.totalMalloced, arena.classes.largest * MiB);
  });

  it('a lowered -m gives back pages with no item in use, down to it; the pages kept still serve', () => {
    const arena = new SlabArena({ memoryLimit: 16 * MiB, evictions: false });
    const value = valueOf(7, 66560);
    const refs: number[] = [];
    for (let i = 0; ; i++) {
      const ref = arenaSet(arena, keyOf(i), value);
      if (ref <= 0) break;
      refs.push(ref);
    }
    const id = arena.classId(refs[0]!);
    assert.equal(arena.slabStats(id).total_pages, 16);
    // Keep every 40th item: a few pages keep one item each, the rest empty out.
    for (let i = 0; i < refs.length; i++) if (i % 40 !== 0) arena.free(refs[i]!);
    arena.setMemoryLimit(8 * MiB);
    assert.equal(arena.pages.releaseFreePages(), 8 * MiB);
    assert.equal(arena.totalMalloced, 8 * MiB);
    assert.equal(arena.slabStats(id).total_pages, 8);
    for (let i = 0; i < refs.length; i += 40) assert.deepEqual(get(arena, keyOf(i)), value, `key ${i} kept`);
    // Every free chunk of the kept pages is handed out once, and no page past -m comes.
    const again = new Set<number>();
    for (let i = 0; ; i++) {
      const ref = arenaSet(arena, keyOf(1_000_000 + i), value);
      if (ref <= 0) break;
      assert.ok(!again.has(ref));
      again.add(ref);
    }
    assert.equal(arena.slabStats(id).total_pages, 8);
    assert.equal(arena.slabStats(id).free_chunks, 0);
    for (let i = 0; i < refs.length; i += 40) assert.deepEqual(get(arena, keyOf(i)), value, `key ${i} still there`);
    for (const ref of again) assert.equal(arena.valueLength(ref), value.length);
  });
});
