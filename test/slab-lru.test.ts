/**
 * memcached's segmented LRU on the slab arena (src/store/slabs/lru.ts, the
 * arena's bump/update/pullTail/juggle and maintainer.ts), driven directly:
 * new items in HOT (TEMP for short TTLs), hits that mark instead of relinking,
 * the juggle's HOT/WARM -> COLD sizing, active items rescued from COLD,
 * eviction from the COLD tail (expired first), and a seeded run against a Map
 * with the segments' counts and bytes checked; then the `lru` command, the
 * -o options and the `stats` fields over a socket.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SlabArena, type EvictionListener } from '../src/store/slabs/arena.js';
import { ITEM_ACTIVE, ITEM_FETCHED, memcachedItemTotal } from '../src/store/slabs/layout.js';
import { COLD_LRU, HOT_LRU, TEMP_LRU, WARM_LRU } from '../src/store/slabs/lru.js';
import { DEFAULTS, type LruConfig } from '../src/config/config.js';
import { LruMaintainer } from '../src/store/slabs/maintainer.js';
import { connectClient, statLines, type RawClient } from './helpers/client.js';
import { runMnemo, startMnemo, type RunningServer } from './helpers/mnemo.js';
import { Random } from './helpers/random.js';
import { arenaSet } from './helpers/arena.js';

const MiB = 1024 * 1024;
/** The 192-byte class's chunks in a 1 MiB page (10-byte keys, 100-byte values). */
const PER_PAGE = 5461;

function keyOf(i: number): Buffer {
  return Buffer.from(`k${String(i).padStart(9, '0')}`);
}

function segmented(changes: Partial<LruConfig> = {}): LruConfig {
  return { ...DEFAULTS.lru, ...changes };
}

function set(arena: SlabArena, key: Buffer, value: Buffer, exptime = 0): number {
  return arenaSet(arena, key, value, 0, exptime);
}

function find(arena: SlabArena, i: number): number {
  return arena.find(keyOf(i), 0, 10);
}

/** The keys of one LRU, head (newest) first. */
function listOf(arena: SlabArena, lruId: number): number[] {
  const keys: number[] = [];
  for (let ref = arena.lruHead(lruId); ref !== 0; ref = arena.older(ref)) {
    const key = Buffer.alloc(arena.keyLength(ref));
    arena.copyKeyTo(ref, key, 0);
    keys.push(Number(key.toString().slice(1)));
  }
  return keys;
}

/** Every segment's count and bytes agree with its list, and the segments hold every linked item once. */
function checkSegments(arena: SlabArena): void {
  let linked = 0;
  for (let id = 1; id <= arena.classes.largest; id++) {
    for (const segment of [HOT_LRU, WARM_LRU, COLD_LRU, TEMP_LRU]) {
      const lruId = id | segment;
      let count = 0;
      let bytes = 0;
      let newer = 0;
      for (let ref = arena.lruHead(lruId); ref !== 0; ref = arena.older(ref)) {
        assert.equal(arena.lruId(ref), lruId, 'an item is in the list its header names');
        assert.equal(arena.newer(ref), newer, 'the back links agree');
        bytes += memcachedItemTotal(arena.keyLength(ref), arena.valueLength(ref), arena.clientFlags(ref), arena.useCas);
        newer = ref;
        count++;
      }
      assert.equal(arena.lruTail(lruId), newer);
      assert.equal(arena.lru.count[lruId], count, `count of LRU ${lruId}`);
      assert.equal(arena.lru.bytes[lruId], bytes, `bytes of LRU ${lruId}`);
      linked += count;
    }
  }
  assert.equal(linked, arena.currItems);
}

