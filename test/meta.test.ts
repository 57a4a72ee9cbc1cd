/** Meta commands over a real socket: flows that need values only the server knows (CAS). */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectClient, type RawClient } from './helpers/client.js';
import { startMnemo, type RunningServer } from './helpers/mnemo.js';

let server: RunningServer;
let client: RawClient;

before(async () => {
  server = await startMnemo();
  client = await connectClient(server.port);
});

after(async () => {
  client?.close();
  await server?.stop();
});

const casOf = (line: string): string => /\bc(\d+)/.exec(line)![1]!;

describe('meta commands', () => {
  it('compares and swaps with ms C and returns the new CAS with c', async () => {
    const stored = await client.request('ms m1 2 c\r\nv1\r\n');
    const cas = casOf(stored);
    assert.equal(casOf(await client.request('mg m1 c\r\n')), cas);
    const swapped = await client.request(`ms m1 2 C${cas} c\r\nv2\r\n`);
    assert.match(swapped, /^HD c\d+\r\n$/);
    assert.notEqual(casOf(swapped), cas);
    assert.equal(await client.request(`ms m1 2 C${cas}\r\nv3\r\n`), 'EX\r\n');
    assert.equal(await client.request('mg m1 v\r\n', 'v2\r\n'), 'VA 2\r\nv2\r\n');
  });

  it('deletes only with the matching CAS', async () => {
    const cas = casOf(await client.request('ms m2 1 c\r\nx\r\n'));
    assert.equal(await client.request(`md m2 C${Number(cas) + 1}\r\n`), 'EX\r\n');
    assert.equal(await client.request(`md m2 C${cas}\r\n`), 'HD\r\n');
    assert.equal(await client.request('mg m2 v\r\n'), 'EN\r\n');
  });

  it('runs the stale-while-revalidate flow: invalidate, one winner, a stale write, a fresh write', async () => {
    const cas = casOf(await client.request('ms page 3 c T100\r\nold\r\n'));
    assert.equal(await client.request('md page I\r\n'), 'HD\r\n');
    // The first reader wins the right to recompute; the next sees it is being done.
    assert.equal(await client.request('mg page v\r\n', 'old\r\n'), 'VA 3 X W\r\nold\r\n');
    assert.equal(await client.request('mg page v\r\n', 'old\r\n'), 'VA 3 Z X\r\nold\r\n');
    // A write with the pre-invalidation CAS is accepted but stays stale.
    assert.equal(await client.request(`ms page 5 I C${cas}\r\nolder\r\n`), 'HD\r\n');
    assert.match(await client.request('mg page v t\r\n', 'older\r\n'), /^VA 5 t(9[89]|100) Z X\r\nolder\r\n$/);
    // A write with the current CAS replaces the stale item for good.
    const current = casOf(await client.request('mg page c\r\n'));
    assert.equal(await client.request(`ms page 3 C${current}\r\nnew\r\n`), 'HD\r\n');
    assert.equal(await client.request('mg page v\r\n', 'new\r\n'), 'VA 3\r\nnew\r\n');
  });

  it('increments with ma and a CAS check', async () => {
    assert.equal(await client.request('ma hits N0 J41 v c\r\n', '41\r\n').then((r) => r.replace(/c\d+/, 'c')), 'VA 2 c\r\n41\r\n');
    const cas = casOf(await client.request('mg hits c\r\n'));
    assert.equal(await client.request(`ma hits C${cas} v\r\n`, '42\r\n'), 'VA 2\r\n42\r\n');
    assert.equal(await client.request(`ma hits C${cas} v\r\n`), 'EX\r\n');
  });

  it('keeps quiet-mode pipelines terminated by mn', async () => {
    const reply = await client.request('ms q1 1 q\r\na\r\nms q2 1 q\r\nb\r\nmg q1 v q\r\nmg missing v q\r\nmd q2 q\r\nmd missing q\r\nmn\r\n', 'MN\r\n');
    assert.equal(reply, 'VA 1\r\na\r\nNF\r\nMN\r\n');
  });

  it('reports seconds since the last access with l, and h, counted from the store and then from the last read', async () => {
    // The differential test can only say l is 0 or 1 (a second may tick between store and read); here the clock moves by 100.
    const timed = await startMnemo(['--test-clock']);
    const c = await connectClient(timed.port);
    try {
      assert.equal(await c.request('set la 0 0 1\r\nx\r\ndebugtime 100\r\n', 'OK\r\n'), 'STORED\r\nOK\r\n');
      assert.match(await c.request('mg la h l\r\n'), /^HD h0 l10[01]\r\n$/);
      // As memcached's segmented LRU (do_item_bump): the first hit only marks the item fetched; the
      // access time is stamped from the second on (checked against memcached 1.6.18: l3, l3 after 3 s).
      assert.match(await c.request('mg la h l\r\n'), /^HD h1 l10[01]\r\n$/);
    } finally {
      c.close();
      await timed.stop();
    }
  });
});
