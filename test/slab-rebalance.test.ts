/**
 * Slab calcification (issue 16): memory filled with 100 B items sits in their
 * class; when the workload turns to 10 KiB items only, that class has one page
 * and the new items keep evicting each other. With slab_automove (1, the
 * default) pages move from the idle class to the evicting one and the hit rate
 * of the new size recovers; with slab_automove=0 it stays stuck. The same
 * sequence runs against memcached (/usr/bin/memcached), which recovers too.
 *
 * Mnemo runs on --test-clock: each round ends with `debugtime 1` (one second of
 * server time, so one run of the automover) and waits until no page move is
 * under way, so the rounds do not depend on wall-clock time. memcached moves on
 * its own clock: its rounds are a second apart.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { connectClient, statLines, type RawClient } from './helpers/client.js';
import { startMemcached } from './helpers/memcached.js';
import { dataDirs } from './helpers/data-dirs.js';
import { runMnemo, startMnemo } from './helpers/mnemo.js';

const SMALL = 100;
const LARGE = 10 * 1024;
/** 8 MiB of 100 B items is ~44k of them: 60k leaves no page unused. */
const SMALL_ITEMS = 60_000;
/** 300 × 10 KiB: 3 MiB, four pages of the large class (its first page holds 94). */
const WORKING_SET = 300;
const SERVER_ARGS = ['-m', '8', '-o', 'slab_automove_window=3'];

const smallValue = Buffer.alloc(SMALL, 0x61);
const largeValue = Buffer.alloc(LARGE, 0x62);

async function sync(client: RawClient): Promise<void> {
  await client.request('mn\r\n', 'MN\r\n', 30_000);
}

async function fillSmall(client: RawClient): Promise<void> {
  const batch: Buffer[] = [];
  for (let i = 0; i < SMALL_ITEMS; i++) {
    batch.push(Buffer.from(`set small:${i} 0 0 ${SMALL} noreply\r\n`), smallValue, Buffer.from('\r\n'));
    if (batch.length >= 3000) {
      client.send(Buffer.concat(batch.splice(0)));
      if (i % 20_000 === 0) await sync(client);
    }
  }
  client.send(Buffer.concat(batch));
  await sync(client);
}

/** Writes the working set of 10 KiB items, then reads it back; the share of hits. */
async function largeRound(client: RawClient): Promise<number> {
  for (let start = 0; start < WORKING_SET; start += 100) {
    const batch: Buffer[] = [];
    for (let i = start; i < start + 100; i++) batch.push(Buffer.from(`set large:${i} 0 0 ${LARGE} noreply\r\n`), largeValue, Buffer.from('\r\n'));
    client.send(Buffer.concat(batch));
    await sync(client);
  }
  let gets = '';
  for (let i = 0; i < WORKING_SET; i++) gets += `mg large:${i} s\r\n`;
  const reply = await client.request(`${gets}mn\r\n`, 'MN\r\n', 30_000);
  const hits = reply.split('\r\n').filter((line) => line === `HD s${LARGE}`).length;
  return hits / WORKING_SET;
}