describe('segmented LRU: where items go', () => {
  it('new items go to HOT; a short TTL to TEMP under temp_lru; everything to COLD when flat', () => {
    const settings = segmented({ tempLru: true, temporaryTtl: 61 });
    const arena = new SlabArena({ memoryLimit: 4 * MiB, lru: settings });
    arena.now = 1000;
    const value = Buffer.alloc(100);
    const id = arena.classId(set(arena, keyOf(0), value));
    set(arena, keyOf(1), value, 1000 + 61);
    set(arena, keyOf(2), value, 1000 + 62);
    assert.deepEqual(listOf(arena, id | HOT_LRU), [2, 0]);
    assert.deepEqual(listOf(arena, id | TEMP_LRU), [1]);
    settings.segmented = false;
    set(arena, keyOf(3), value);
    assert.deepEqual(listOf(arena, id | COLD_LRU), [3]);
    const stats = arena.itemStats(id);
    assert.deepEqual([stats.number, stats.number_hot, stats.number_warm, stats.number_cold, stats.number_temp], [4, 2, 0, 1, 1]);
    checkSegments(arena);
  });

  it('a hit does not relink: the first marks fetched, the second active and stamps the time; hits are counted per segment', () => {
    const arena = new SlabArena({ memoryLimit: 4 * MiB, lru: segmented() });
    const value = Buffer.alloc(100);
    for (let i = 0; i < 3; i++) set(arena, keyOf(i), value);
    const id = arena.classId(find(arena, 0));
    const ref = find(arena, 0);
    arena.now = 30;
    arena.bump(ref);
    assert.ok(arena.hasFlag(ref, ITEM_FETCHED));
    assert.equal(arena.hasFlag(ref, ITEM_ACTIVE), false);
    assert.equal(arena.time(ref), 0, 'the first hit leaves the time');
    arena.bump(ref);
    assert.ok(arena.hasFlag(ref, ITEM_ACTIVE));
    assert.equal(arena.time(ref), 30);
    assert.deepEqual(listOf(arena, id | HOT_LRU), [2, 1, 0], 'still at the tail of HOT');
    assert.equal(arena.itemStats(id).hits_to_hot, 2);
    assert.equal(arena.bumpLength, 0, 'nothing queued for a HOT item');
  });
});

describe('segmented LRU: the juggle', () => {
  it('moves HOT past hot_lru_pct of the class to COLD, oldest first; an active HOT item goes to WARM', () => {
    const arena = new SlabArena({ memoryLimit: 4 * MiB, lru: segmented() });
    const value = Buffer.alloc(100);
    for (let i = 0; i < 100; i++) set(arena, keyOf(i), value);
    const id = arena.classId(find(arena, 0));
    // Item 0 (HOT's tail) hit twice: active.
    arena.bump(find(arena, 0));
    arena.bump(find(arena, 0));
    assert.ok(arena.juggle(id) > 0);
    checkSegments(arena);
    const stats = arena.itemStats(id);
    // HOT keeps at most 20% of the class's bytes: 20 of 100 equal items.
    assert.equal(stats.number_hot, 20);
    assert.deepEqual(listOf(arena, id | HOT_LRU), Array.from({ length: 20 }, (_, i) => 99 - i), 'the newest stay in HOT');
    assert.deepEqual(listOf(arena, id | WARM_LRU), [0], 'the active item was rescued to WARM');
    assert.equal(stats.moves_to_warm, 1);
    assert.equal(stats.moves_to_cold, 79);
    assert.deepEqual(listOf(arena, id | COLD_LRU).slice(0, 3), [79, 78, 77]);
    assert.equal(arena.hasFlag(find(arena, 0), ITEM_ACTIVE), false, 'the move clears the mark');
    assert.equal(arena.juggle(id), 0, 'then nothing is left to move');
  });

  it('moves HOT items idle longer than hot_max_factor x the COLD tail age to COLD, and WARM by warm_max_factor', () => {
    const arena = new SlabArena({ memoryLimit: 4 * MiB, lru: segmented({ hotLruPct: 79, warmLruPct: 1 }) });
    const value = Buffer.alloc(100);
    for (let i = 0; i < 10; i++) set(arena, keyOf(i), value);
    const id = arena.classId(find(arena, 0));
    arena.pullTail(id, HOT_LRU, 0, 0, 0); // item 0 down to COLD (a zero limit)
    assert.deepEqual(listOf(arena, id | COLD_LRU), [0]);
    arena.now = 100; // COLD's tail is 100 s old: HOT keeps items idle up to 20 s
    arena.juggle(id);
    assert.equal(arena.itemStats(id).number_hot, 0, 'all of HOT idle past 20 s');
    set(arena, keyOf(10), value);
    arena.now = 110;
    arena.juggle(id);
    assert.deepEqual(listOf(arena, id | HOT_LRU), [10], 'idle 10 s of 22 allowed (0.2 x 110): stays');
    checkSegments(arena);
  });

  it('WARM: an active item at its tail goes back to its head (moves_within_lru)', () => {
    const arena = new SlabArena({ memoryLimit: 4 * MiB, lru: segmented() });
    const value = Buffer.alloc(100);
    // 100 items, so that 3 in WARM are within warm_lru_pct of the class.
    for (let i = 0; i < 100; i++) set(arena, keyOf(i), value);
    const id = arena.classId(find(arena, 0));
    for (let i = 0; i < 3; i++) {
      arena.bump(find(arena, i));
      arena.bump(find(arena, i));
    }
    arena.juggle(id);
    assert.deepEqual(listOf(arena, id | WARM_LRU), [2, 1, 0]);
    assert.equal(arena.hasFlag(find(arena, 0), ITEM_ACTIVE), false, 'the move cleared the mark');
    arena.bump(find(arena, 0));
    assert.ok(arena.hasFlag(find(arena, 0), ITEM_ACTIVE), 'fetched already: one more hit marks it active');
    arena.pullTail(id, WARM_LRU, 1e9, 0, 1e9);
    assert.deepEqual(listOf(arena, id | WARM_LRU), [0, 2, 1]);
    assert.equal(arena.itemStats(id).moves_within_lru, 1);
  });
});

