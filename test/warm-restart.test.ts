/**
 * Warm restart with -e (memcached's memory file): a graceful stop saves the slab
 * memory and the next start with the same settings has the same cache — values,
 * flags, CAS, TTLs, chunked items — with the clock going on from the saved one.
 * A start with other settings, or over a torn or corrupt file, is clean and says
 * why in one line. The arena's state list is checked for completeness, and a
 * save taken while the hash table doubles loads into a working table.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SlabArena } from '../src/store/slabs/arena.js';
import { loadMemoryFile, saveMemoryFile, type MemoryFileLog } from '../src/store/slabs/memory-file.js';
import { REASSIGN_OK, SlabRebalancer } from '../src/store/slabs/rebalancer.js';
import type { StateEntry } from '../src/store/slabs/state.js';
import { connectClient, statLines, type RawClient } from './helpers/client.js';
import { runMnemo, startMnemo, type RunningServer } from './helpers/mnemo.js';

const root = mkdtempSync(join(tmpdir(), 'mnemo-warm-'));
after(() => rmSync(root, { recursive: true, force: true }));
let files = 0;
/** A fresh memory file path (nothing there yet). */
function memoryFile(): string {
  return join(root, `memory${files++}`);
}

/** Stops a server with a signal and waits for it to exit; its exit code. */
async function stopWith(server: RunningServer, signal: NodeJS.Signals): Promise<number | null> {
  const exited = once(server.process, 'exit') as Promise<[number | null]>;
  server.process.kill(signal);
  const [code] = await exited;
  return code;
}

async function withClient<T>(server: RunningServer, use: (client: RawClient) => Promise<T>): Promise<T> {
  const client = await connectClient(server.port);
  try {
    return await use(client);
  } finally {
    client.close();
  }
}

/** `mg <key> v f t c`: value, flags, TTL left and CAS, or null on a miss. */
async function metaGet(client: RawClient, key: string): Promise<{ value: string; flags: number; ttl: number; cas: number } | null> {
  client.send(`mg ${key} v f t c\r\n`);
  const complete = (got: Buffer): boolean => {
    const text = got.toString('latin1');
    if (text.startsWith('EN\r\n')) return true;
    const head = /^VA (\d+) .*?\r\n/.exec(text);
    return head !== null && text.length >= head[0].length + Number(head[1]) + 2;
  };
  const text = (await client.readUntil(complete)).toString('latin1');
  if (text.startsWith('EN')) return null;
  const head = /^VA (\d+) (.*?)\r\n/.exec(text)!;
  const flags = new Map(head[2]!.split(' ').map((f) => [f[0]!, f.slice(1)]));
  return {
    value: text.slice(head[0].length, head[0].length + Number(head[1])),
    flags: Number(flags.get('f')),
    ttl: Number(flags.get('t')),
    cas: Number(flags.get('c')),
  };
}

/** Lines of the server's stderr that are about the memory file. */
function memoryFileLines(server: RunningServer): string[] {
  return server.stderr().split('\n').filter((line) => /memory file/.test(line));
}

const big = (n: number, seed: number): string => {
  let text = '';
  for (let i = 0; i < n; i++) text += String.fromCharCode(97 + ((i * 7 + seed) % 26));
  return text;
};

