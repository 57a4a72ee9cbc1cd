/**
 * The `stats` groups field by field against memcached 1.6.18: after the same
 * sets, the general, `settings`, `items` and `slabs` groups name the same fields
 * in the same order (per-class fields compared by name), and the page figures
 * (total_malloced, total_pages, used/free chunks, hash_power_level) and the
 * per-class command counters of `stats slabs` agree. The segmented LRU's and
 * the slab mover's fields must be there; the LRU crawler's may be absent until
 * it lands; the few Mnemo cannot state truthfully are listed with the reason.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { connectClient, statLines, type RawClient } from './helpers/client.js';
import { startMemcached } from './helpers/memcached.js';
import { startMnemo, type RunningServer } from './helpers/mnemo.js';

const HAVE_MEMCACHED = existsSync('/usr/bin/memcached');

/** Owned by other work in progress (issue 16, the LRU crawler): allowed to be missing, checked once present. */
const PENDING = new Set([
  'crawler_reclaimed', 'crawler_items_checked', 'lru_crawler_running', 'lru_crawler_starts',
  'lru_crawler_sleep', 'lru_crawler_tocrawl',
]);

/** Not stated: extstore's settings (Mnemo has no extstore; its disk tier is configured otherwise). */
const NOT_STATED = new Set([
  'ext_item_size', 'ext_item_age', 'ext_low_ttl', 'ext_recache_rate', 'ext_wbuf_size', 'ext_compact_under',
  'ext_drop_under', 'ext_max_sleep', 'ext_max_frag', 'slab_automove_freeratio', 'ext_drop_unread',
]);

const SETS = ['set small 0 0 5\r\nhello\r\n', `set mid 0 100 300\r\n${'m'.repeat(300)}\r\n`, `set big 0 0 70000\r\n${'b'.repeat(70000)}\r\n`];

/** Commands each per-class counter of `stats slabs` counts, with the end of their replies. */
const COMMANDS: Array<[string, string]> = [
  ['get small mid missing\r\n', 'END\r\n'], ['gets big\r\n', 'END\r\n'], ['touch small 100\r\n', '\r\n'],
  ['gat 0 mid\r\n', 'END\r\n'], ['set n 0 0 1\r\n5\r\n', '\r\n'], ['incr n 2\r\n', '\r\n'], ['decr n 1\r\n', '\r\n'],
  ['cas mid 0 0 3 1\r\nabc\r\n', '\r\n'], ['append mid 0 0 2\r\nzz\r\n', '\r\n'], ['mg mid s\r\n', '\r\n'],
  ['mg small T30\r\n', '\r\n'], ['md n\r\n', '\r\n'], ['delete small\r\n', '\r\n'], ['delete missing\r\n', '\r\n'],
];
const SLAB_COUNTERS = /:(get_hits|cmd_set|delete_hits|incr_hits|decr_hits|cas_hits|cas_badval|touch_hits)$/;

/** A group's field names in order, per-class ones ("items:3:number", "3:chunk_size") once each by name. */
function fieldNames(stats: Map<string, string>): string[] {
  const names: string[] = [];
  for (const name of stats.keys()) {
    const field = name.replace(/^items:\d+:/, '').replace(/^\d+:/, '');
    if (!names.includes(field)) names.push(field);
  }
  return names;
}

/**
 * Until every chunk in use holds a live item (none of these items is chunked): a
 * deleted item that a hit queued for the LRU maintainer (memcached's bump buffer,
 * Mnemo's bump queue) keeps its chunk until the maintainer's next run, which
 * comes when each server's maintainer wakes. Bounded: 100 reads.
 */