describe('segmented LRU: rescue from COLD and eviction', () => {
  /** A full 1-page class: items 0..PER_PAGE-1, juggled so that COLD holds all but the newest 20%. */
  function fullClass(settings = segmented()): { arena: SlabArena; id: number; evicted: number[] } {
    const arena = new SlabArena({ memoryLimit: MiB, lru: settings });
    const evicted: number[] = [];
    const listener: EvictionListener = {
      evicting(a, ref) {
        const key = Buffer.alloc(a.keyLength(ref));
        a.copyKeyTo(ref, key, 0);
        evicted.push(Number(key.toString().slice(1)));
      },
    };
    arena.evictionListener = listener;
    const value = Buffer.alloc(100);
    for (let i = 0; i < PER_PAGE; i++) assert.ok(set(arena, keyOf(i), value) > 0);
    const id = arena.classId(find(arena, 0));
    while (arena.juggle(id) > 0);
    assert.equal(arena.itemStats(id).number_hot, Math.floor(PER_PAGE * 0.2));
    return { arena, id, evicted };
  }

  it('an active COLD item is queued by the hit and moved to WARM by the maintainer; eviction passes it by', () => {
    const { arena, id, evicted } = fullClass();
    assert.equal(arena.lruTail(id | COLD_LRU), find(arena, 0));
    arena.bump(find(arena, 0));
    arena.bump(find(arena, 0));
    assert.equal(arena.bumpLength, 1, 'queued, not moved by the hit');
    assert.equal(arena.lruId(find(arena, 0)), id | COLD_LRU);
    assert.equal(arena.itemStats(id).hits_to_cold, 2);
    const maintainer = new LruMaintainer(arena);
    maintainer.run(1000);
    assert.equal(maintainer.juggles, 1);
    assert.equal(arena.bumpLength, 0);
    assert.equal(arena.lruId(find(arena, 0)), id | WARM_LRU, 'rescued to WARM');
    assert.ok(arena.itemStats(id).moves_to_warm >= 1);
    // The class is full: new items evict from COLD's tail, and item 0 is no longer there.
    const value = Buffer.alloc(100);
    for (let i = 0; i < 10; i++) assert.ok(set(arena, keyOf(PER_PAGE + i), value) > 0);
    assert.deepEqual(evicted, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.notEqual(find(arena, 0), 0, 'the rescued item survives');
    const stats = arena.itemStats(id);
    assert.equal(stats.evicted, 10);
    assert.equal(stats.direct_reclaims, 10, 'each allocation pulled once from the tail');
    checkSegments(arena);
  });

  it('a juggle rescues an active item found at the COLD tail before its queued bump comes due', () => {
    const { arena, id } = fullClass();
    arena.bump(find(arena, 0));
    arena.bump(find(arena, 0));
    const before = arena.itemStats(id).moves_to_warm;
    arena.juggle(id);
    assert.equal(arena.lruId(find(arena, 0)), id | WARM_LRU);
    assert.equal(arena.itemStats(id).moves_to_warm, before + 1, 'counted as memcached counts it (the lru-maintainer.t canary)');
    arena.processBumps(10);
    assert.equal(arena.lruId(find(arena, 0)), id | WARM_LRU, 'the queued bump then only stamps it');
    checkSegments(arena);
  });

  it('allocation reclaims expired items at the COLD tail before evicting, and never evicts TEMP', () => {
    const settings = segmented({ tempLru: true, temporaryTtl: 61 });
    const arena = new SlabArena({ memoryLimit: MiB, lru: settings });
    arena.now = 1000;
    const value = Buffer.alloc(100);
    set(arena, keyOf(0), value, 1030); // TEMP
    for (let i = 1; i < PER_PAGE; i++) set(arena, keyOf(i), value, i <= 3 ? 1100 : 0);
    const id = arena.classId(find(arena, 0));
    arena.juggle(id);
    arena.now = 1100; // items 1-3 (COLD's tail) are dead
    for (let i = 0; i < 4; i++) assert.ok(set(arena, keyOf(PER_PAGE + i), value) > 0);
    const stats = arena.itemStats(id);
    assert.equal(stats.reclaimed, 3);
    assert.equal(stats.evicted, 1, 'then the oldest live COLD item');
    assert.equal(find(arena, 4), 0);
    assert.notEqual(find(arena, 0), 0, 'TEMP is not evicted');
    assert.equal(stats.number_temp, 1);
    checkSegments(arena);
  });

  it('with COLD empty, allocation pushes the HOT tail down to COLD and evicts it there', () => {
    const arena = new SlabArena({ memoryLimit: MiB, lru: segmented() });
    const value = Buffer.alloc(100);
    for (let i = 0; i < PER_PAGE; i++) set(arena, keyOf(i), value);
    const id = arena.classId(find(arena, 0));
    assert.equal(arena.itemStats(id).number_cold, 0);
    assert.ok(set(arena, keyOf(PER_PAGE), value) > 0);
    const stats = arena.itemStats(id);
    assert.equal(find(arena, 0), 0);
    assert.equal(stats.evicted, 1);
    assert.equal(stats.moves_to_cold, 1);
    assert.equal(stats.direct_reclaims, 2, 'an empty COLD, then the moved item');
  });

  it('-M: a full class answers no memory and keeps its items (HOT drains to COLD, nothing is evicted)', () => {
    const arena = new SlabArena({ memoryLimit: MiB, lru: segmented(), evictions: false });
    const value = Buffer.alloc(100);
    for (let i = 0; i < PER_PAGE; i++) set(arena, keyOf(i), value);
    assert.equal(set(arena, keyOf(PER_PAGE), value), 0);
    assert.equal(arena.currItems, PER_PAGE);
    checkSegments(arena);
  });

  it('a pinned item at the COLD tail is passed by and counted as lrutail_reflocked', () => {
    const { arena, id, evicted } = fullClass();
    const pinned = find(arena, 0);
    arena.pin(pinned);
    assert.ok(set(arena, keyOf(PER_PAGE), Buffer.alloc(100)) > 0);
    assert.deepEqual(evicted, [1]);
    assert.equal(arena.itemStats(id).lrutail_reflocked, 1);
    arena.unpin(pinned);
  });

  it('lru mode flat: the juggle drains HOT and WARM into COLD', () => {
    const settings = segmented();
    const { arena, id } = fullClass(settings);
    arena.bump(find(arena, 5));
    arena.bump(find(arena, 5));
    arena.processBumps(10);
    assert.equal(arena.itemStats(id).number_warm, 1);
    settings.segmented = false;
    while (arena.juggle(id) > 0);
    const stats = arena.itemStats(id);
    assert.deepEqual([stats.number_hot, stats.number_warm, stats.number_cold], [0, 0, PER_PAGE]);
    checkSegments(arena);
  });

  it('a full bump queue drops the hit (lru_bumps_dropped) and leaves the item unmarked', () => {
    const arena = new SlabArena({ memoryLimit: 3 * MiB, lru: segmented() });
    const value = Buffer.alloc(100);
    for (let i = 0; i < 3 * PER_PAGE; i++) assert.ok(set(arena, keyOf(i), value) > 0);
    const id = arena.classId(find(arena, 0));
    while (arena.juggle(id) > 0);
    const cold = listOf(arena, id | COLD_LRU).reverse();
    assert.ok(cold.length > 8192 + 100, `COLD holds more than the queue (${cold.length})`);
    for (const i of cold) {
      arena.bump(find(arena, i));
      arena.bump(find(arena, i));
    }
    assert.equal(arena.bumpLength, 8192);
    assert.equal(arena.bumpsDropped, cold.length - 8192);
    assert.ok(arena.hasFlag(find(arena, cold[8191]!), ITEM_ACTIVE));
    assert.equal(arena.hasFlag(find(arena, cold[8192]!), ITEM_ACTIVE), false, 'a dropped hit leaves it unmarked');
    assert.equal(arena.processBumps(1e9), 8192);
    assert.equal(arena.itemStats(id).number_warm, 8192);
    checkSegments(arena);
  });
});

describe('the LRU maintainer', () => {
  it('does a bounded amount of work per run and is due again at once while work remains', () => {
    const arena = new SlabArena({ memoryLimit: 3 * MiB, lru: segmented() });
    const value = Buffer.alloc(100);
    for (let i = 0; i < 3 * PER_PAGE; i++) set(arena, keyOf(i), value);
    const id = arena.classId(find(arena, 0));
    const maintainer = new LruMaintainer(arena);
    let sleep = maintainer.run(1000);
    assert.ok(arena.itemStats(id).moves_to_cold <= 2000, `one run moved ${arena.itemStats(id).moves_to_cold}`);
    assert.ok(sleep <= 1000, `due again within a millisecond (${sleep} us)`);
    let runs = 1;
    while (arena.itemStats(id).number_hot > Math.floor(3 * PER_PAGE * 0.2) && runs < 100) {
      sleep = maintainer.run(Math.max(sleep, 1000));
      runs++;
    }
    assert.equal(arena.itemStats(id).number_hot, Math.floor(3 * PER_PAGE * 0.2), `HOT sized within ${runs} runs`);
    assert.equal(maintainer.juggles, runs);
    checkSegments(arena);
  });

  it('backs off while there is nothing to move, up to a second between runs, as memcached', () => {
    const arena = new SlabArena({ memoryLimit: MiB, lru: segmented() });
    const maintainer = new LruMaintainer(arena);
    const sleeps: number[] = [];
    let sleep = 1000;
    for (let i = 0; i < 80; i++) {
      sleep = maintainer.run(sleep);
      sleeps.push(sleep);
    }
    assert.equal(sleeps[0], 1000);
    for (let i = 1; i < sleeps.length; i++) assert.ok(sleeps[i]! >= sleeps[i - 1]!, 'never shorter while idle');
    assert.equal(sleeps.at(-1), 1_000_000);
  });
});

describe('segmented LRU: a seeded run against a Map', () => {
  for (const seed of [7, 11]) {
    it(`keeps every value right, evicts only what it reports, and keeps the segments consistent (seed ${seed})`, () => {
      const random = new Random(seed);
      // A few classes of one page each (a class's first page comes past -m): they fill and evict.
      const arena = new SlabArena({ memoryLimit: MiB, lru: segmented({ tempLru: true, temporaryTtl: 30 }) });
      const maintainer = new LruMaintainer(arena);
      const reference = new Map<string, Buffer>();
      arena.evictionListener = {
        evicting(a, ref) {
          const key = Buffer.alloc(a.keyLength(ref));
          a.copyKeyTo(ref, key, 0);
          assert.ok(reference.delete(key.toString('latin1')), 'evicted an item the reference has');
        },
      };
      arena.now = 1000;
      for (let op = 0; op < 40_000; op++) {
        const key = Buffer.from(`key:${random.int(20_000)}`, 'latin1');
        const name = key.toString('latin1');
        const roll = random.int(100);
        if (roll < 40) {
          const value = random.bytes(random.chance(0.7) ? random.range(400, 450) : random.range(0, 40));
          // A few short TTLs (TEMP), long enough to outlive the run's clock.
          if (set(arena, key, value, random.chance(0.1) ? arena.now + 20 + random.int(10) : 0) > 0) reference.set(name, value);
        } else if (roll < 45) {
          const ref = arena.find(key, 0, key.length);
          assert.equal(ref !== 0, reference.has(name));
          if (ref !== 0) arena.free(ref);
          reference.delete(name);
        } else {
          const ref = arena.find(key, 0, key.length);
          assert.equal(ref !== 0, reference.has(name), `get ${name} at op ${op}`);
          if (ref !== 0) {
            const out = Buffer.alloc(arena.valueLength(ref));
            arena.copyValueTo(ref, out, 0);
            assert.deepEqual(out, reference.get(name));
            arena.bump(ref);
          }
        }
        if (op % 500 === 499) maintainer.run(1000);
        if (op % 5000 === 4999) {
          arena.now++;
          checkSegments(arena);
          assert.equal(arena.currItems, reference.size);
        }
      }
      arena.processBumps(1e9);
      checkSegments(arena);
      let moves = 0;
      for (let id = 1; id <= arena.classes.largest; id++) moves += arena.itemStats(id).moves_to_cold + arena.itemStats(id).moves_to_warm;
      assert.ok(arena.totalEvictions > 100, `the run evicted (${arena.totalEvictions})`);
      assert.ok(moves > 100, `the maintainer moved items (${moves})`);
    });
  }
});

describe('the lru command, -o options and stats over a socket', () => {
  let server: RunningServer;
  let client: RawClient;

  before(async () => {
    server = await startMnemo(['-m', '8']);
    client = await connectClient(server.port);
  });

  after(async () => {
    client.close();
    await server.stop();
  });

  it('stats settings show memcached defaults; lru tune, mode and temp_ttl change them', async () => {
    let settings = await statLines(client, 'settings');
    assert.deepEqual(
      ['lru_maintainer_thread', 'lru_segmented', 'hot_lru_pct', 'warm_lru_pct', 'hot_max_factor', 'warm_max_factor', 'temp_lru', 'temporary_ttl'].map((name) => settings.get(name)),
      ['yes', 'yes', '20', '40', '0.20', '2.00', 'no', '61'],
    );
    assert.equal(await client.request('lru tune 10 30 0.1 2.5\r\n'), 'OK\r\n');
    assert.equal(await client.request('lru tune 50 40 0.1 2\r\n'), 'ERROR hot and warm pcts must not exceed 80\r\n');
    assert.equal(await client.request('lru tune 10 30 0 2\r\n'), 'ERROR hot/warm age factors must be greater than 0\r\n');
    assert.equal(await client.request('lru tune 10 x 0.1 2\r\n'), 'ERROR\r\n');
    assert.equal(await client.request('lru mode flat\r\n'), 'OK\r\n');
    assert.equal(await client.request('lru mode sideways\r\n'), 'ERROR\r\n');
    assert.equal(await client.request('lru temp_ttl 100\r\n'), 'OK\r\n');
    assert.equal(await client.request('lru bogus\r\n'), 'ERROR\r\n');
    settings = await statLines(client, 'settings');
    assert.deepEqual(
      ['lru_segmented', 'hot_lru_pct', 'warm_lru_pct', 'hot_max_factor', 'warm_max_factor', 'temp_lru', 'temporary_ttl'].map((name) => settings.get(name)),
      ['no', '10', '30', '0.10', '2.50', 'yes', '100'],
    );
    assert.equal(await client.request('lru temp_ttl -1\r\n'), 'OK\r\n');
    assert.equal((await statLines(client, 'settings')).get('temp_lru'), 'no');
    const version = await client.request('lru mode segmented noreply\r\nlru tune 20 40 0.2 2 noreply\r\nversion\r\n');
    assert.match(version, /^VERSION /, 'noreply: nothing before the version line');
    assert.equal((await statLines(client, 'settings')).get('lru_segmented'), 'yes');
  });

  it('stats items reports the segments, hits per segment and moves', async () => {
    assert.equal(await client.request('lru temp_ttl 100\r\n'), 'OK\r\n');
    const value = 'v'.repeat(100);
    for (let i = 0; i < 50; i++) assert.equal(await client.request(`set seg${i} 0 0 100\r\n${value}\r\n`), 'STORED\r\n');
    assert.equal(await client.request(`set temp 0 50 100\r\n${value}\r\n`), 'STORED\r\n');
    await client.request('get seg49\r\n', 'END\r\n');
    await client.request('get seg49\r\n', 'END\r\n');
    // Touches are touch_hits in memcached, not hits on the LRU.
    assert.equal(await client.request('touch seg49 0\r\n'), 'TOUCHED\r\n');
    await client.request('gat 0 seg49\r\n', 'END\r\n');
    const general = await statLines(client);
    assert.ok(Number(general.get('lru_maintainer_juggles')) > 0, 'the maintainer has run');
    for (const name of ['evicted_active', 'lrutail_reflocked', 'moves_to_cold', 'moves_to_warm', 'moves_within_lru', 'direct_reclaims', 'lru_bumps_dropped']) {
      assert.ok(general.has(name), `stats has ${name}`);
    }
    let items = await statLines(client, 'items');
    const id = [...items.keys()].find((name) => /^items:\d+:number_temp$/.test(name))!.split(':')[1];
    const field = (name: string): number => Number(items.get(`items:${id}:${name}`));
    assert.equal(field('number'), 51);
    assert.equal(field('number_temp'), 1);
    assert.equal(field('number_hot') + field('number_warm') + field('number_cold'), 50);
    assert.equal(field('hits_to_hot') + field('hits_to_warm') + field('hits_to_cold'), 2);
    assert.equal(field('hits_to_temp'), 0);
    for (const name of ['age_hot', 'age_warm', 'age', 'evicted_active', 'lrutail_reflocked', 'moves_to_cold', 'moves_to_warm', 'moves_within_lru', 'direct_reclaims']) {
      assert.ok(items.has(`items:${id}:${name}`), `stats items has ${name}`);
    }
    // The maintainer sizes HOT to 20% of the class within a few runs (it runs every millisecond while it moves items).
    for (let wait = 0; wait < 100 && field('moves_to_cold') === 0; wait++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      items = await statLines(client, 'items');
    }
    assert.ok(field('moves_to_cold') > 0, 'HOT juggled down to COLD');
    assert.ok(field('number_hot') <= 11, `HOT holds about 20% (${field('number_hot')} of 50)`);
    assert.equal(await client.request('stats reset\r\n'), 'RESET\r\n');
    items = await statLines(client, 'items');
    assert.equal(field('moves_to_cold'), 0, 'stats reset zeroes the per-class counters');
    assert.equal(field('number'), 51);
  });

  it('evicts as memcached 1.6.18 does: the same items survive with and without -o no_modern, TEMP items are kept (lru-maintainer.t)', async () => {
    // Figures from memcached 1.6.18 with the same commands: -m 8 keeps items 13-19 (13 evictions, values chunked
    // over half-page chunks), -m 8 -o no_modern keeps 12-19 (12 evictions, whole-page chunks).
    const big = 'x'.repeat(1024 * 1024 - 250);
    for (const [args, survivors] of [[['-m', '8'], 13], [['-m', '8', '-o', 'no_modern'], 12]] as const) {
      const other = await startMnemo([...args]);
      try {
        const c = await connectClient(other.port);
        for (let i = 0; i < 20; i++) assert.equal(await c.request(`set item_${i} 0 0 ${big.length}\r\n${big}\r\n`), 'STORED\r\n');
        assert.equal((await statLines(c)).get('evictions'), String(survivors), args.join(' '));
        for (let i = 0; i < 20; i++) {
          assert.equal(await c.request(`mg item_${i}\r\n`), i >= survivors ? 'HD\r\n' : 'EN\r\n', `item_${i} with ${args.join(' ')}`);
        }
        c.close();
      } finally {
        await other.stop();
      }
    }
    // lru-maintainer.t's TEMP_LRU case: an unfetched item with a TTL under temporary_ttl outlives 100 sets that evict.
    const temp = await startMnemo(['-m', '2', '-o', 'lru_maintainer,lru_crawler,temporary_ttl=61']);
    try {
      const c = await connectClient(temp.port);
      assert.equal((await statLines(c, 'settings')).get('temp_lru'), 'yes');
      const value = 'B'.repeat(66560);
      assert.equal(await c.request(`set canary 0 30 66560\r\n${value}\r\n`), 'STORED\r\n');
      let items = await statLines(c, 'items');
      const id = [...items.keys()].find((name) => name.endsWith(':number_temp'))!.split(':')[1];
      assert.equal(items.get(`items:${id}:number_hot`), '0');
      for (let i = 0; i < 100; i++) assert.equal(await c.request(`set key${i} 0 3600 66560\r\n${value}\r\n`), 'STORED\r\n');
      items = await statLines(c, 'items');
      assert.notEqual(items.get(`items:${id}:evicted`), '0');
      assert.equal(items.get(`items:${id}:number_temp`), '1');
      assert.match(await c.request('get canary\r\n', 'END\r\n'), /^VALUE canary 0 66560\r\n/);
      // issue_22.t: stats reset zeroes the per-class evictions.
      assert.equal(await c.request('stats reset\r\n'), 'RESET\r\n');
      assert.equal((await statLines(c, 'items')).get(`items:${id}:evicted`), '0');
      c.close();
    } finally {
      await temp.stop();
    }
  });

  it('-o no_lru_maintainer: flat, no segment fields, `lru mode` refused; -o checks as memcached', async () => {
    const flat = await startMnemo(['-o', 'no_lru_maintainer']);
    try {
      const c = await connectClient(flat.port);
      const settings = await statLines(c, 'settings');
      assert.equal(settings.get('lru_maintainer_thread'), 'no');
      assert.equal(settings.get('lru_segmented'), 'no');
      assert.equal(await c.request('lru mode segmented\r\n'), 'ERROR\r\n');
      assert.equal(await c.request('lru tune 10 30 0.1 2\r\n'), 'OK\r\n');
      assert.equal(await c.request('set a 0 0 1\r\nx\r\n'), 'STORED\r\n');
      const items = await statLines(c, 'items');
      assert.equal(items.has('items:1:number_hot'), false);
      assert.ok(items.has('items:1:number'));
      assert.equal((await statLines(c)).has('lru_maintainer_juggles'), false);
      c.close();
    } finally {
      await flat.stop();
    }
    for (const [option, message] of [
      ['hot_lru_pct=80', 'hot_lru_pct must be > 1 and < 80'],
      ['warm_lru_pct=0', 'warm_lru_pct must be > 1 and < 80'],
      ['hot_max_factor=0', 'hot_max_factor must be > 0'],
      ['hot_lru_pct=50,warm_lru_pct=40', 'hot_lru_pct + warm_lru_pct cannot be more than 80% combined'],
      ['temporary_ttl=10,no_lru_maintainer', 'temporary_ttl requires lru_maintainer to be enabled'],
    ]) {
      const result = await runMnemo(['-o', option!]);
      assert.equal(result.code, 2, option);
      assert.match(result.stderr, new RegExp(message!.replace(/[+]/g, '\\+')), option);
      assert.equal(result.stderr.trim().split('\n').length, 1, `one line for ${option}`);
    }
  });
});