describe('warm restart with -e', () => {
  it('SIGUSR1 saves the cache; the next start has every item with its value, flags, CAS and TTL', async () => {
    const path = memoryFile();
    const args = ['-e', path, '-m', '64', '-I', '2m', '--test-clock'];
    const first = await startMnemo(args);
    const items: Array<{ key: string; value: string; flags: number; ttl: number }> = [
      { key: 'small', value: 'hello', flags: 0, ttl: 0 },
      { key: 'flagged', value: 'with flags', flags: 4294967295, ttl: 0 },
      { key: 'ttl', value: 'expires later', flags: 7, ttl: 5000 },
      { key: 'medium', value: big(40_000, 1), flags: 3, ttl: 0 },
      // past the largest chunk (512 KiB): a chunked item
      { key: 'chunked', value: big(1_200_000, 2), flags: 9, ttl: 9000 },
      { key: 'empty', value: '', flags: 1, ttl: 0 },
    ];
    const before = new Map<string, { value: string; flags: number; ttl: number; cas: number }>();
    await withClient(first, async (client) => {
      for (const item of items) {
        assert.equal(await client.request(`set ${item.key} ${item.flags} ${item.ttl} ${item.value.length}\r\n${item.value}\r\n`), 'STORED\r\n');
      }
      assert.equal(await client.request('set gone 0 0 1\r\nx\r\n'), 'STORED\r\n');
      assert.equal(await client.request('delete gone\r\n'), 'DELETED\r\n');
      for (const item of items) before.set(item.key, (await metaGet(client, item.key))!);
    });
    assert.equal(await stopWith(first, 'SIGUSR1'), 0);
    assert.ok(existsSync(path) && existsSync(`${path}.meta`), first.stderr());

    const second = await startMnemo(args);
    try {
      assert.equal(existsSync(`${path}.meta`), false, 'the metadata is removed once read');
      await withClient(second, async (client) => {
        let highestCas = 0;
        for (const item of items) {
          const now = await metaGet(client, item.key);
          const then = before.get(item.key)!;
          assert.ok(now, `${item.key} is back`);
          assert.equal(now.value, item.value, item.key);
          assert.equal(now.flags, item.flags, item.key);
          assert.equal(now.cas, then.cas, `${item.key} keeps its CAS`);
          if (item.ttl === 0) assert.equal(now.ttl, -1);
          // the seconds that passed while stopped count, as in memcached
          else assert.ok(now.ttl <= then.ttl && now.ttl >= then.ttl - 30, `${item.key}: ttl ${now.ttl}, was ${then.ttl}`);
          highestCas = Math.max(highestCas, now.cas);
        }
        assert.equal(await metaGet(client, 'gone'), null, 'a deleted item stays deleted');
        // the CAS counter went on: a new item's CAS is past every loaded one
        assert.equal(await client.request('set fresh 0 0 1\r\nz\r\n'), 'STORED\r\n');
        assert.ok((await metaGet(client, 'fresh'))!.cas > highestCas);
        const stats = await statLines(client);
        assert.equal(stats.get('curr_items'), String(items.length + 1));
        assert.equal((await statLines(client, 'settings')).get('memory_file'), path);
      });
      assert.equal(memoryFileLines(second).filter((l) => /memory file loaded: 6 items/.test(l)).length, 1, second.stderr());
    } finally {
      await second.stop();
    }
  });

  it('SIGTERM and "shutdown graceful" save too; SIGINT and "shutdown" do not', async () => {
    const path = memoryFile();
    const args = ['-e', path, '-A'];
    const setOne = async (server: RunningServer, key: string): Promise<void> => {
      await withClient(server, async (client) => assert.equal(await client.request(`set ${key} 0 0 2\r\nok\r\n`), 'STORED\r\n'));
    };
    const has = async (server: RunningServer, key: string): Promise<boolean> =>
      withClient(server, async (client) => (await client.request(`get ${key}\r\n`, 'END\r\n')).startsWith('VALUE'));

    let server = await startMnemo(args);
    await setOne(server, 'a');
    assert.equal(await stopWith(server, 'SIGTERM'), 0);
    server = await startMnemo(args);
    assert.equal(await has(server, 'a'), true, 'saved by SIGTERM');
    await setOne(server, 'b');
    await withClient(server, async (client) => client.send('shutdown graceful\r\n'));
    const [code] = (await once(server.process, 'exit')) as [number | null];
    assert.equal(code, 0);
    server = await startMnemo(args);
    assert.equal(await has(server, 'b'), true, 'saved by shutdown graceful');
    assert.equal(await stopWith(server, 'SIGINT'), 0);
    assert.equal(existsSync(`${path}.meta`), false, 'SIGINT saves nothing');
    server = await startMnemo(args);
    try {
      assert.equal(await has(server, 'a'), false, 'nothing loaded after SIGINT');
    } finally {
      await server.stop();
    }
  });

  it('a start with another -m is clean and says why in one line', async () => {
    const path = memoryFile();
    const first = await startMnemo(['-e', path, '-m', '64']);
    await withClient(first, async (client) => assert.equal(await client.request('set k 0 0 1\r\nv\r\n'), 'STORED\r\n'));
    await first.stop();
    const second = await startMnemo(['-e', path, '-m', '128']);
    try {
      await withClient(second, async (client) => assert.equal(await client.request('get k\r\n', 'END\r\n'), 'END\r\n'));
      const lines = memoryFileLines(second);
      assert.equal(lines.length, 1, second.stderr());
      assert.match(lines[0]!, /memory file not loaded: saved with maxbytes 67108864, this start has 134217728; starting with a clean cache/);
      assert.equal(existsSync(`${path}.meta`), false);
    } finally {
      await second.stop();
    }
  });

  it('a truncated or corrupted data file starts clean with one line naming why', async () => {
    for (const [damage, why] of [
      [(path: string) => truncateSync(path, statSync(path).size - 100), /torn or short/],
      [(path: string) => {
        const bytes = readFileSync(path);
        bytes[bytes.length >> 1] ^= 0xff;
        writeFileSync(path, bytes);
      }, /fails its CRC-32/],
    ] as const) {
      const path = memoryFile();
      const first = await startMnemo(['-e', path]);
      await withClient(first, async (client) => assert.equal(await client.request(`set k 0 0 3000\r\n${big(3000, 3)}\r\n`), 'STORED\r\n'));
      await first.stop();
      damage(path);
      const second = await startMnemo(['-e', path]);
      try {
        await withClient(second, async (client) => {
          assert.equal(await client.request('get k\r\n', 'END\r\n'), 'END\r\n');
          assert.equal((await statLines(client)).get('curr_items'), '0');
          // the clean cache works
          assert.equal(await client.request('set k 0 0 1\r\nv\r\n'), 'STORED\r\n');
        });
        const lines = memoryFileLines(second);
        assert.equal(lines.length, 1, second.stderr());
        assert.match(lines[0]!, why);
      } finally {
        await second.stop();
      }
    }
  });

  it('a metadata file without a tag line stops the start (exit 2), as memcached refuses it', async () => {
    const path = memoryFile();
    writeFileSync(`${path}.meta`, '');
    const result = await runMnemo(['-p', '-1', '-e', path], 10_000);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /-e\/--memory-file: corrupt metadata file .*\.meta/);
  });

  it('refuses -e with --data-dir (exit 2)', async () => {
    const result = await runMnemo(['-p', '-1', '-e', memoryFile(), '--data-dir', root]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /-e\/--memory-file: not with -H\/--data-dir/);
  });

  it('time goes on from the saved clock (--test-clock: a debugtime skew carries over)', async () => {
    const path = memoryFile();
    const args = ['-e', path, '--test-clock'];
    const first = await startMnemo(args);
    let savedTime = 0;
    await withClient(first, async (client) => {
      assert.equal(await client.request('debugtime 100000\r\n'), 'OK\r\n');
      assert.equal(await client.request('set short 0 100 1\r\ns\r\n'), 'STORED\r\n');
      savedTime = Number((await statLines(client)).get('time'));
    });
    await stopWith(first, 'SIGUSR1');
    const second = await startMnemo(args);
    try {
      await withClient(second, async (client) => {
        const time = Number((await statLines(client)).get('time'));
        // without the saved clock it would be ~100000 s behind
        assert.ok(time >= savedTime && time <= savedTime + 60, `time ${time}, saved ${savedTime}`);
        const item = await metaGet(client, 'short');
        assert.ok(item && item.ttl <= 100 && item.ttl >= 40, `ttl ${item?.ttl}`);
        assert.equal(await client.request('debugtime 101\r\n'), 'OK\r\n');
        assert.equal(await metaGet(client, 'short'), null, 'expires on the carried-over clock');
      });
    } finally {
      await second.stop();
    }
  });
});