async function settled(client: RawClient): Promise<void> {
  for (let tries = 0; tries < 100; tries++) {
    const items = Number((await statLines(client)).get('curr_items'));
    let used = 0;
    for (const [name, value] of await statLines(client, 'slabs')) if (name.endsWith(':used_chunks')) used += Number(value);
    if (used === items) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function groups(port: number, sets: string[], commands: Array<[string, string]> = []): Promise<Map<string, Map<string, string>>> {
  const client = await connectClient(port);
  try {
    for (const set of sets) assert.equal(await client.request(set, '\r\n'), 'STORED\r\n');
    for (const [command, end] of commands) await client.request(command, end);
    if (commands.length > 0) await settled(client);
    const result = new Map<string, Map<string, string>>();
    for (const group of ['', 'settings', 'items', 'slabs']) result.set(group, await statLines(client, group));
    return result;
  } finally {
    client.close();
  }
}

function compareFields(group: string, reference: string[], mnemo: string[]): void {
  const expected = reference.filter((name) => !NOT_STATED.has(name) && !(PENDING.has(name) && !mnemo.includes(name)));
  assert.deepEqual(mnemo, expected, `stats ${group || '(general)'}: the fields in memcached's order`);
}

async function compareWith(args: string[], sets = SETS, commands: Array<[string, string]> = []): Promise<{ reference: Map<string, Map<string, string>>; ours: Map<string, Map<string, string>> }> {
  const memcached = await startMemcached(args);
  let mnemo: RunningServer | null = null;
  try {
    mnemo = await startMnemo(args);
    const [reference, ours] = await Promise.all([groups(memcached.port, sets, commands), groups(mnemo.port, sets, commands)]);
    for (const group of reference.keys()) compareFields(group, fieldNames(reference.get(group)!), fieldNames(ours.get(group)!));
    return { reference, ours };
  } finally {
    await memcached.stop();
    await mnemo?.stop();
  }
}

describe('stats fields against memcached 1.6.18', { skip: HAVE_MEMCACHED ? false : 'no /usr/bin/memcached' }, () => {
  it('default settings: the same fields in every group, and the same page figures', async () => {
    const { reference, ours } = await compareWith([], SETS, COMMANDS);
    const slabsReference = reference.get('slabs')!;
    const slabsOurs = ours.get('slabs')!;
    for (const [name, value] of slabsReference) {
      if (/:(chunk_size|chunks_per_page|total_pages|total_chunks|used_chunks|free_chunks)$/.test(name) || /^(active_slabs|total_malloced)$/.test(name) || SLAB_COUNTERS.test(name)) {
        assert.equal(slabsOurs.get(name), value, `stats slabs ${name}`);
      }
    }
    for (const name of ['hash_power_level', 'hash_is_expanding', 'malloc_fails', 'reserved_fds', 'curr_items']) {
      if (name === 'reserved_fds') continue; // memcached sets descriptors aside; Mnemo reports 0
      assert.equal(ours.get('')!.get(name), reference.get('')!.get(name), `stats ${name}`);
    }
    for (const name of ['slab_chunk_max', 'hashpower_init', 'item_size_max', 'watcher_logbuf_size', 'worker_logbuf_size', 'ssl_min_version']) {
      assert.equal(ours.get('settings')!.get(name), reference.get('settings')!.get(name), `stats settings ${name}`);
    }
  });

  it("stats.t's flags (-I 1024, slab_chunk_max=1024, no crawler, no maintainer, hashpower=18): the same fields", async () => {
    const { reference, ours } = await compareWith(['-I', '1024', '-o', 'slab_chunk_max=1024,no_lru_crawler,no_lru_maintainer,hashpower=18'], SETS.slice(0, 2));
    assert.equal(ours.get('')!.get('hash_power_level'), '18');
    assert.equal(ours.get('settings')!.get('slab_chunk_max'), reference.get('settings')!.get('slab_chunk_max'));
    assert.equal(ours.get('slabs')!.get('total_malloced'), reference.get('slabs')!.get('total_malloced'));
  });
});

describe('stats figures of the slab store', () => {
  let client: RawClient | null = null;
  after(() => client?.close());

  it('T_MEMD_INITIAL_MALLOC counts as allocated, and -m refuses a second page past it (64bit.t)', async () => {
    const server = await startMnemo(['-m', '4098', '-M'], { T_MEMD_INITIAL_MALLOC: '4294967328' });
    try {
      client = await connectClient(server.port);
      assert.equal((await statLines(client, 'slabs')).get('total_malloced'), '4294967328');
      const value = 'a'.repeat(400 * 1024);
      const replies: string[] = [];
      for (let i = 0; i < 5; i++) replies.push(await client.request(`set big${i} 0 0 ${value.length}\r\n${value}\r\n`, '\r\n'));
      assert.ok(replies.includes('SERVER_ERROR out of memory storing object\r\n'), replies.join(''));
      const slabs = await statLines(client, 'slabs');
      assert.equal(slabs.get('active_slabs'), '1');
      assert.equal(slabs.get('total_malloced'), String(4294967328 + 1024 * 1024));
    } finally {
      client?.close();
      client = null;
      await server.stop();
    }
  });

  it('cache_memlimit below the pages charged gives back pages with no item, down to the limit', async () => {
    const server = await startMnemo(['-m', '16', '--test-clock']);
    try {
      client = await connectClient(server.port);
      const value = 'v'.repeat(66560);
      for (let i = 0; i < 100; i++) assert.equal(await client.request(`set k${i} 0 0 ${value.length}\r\n${value}\r\n`, '\r\n'), 'STORED\r\n');
      const full = Number((await statLines(client, 'slabs')).get('total_malloced'));
      assert.ok(full > 8 * 1024 * 1024, `${full} charged`);
      assert.equal(await client.request('cache_memlimit 8\r\n', '\r\n'), 'OK\r\n');
      for (let i = 1; i < 100; i++) await client.request(`delete k${i}\r\n`, '\r\n');
      await client.request('debugtime 1\r\n', '\r\n');
      const slabs = await statLines(client, 'slabs');
      assert.equal(slabs.get('total_malloced'), String(8 * 1024 * 1024), 'released down to the limit');
      // The page still holding k0 was kept, and k0 with it.
      assert.match(await client.request('get k0\r\n', 'END\r\n'), /^VALUE k0 0 66560\r\n/);
      // The kept pages' free chunks still serve.
      for (let i = 1; i < 40; i++) assert.equal(await client.request(`set k${i} 0 0 ${value.length}\r\n${value}\r\n`, '\r\n'), 'STORED\r\n');
      assert.match(await client.request('get k0\r\n', 'END\r\n'), /^VALUE k0 0 66560\r\n/);
    } finally {
      client?.close();
      client = null;
      await server.stop();
    }
  });

  it('stats reset zeroes the per-class eviction counters (issue_22.t)', async () => {
    const server = await startMnemo(['-m', '3']);
    try {
      client = await connectClient(server.port);
      const value = 'B'.repeat(66560);
      for (let i = 0; i < 40; i++) await client.request(`set key${i} 0 0 ${value.length}\r\n${value}\r\n`, '\r\n');
      const evicted = (): Promise<string | undefined> =>
        statLines(client!, 'items').then((items) => [...items].find(([name]) => name.endsWith(':evicted'))?.[1]);
      assert.notEqual(await evicted(), '0');
      assert.equal(await client.request('stats reset\r\n', '\r\n'), 'RESET\r\n');
      assert.equal(await evicted(), '0');
      for (let i = 40; i < 80; i++) await client.request(`set key${i} 0 0 ${value.length}\r\n${value}\r\n`, '\r\n');
      assert.equal(await evicted(), '40');
    } finally {
      client?.close();
      client = null;
      await server.stop();
    }
  });

  it('refuses slab_chunk_max and hashpower as memcached does', async () => {
    for (const [args, message] of [
      [['-I', '1m', '-o', 'slab_chunk_max=2097152'], /slab_chunk_max \(bytes: 2097152\) cannot be larger than -I \(item_size_max 1048576\)/],
      [['-I', '2m', '-o', 'slab_chunk_max=786432'], /-I \(item_size_max: 2097152\) must be evenly divisible by slab_chunk_max \(bytes: 786432\)/],
      [['-o', 'hashpower=5'], /Initial hashtable multiplier of 5 is too low/],
      [['-m', '10', '-L'], /max memory must be at least \d+ megabytes/],
    ] as Array<[string[], RegExp]>) {
      const started = await startMnemo(args).catch((error: Error) => error);
      if (!(started instanceof Error)) {
        await started.stop();
        assert.fail(`mnemo started with ${args.join(' ')}`);
      }
      assert.match(started.message, message);
      assert.match(started.message, /exited with 2/);
    }
  });

});