async function waitForMoves(client: RawClient): Promise<void> {
  for (let tries = 0; tries < 500; tries++) {
    if ((await statLines(client)).get('slab_reassign_running') === '0') return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('a page move did not end');
}

/**
 * Fills with small items, then runs rounds of large ones until two in a row hit
 * over 90% (or maxRounds); the hit rate of each round.
 */
async function calcification(port: number, maxRounds: number, nextSecond: (client: RawClient) => Promise<void>): Promise<number[]> {
  const client = await connectClient(port);
  try {
    await fillSmall(client);
    const rates: number[] = [];
    for (let round = 0; round < maxRounds; round++) {
      rates.push(await largeRound(client));
      if (rates.length >= 2 && rates.at(-1)! > 0.9 && rates.at(-2)! > 0.9) break;
      await nextSecond(client);
    }
    return rates;
  } finally {
    client.close();
  }
}

const onMnemoClock = async (client: RawClient): Promise<void> => {
  assert.equal(await client.request('debugtime 1\r\n'), 'OK\r\n');
  await waitForMoves(client);
};

const onWallClock = async (): Promise<void> => {
  await new Promise((resolve) => setTimeout(resolve, 1000));
};

describe('slab calcification: 100 B items, then only 10 KiB ones', () => {
  it('slab_automove moves the idle pages to the evicting class: the 10 KiB hit rate recovers', async () => {
    const server = await startMnemo(['--test-clock', ...SERVER_ARGS]);
    try {
      const rates = await calcification(server.port, 20, onMnemoClock);
      assert.ok(rates[0]! < 0.4, `first round ${rates[0]}: one page of 10 KiB items`);
      assert.ok(rates.at(-1)! > 0.9, `recovered: ${rates.map((r) => r.toFixed(2)).join(' ')}`);
      const client = await connectClient(server.port);
      const stats = await statLines(client);
      const slabs = await statLines(client, 'slabs');
      client.close();
      assert.ok(Number(stats.get('slabs_moved')) >= 3, `slabs_moved ${stats.get('slabs_moved')}`);
      assert.ok(Number(stats.get('slab_reassign_evictions_nomem')) > 0, 'the 100 B items on moved pages were evicted');
      const reset = await connectClient(server.port);
      assert.equal(await reset.request('stats reset\r\n'), 'RESET\r\n');
      assert.equal((await statLines(reset)).get('slabs_moved'), '0', 'stats reset zeroes the mover counters, as memcached');
      reset.close();
      assert.equal(slabs.get('total_malloced'), String(9 * 1024 * 1024), 'pages moved, none added (8 + the first page of the new class)');
    } finally {
      await server.stop();
    }
  });

  it('slab_automove=0 stays stuck', async () => {
    const server = await startMnemo(['--test-clock', ...SERVER_ARGS, '-o', 'slab_automove=0']);
    try {
      const rates = await calcification(server.port, 5, onMnemoClock);
      assert.ok(Math.max(...rates) < 0.4, `stuck: ${rates.map((r) => r.toFixed(2)).join(' ')}`);
      const client = await connectClient(server.port);
      assert.equal((await statLines(client)).get('slabs_moved'), '0');
      client.close();
    } finally {
      await server.stop();
    }
  });

  it('memcached recovers the same way (the reference)', { skip: !existsSync('/usr/bin/memcached') && 'no /usr/bin/memcached' }, async () => {
    const server = await startMemcached(SERVER_ARGS);
    try {
      const rates = await calcification(server.port, 20, onWallClock);
      assert.ok(rates[0]! < 0.4, `first round ${rates[0]}`);
      assert.ok(rates.at(-1)! > 0.9, `memcached recovered: ${rates.map((r) => r.toFixed(2)).join(' ')}`);
    } finally {
      await server.stop();
    }
  });
});

describe('slab page moves through the server', () => {
  const dataDir = dataDirs('slab-rebalance');
  it('automove 1 gives the pages of deleted and flushed items to the global pool; new classes take them', async () => {
    const server = await startMnemo(['--test-clock', '-m', '8', '-o', 'slab_automove_window=3']);
    const client = await connectClient(server.port);
    try {
      const value = Buffer.alloc(LARGE, 0x63);
      const setAll = async (prefix: string, count: number, length: number): Promise<void> => {
        const batch: Buffer[] = [];
        const data = length === LARGE ? value : Buffer.alloc(length, 0x64);
        for (let i = 0; i < count; i++) batch.push(Buffer.from(`set ${prefix}:${i} 0 0 ${length} noreply\r\n`), data, Buffer.from('\r\n'));
        client.send(Buffer.concat(batch));
        await sync(client);
      };
      // More than -m holds: every page is allocated (and the class evicts).
      await setAll('a', 900, LARGE);
      const malloced = (await statLines(client, 'slabs')).get('total_malloced');
      assert.equal(malloced, String(8 * 1024 * 1024));
      let deletes = '';
      for (let i = 0; i < 900; i++) deletes += `delete a:${i} noreply\r\n`;
      client.send(deletes);
      await sync(client);
      assert.equal((await statLines(client)).get('slab_global_page_pool'), '0');
      // Seconds pass: after a clean window of 3 runs, pages go to the pool one after another.
      const secondsUntilPool = async (pages: number): Promise<number> => {
        for (let second = 1; second <= 30; second++) {
          await onMnemoClock(client);
          if (Number((await statLines(client)).get('slab_global_page_pool')) >= pages) return second;
        }
        return Infinity;
      };
      assert.ok((await secondsUntilPool(4)) <= 12, 'four pages in the global pool within a few seconds');
      assert.equal((await statLines(client, 'slabs')).get('total_malloced'), malloced, 'pool pages stay allocated');
      // Another size takes its pages from the pool, not from new memory.
      await setAll('b', 2000, 3000);
      assert.equal((await statLines(client)).get('slab_global_page_pool'), '0');
      assert.equal((await statLines(client, 'slabs')).get('total_malloced'), malloced);
      // flush_all frees every item: their pages go back to the pool too.
      assert.equal(await client.request('flush_all\r\n'), 'OK\r\n');
      assert.ok((await secondsUntilPool(4)) <= 12, 'the flushed pages back in the pool within a few seconds');
    } finally {
      client.close();
      await server.stop();
    }
  });

  it('automove 2: an eviction pulls a page from a class with one to spare', async () => {
    const server = await startMnemo(['--test-clock', '-m', '8', '-o', 'slab_automove=0']);
    const client = await connectClient(server.port);
    try {
      await fillSmall(client);
      assert.equal(await client.request('slabs automove 2\r\n'), 'OK\r\n');
      assert.equal((await statLines(client, 'settings')).get('slab_automove'), '2');
      for (let round = 0; round < 4; round++) {
        await largeRound(client);
        await waitForMoves(client);
      }
      const stats = await statLines(client);
      assert.ok(Number(stats.get('slabs_moved')) >= 3, `slabs_moved ${stats.get('slabs_moved')}`);
      assert.ok(await largeRound(client) > 0.9);
    } finally {
      client.close();
      await server.stop();
    }
  });

  it('slabs reassign as slabs_reassign.t: a page of the 70 KB class goes to the 20 KB one; with a disk tier, its evicted items are read back from disk', async () => {
    const server = await startMnemo(['-m', '4', '-o', 'slab_automove=0', '-H', dataDir(), '--disk-limit', '64m']);
    const client = await connectClient(server.port);
    try {
      const big = 'x'.repeat(70000);
      const small = 'y'.repeat(20000);
      for (let i = 0; i < 60; i++) assert.equal(await client.request(`set bfoo${i} 0 0 70000\r\n${big}\r\n`), 'STORED\r\n');
      for (let i = 0; i < 60; i++) assert.equal(await client.request(`set sfoo${i} 0 0 20000\r\n${small}\r\n`), 'STORED\r\n');
      const before = await statLines(client, 'slabs');
      assert.equal(await client.request('slabs reassign 31 25\r\n'), 'OK\r\n');
      await waitForMoves(client);
      const after = await statLines(client, 'slabs');
      assert.equal(Number(after.get('31:total_pages')), Number(before.get('31:total_pages')) - 1);
      assert.equal(Number(after.get('25:total_pages')), Number(before.get('25:total_pages')) + 1);
      const stats = await statLines(client);
      assert.equal(stats.get('slabs_moved'), '1');
      const lost = Number(stats.get('slab_reassign_evictions_nomem'));
      assert.ok(lost > 0, 'the 70 KB class was full: the items on its page were evicted');
      // Evicted from memory, not from the cache: the disk tier still has every one.
      for (let i = 0; i < 60; i++) assert.equal(await client.request(`get bfoo${i}\r\n`, 'END\r\n'), `VALUE bfoo${i} 0 70000\r\n${big}\r\nEND\r\n`);
      assert.ok(Number((await statLines(client)).get('disk_promotions')) >= lost);
    } finally {
      client.close();
      await server.stop();
    }
  });

  it('slabs reassign and automove answer as memcached; settings show what they set', async () => {
    const server = await startMnemo(['-m', '8']);
    const client = await connectClient(server.port);
    try {
      const settings = await statLines(client, 'settings');
      assert.equal(settings.get('slab_reassign'), 'yes');
      assert.equal(settings.get('slab_automove'), '1');
      assert.equal(settings.get('slab_automove_ratio'), '0.80');
      assert.equal(settings.get('slab_automove_window'), '30');
      assert.equal(settings.get('slab_chunk_max'), '524288');
      assert.equal(await client.request('slabs reassign 1 1\r\n'), 'SAME src and dst class are identical\r\n');
      assert.equal(await client.request('slabs reassign 1 64\r\n'), 'BADCLASS invalid src or dst class id\r\n');
      assert.equal(await client.request('slabs reassign 1 0\r\n'), 'NOSPARE source class has no spare pages\r\n');
      assert.equal(await client.request('slabs reassign x 0\r\n'), 'CLIENT_ERROR bad command line format\r\n');
      assert.equal(await client.request('slabs automove ratio 0.5\r\n'), 'OK\r\n');
      assert.equal((await statLines(client, 'settings')).get('slab_automove_ratio'), '0.50');
      const stats = await statLines(client);
      for (const name of ['slab_reassign_rescues', 'slab_reassign_chunk_rescues', 'slab_reassign_evictions_nomem',
        'slab_reassign_inline_reclaim', 'slab_reassign_busy_items', 'slab_reassign_busy_deletes', 'slab_reassign_running', 'slabs_moved']) {
        assert.equal(stats.get(name), '0', name);
      }
    } finally {
      client.close();
      await server.stop();
    }
    const off = await startMnemo(['-o', 'no_slab_reassign']);
    const offClient = await connectClient(off.port);
    try {
      assert.equal(await offClient.request('slabs reassign 1 2\r\n'), 'CLIENT_ERROR slab reassignment disabled\r\n');
      assert.equal((await statLines(offClient)).get('slabs_moved'), undefined, 'memcached lists the mover stats only when it is on');
    } finally {
      offClient.close();
      await off.stop();
    }
  });

  it('refuses bad slab suboptions with memcached\'s reasons, exit code 2', async () => {
    for (const [option, message] of [
      ['slab_automove=3', 'slab_automove must be between 0 and 2'],
      ['slab_chunk_max=3000', 'must be evenly divisible by slab_chunk_max'],
    ]) {
      const result = await runMnemo(['-o', option!]);
      assert.equal(result.code, 2, option);
      assert.match(result.stderr, new RegExp(message!), option);
    }
  });
});