/** Every typed array reachable from the object, with the path it was found at. */
function typedArrays(value: unknown, path: string, seen: Set<unknown>, out: Map<ArrayBufferLike, string>): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (ArrayBuffer.isView(value)) {
    if (!out.has(value.buffer)) out.set(value.buffer, path);
    return;
  }
  if (value instanceof SharedArrayBuffer || value instanceof ArrayBuffer) {
    if (!out.has(value)) out.set(value, path);
    return;
  }
  for (const [key, child] of Object.entries(value)) typedArrays(child, `${path}.${key}`, seen, out);
}

function listedBuffers(entries: readonly StateEntry[]): Set<ArrayBufferLike> {
  const listed = new Set<ArrayBufferLike>();
  for (const entry of entries) {
    if (entry.kind === 'array') listed.add(entry.array.buffer);
    if (entry.kind === 'table') {
      const array = entry.get();
      if (array !== null) listed.add(array.buffer);
    }
    if (entry.kind === 'blocks') for (const block of entry.blocks()) listed.add(block.buffer);
  }
  return listed;
}

const quiet: MemoryFileLog = { info() {}, warn() {} };

function fill(arena: SlabArena, count: number): void {
  for (let i = 0; i < count; i++) {
    const key = Buffer.from(`key${i}`);
    const value = Buffer.from(`value${i}`.repeat(1 + (i % 5)));
    const ref = arena.allocate(key.length, value.length, i, 0);
    arena.writeKey(ref, key, 0, key.length);
    arena.writeValue(ref, 0, value, 0, value.length);
    arena.setCas(ref, i + 1);
    arena.link(ref);
  }
}

describe('the arena state a memory file holds', () => {
  it('lists every typed array and buffer the arena holds (add new ones to SlabArena.stateEntries)', () => {
    const arena = new SlabArena({ memoryLimit: 8 * 1024 * 1024, hashPower: 4 });
    fill(arena, 26); // the hash table is doubling (past 24 items in 16 buckets): both tables exist
    assert.equal(arena.isExpanding, true);
    const found = new Map<ArrayBufferLike, string>();
    // size classes are the settings' (checked by the metadata), not state
    typedArrays({ ...arena, classes: null }, 'arena', new Set(), found);
    const listed = listedBuffers(arena.stateEntries());
    const missing = [...found].filter(([buffer]) => !listed.has(buffer)).map(([, path]) => path);
    assert.deepEqual(missing, [], 'typed arrays not in stateEntries()');
    const names = arena.stateEntries().map((e) => e.name);
    assert.equal(new Set(names).size, names.length, 'names are unique');
  });

  it('a save taken while the hash table doubles loads into a table that finds every key and goes on doubling', () => {
    const options = { memoryLimit: 8 * 1024 * 1024, hashPower: 4 };
    const arena = new SlabArena(options);
    fill(arena, 26);
    assert.equal(arena.isExpanding, true);
    const path = memoryFile();
    saveMemoryFile(path, [], arena.stateEntries(), quiet);
    const loaded = new SlabArena(options);
    const result = loadMemoryFile(path, loaded.stateEntries(), () => null, quiet);
    assert.equal(result.loaded, true, result.loaded ? '' : result.reason);
    assert.equal(loaded.isExpanding, true);
    assert.equal(loaded.hashPower, arena.hashPower);
    assert.equal(loaded.currItems, 26);
    for (let i = 0; i < 26; i++) {
      const key = Buffer.from(`key${i}`);
      const ref = loaded.find(key, 0, key.length);
      assert.notEqual(ref, 0, `key${i}`);
      assert.equal(loaded.cas(ref), i + 1);
      assert.equal(loaded.clientFlags(ref), i);
    }
    // new items go on filling it; the doubling completes
    for (let i = 26; i < 400; i++) {
      const key = Buffer.from(`key${i}`);
      const ref = loaded.allocate(key.length, 1, 0, 0);
      loaded.writeKey(ref, key, 0, key.length);
      loaded.link(ref);
    }
    for (let i = 0; i < 400; i += 7) assert.notEqual(loaded.find(Buffer.from(`key${i}`), 0, `key${i}`.length), 0);
    assert.equal(loaded.currItems, 400);
  });

  it('lists every typed array the slab mover holds (add new ones to SlabRebalancer.stateEntries)', () => {
    const mover = new SlabRebalancer(new SlabArena({ memoryLimit: 8 * 1024 * 1024 }), { reassign: true, automove: 0, ratio: 0.8, window: 30 });
    mover.stop();
    const found = new Map<ArrayBufferLike, string>();
    typedArrays({ ...mover, arena: null }, 'mover', new Set(), found);
    const listed = listedBuffers(mover.stateEntries());
    assert.deepEqual([...found].filter(([buffer]) => !listed.has(buffer)).map(([, path]) => path), []);
  });

  it('the global page pool, released page slots and a page move under way load as they were', () => {
    const MiB = 1024 * 1024;
    const options = { memoryLimit: 8 * MiB };
    const settings = { reassign: true, automove: 0, ratio: 0.8, window: 30 };
    const arena = new SlabArena(options);
    const mover = new SlabRebalancer(arena, settings);
    mover.stop(); // no timers: finishNow drives the moves
    const value = Buffer.alloc(900, 0x61);
    for (let i = 0; i < 3000; i++) {
      const key = Buffer.from(`key${i}`);
      const ref = arena.allocate(key.length, value.length, 0, 0);
      arena.writeKey(ref, key, 0, key.length);
      arena.writeValue(ref, 0, value, 0, value.length);
      arena.link(ref);
    }
    const id = arena.classId(arena.find(Buffer.from('key0'), 0, 4));
    for (let i = 0; i < 3000; i += 2) arena.free(arena.find(Buffer.from(`key${i}`), 0, `key${i}`.length));
    for (let move = 0; move < 2; move++) {
      assert.equal(mover.reassign(id, 0), REASSIGN_OK);
      assert.equal(mover.finishNow(), true);
    }
    assert.equal(arena.pages.poolCount, 2);
    const beforeMove = arena.currItems;
    arena.setMemoryLimit(arena.totalMalloced - MiB); // the pool gives one page's memory back
    assert.equal(arena.pages.poolCount, 1);
    assert.equal(arena.pages.releasedCount, 1);
    const released = arena.pages.releasedSlots[0]!;
    // A move held up by a pinned item.
    const page = arena.pages.firstPageOf(id);
    let pinned = 0;
    for (let index = 0; pinned === 0; index++) if (arena.isLinked(((page + 1) << 16) | index)) pinned = ((page + 1) << 16) | index;
    arena.pin(pinned);
    assert.equal(mover.reassign(id, 0), REASSIGN_OK);
    assert.equal(mover.finishNow(3), false);
    const malloced = arena.totalMalloced;

    const path = memoryFile();
    saveMemoryFile(path, [], [...arena.stateEntries(), ...mover.stateEntries()], quiet);
    const loaded = new SlabArena(options);
    const loadedMover = new SlabRebalancer(loaded, settings);
    loadedMover.stop();
    const result = loadMemoryFile(path, [...loaded.stateEntries(), ...loadedMover.stateEntries()], () => null, quiet);
    assert.equal(result.loaded, true, result.loaded ? '' : result.reason);
    loaded.stateLoaded();
    loadedMover.stateLoaded();
    assert.equal(loaded.pages.poolCount, 1);
    assert.equal(loaded.pages.releasedCount, 1);
    assert.equal(loaded.pages.bytes[released]!.length, 0, 'the released slot holds no memory again');
    assert.equal(loaded.totalMalloced, malloced);
    assert.equal(loadedMover.isRunning, true, 'the move under way goes on');
    assert.equal(loadedMover.slabsMoved, 0, 'stats counters start from 0, as every counter');
    // The old process's pin is gone: the move ends; every item is kept or counted evicted (those
    // evicted before the save too: the move's own counts were saved with it).
    assert.equal(loadedMover.finishNow(), true);
    assert.equal(loaded.pages.poolCount, 2);
    assert.ok(loadedMover.evictionsNomem > 0);
    assert.equal(loaded.currItems + loadedMover.evictionsNomem, beforeMove);
    for (let i = 1; i < 3000; i += 2) {
      const ref = loaded.find(Buffer.from(`key${i}`), 0, `key${i}`.length);
      if (ref === 0) continue;
      const out = Buffer.alloc(loaded.valueLength(ref));
      loaded.copyValueTo(ref, out, 0);
      assert.deepEqual(out, value);
    }
    // New pages come from the pool first, then the released slot is filled again.
    const before = loaded.pages.pageCount;
    assert.equal(loaded.pages.newPage(id), true);
    assert.equal(loaded.pages.newPage(id), true);
    assert.equal(loaded.pages.newPage(id), true);
    assert.equal(loaded.pages.poolCount, 0);
    assert.equal(loaded.pages.releasedCount, 0);
    assert.equal(loaded.pages.pageCount, before, 'no new slot while the released one was free');
    assert.ok(loaded.pages.bytes[released]!.length > 0);
  });

  it('refuses a file whose arrays have other lengths (another build), naming the first', () => {
    const arena = new SlabArena({ memoryLimit: 8 * 1024 * 1024 });
    fill(arena, 10);
    const path = memoryFile();
    saveMemoryFile(path, [], arena.stateEntries(), quiet);
    const other = new SlabArena({ memoryLimit: 8 * 1024 * 1024 });
    const entries = other.stateEntries().map((entry) =>
      entry.name === 'lru.head' ? { kind: 'array' as const, name: 'lru.head', array: new Uint32Array(new SharedArrayBuffer(64 * 4)) } : entry,
    );
    const result = loadMemoryFile(path, entries, () => null, quiet);
    assert.equal(result.loaded, false);
    assert.match(result.loaded ? '' : result.reason, /'lru.head' is 256 of Uint32Array in the file, 64 of Uint32Array in this build/);
    assert.equal(other.currItems, 0, 'nothing was loaded');
  });
});
