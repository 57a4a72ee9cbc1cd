/**
 * The TypeScript client against live Mnemo servers: every text and meta command,
 * pipelining over its pool, timeouts, ejection of a node killed mid-run and its
 * return, and reads retried on a replica.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Client, ConnectionError, RequestError, ServerError, TimeoutError } from '../src/client/index.js';
import { parseServer } from '../src/client/server-list.js';
import { connectClient } from './helpers/client.js';
import { startMnemo, type RunningServer } from './helpers/mnemo.js';

const started: RunningServer[] = [];

async function mnemo(args: string[] = []): Promise<RunningServer> {
  const server = await startMnemo(args);
  started.push(server);
  return server;
}

/** What a server holds for a key, asked directly over the wire. */
async function rawGet(port: number, key: string): Promise<string | undefined> {
  const raw = await connectClient(port);
  try {
    const reply = await raw.request(`get ${key}\r\n`, 'END\r\n');
    const match = /^VALUE \S+ \d+ \d+\r\n([\s\S]*)\r\nEND\r\n$/.exec(reply);
    return match ? match[1] : undefined;
  } finally {
    raw.close();
  }
}

after(async () => {
  await Promise.all(started.map((server) => server.stop()));
});

describe('server list', () => {
  it("reads twemproxy's host:port:weight [name] and objects", () => {
    assert.deepEqual(parseServer('10.0.0.1:11212:3 cache-a'), { host: '10.0.0.1', port: 11212, weight: 3, name: 'cache-a', replica: undefined });
    assert.deepEqual(parseServer('cache.local'), { host: 'cache.local', port: 11211, weight: 1, name: undefined, replica: undefined });
    assert.deepEqual(parseServer('[::1]:11300'), { host: '::1', port: 11300, weight: 1, name: undefined, replica: undefined });
    assert.throws(() => parseServer('a:b:c:d'), RequestError);
    assert.throws(() => new Client({ servers: [{ host: 'h', port: 1, weight: 0 }] }), RequestError);
    const client = new Client({ servers: ['127.0.0.1:11300:1 alpha', { host: '127.0.0.1', port: 11301, name: 'beta' }] });
    assert.deepEqual(client.servers().map((s) => s.label), ['alpha', 'beta']);
    client.close();
    const byAddress = new Client({ servers: ['127.0.0.1:11300:1 alpha', '127.0.0.1:11211'], hashBy: 'address' });
    assert.deepEqual(byAddress.servers().map((s) => s.label), ['127.0.0.1:11300', '127.0.0.1']);
    byAddress.close();
  });
});

describe('every command against one Mnemo', () => {
  let server: RunningServer;
  let client: Client;

  before(async () => {
    server = await mnemo();
    client = new Client({ servers: [`127.0.0.1:${server.port}`], timeout: 5000 });
  });
  after(() => client.close());

  it('set, get, gets with flags, strings and binary values', async () => {
    const binary = Buffer.from([0, 13, 10, 255, 32, 13, 10]);
    assert.equal(await client.set('bin', binary, { flags: 0xfffffffe }), true);
    assert.deepEqual(await client.get('bin'), { value: binary, flags: 0xfffffffe });
    assert.equal(await client.set('text', 'héllo'), true);
    assert.equal((await client.get(Buffer.from('text')))!.value.toString(), 'héllo');
    assert.equal(await client.set('empty', ''), true);
    assert.deepEqual(await client.get('empty'), { value: Buffer.alloc(0), flags: 0 });
    const withCas = await client.gets('text');
    assert.equal(typeof withCas!.cas, 'bigint');
    assert.equal(await client.get('missing'), undefined);
    const big = Buffer.alloc(700 * 1024, 'x');
    assert.equal(await client.set('big', big), true);
    assert.ok((await client.get('big'))!.value.equals(big));
  });

  it('add, replace, append, prepend, cas', async () => {
    assert.equal(await client.add('a', '1'), true);
    assert.equal(await client.add('a', '2'), false);
    assert.equal(await client.replace('a', '3'), true);
    assert.equal(await client.replace('nope', '3'), false);
    assert.equal(await client.append('a', '>'), true);
    assert.equal(await client.prepend('a', '<'), true);
    assert.equal(await client.append('nope', 'x'), false);
    assert.equal((await client.get('a'))!.value.toString(), '<3>');
    const { cas } = (await client.gets('a'))!;
    assert.equal(await client.cas('a', 'new', cas!), 'STORED');
    assert.equal(await client.cas('a', 'newer', cas!), 'EXISTS');
    assert.equal(await client.cas('nope', 'x', cas!), 'NOT_FOUND');
  });

  it('incr and decr over unsigned 64 bits', async () => {
    await client.set('n', '18446744073709551614');
    assert.equal(await client.incr('n'), 18446744073709551615n);
    assert.equal(await client.incr('n', 2), 1n, 'wraps as memcached does');
    assert.equal(await client.decr('n', 5n), 0n, 'stops at 0');
    assert.equal(await client.incr('no-counter', 1), undefined);
    await client.set('word', 'abc');
    await assert.rejects(client.incr('word'), (error: unknown) => error instanceof ServerError && /non-numeric/.test(error.line));
    await assert.rejects(client.incr('n', -1), RequestError);
  });

  it('delete, touch, gat and gats', async () => {
    await client.set('t', 'v');
    assert.equal(await client.touch('t', 100), true);
    assert.equal(await client.touch('nope', 100), false);
    assert.equal((await client.mg('t', 't')).flags.t, '100');
    assert.deepEqual(await client.gat('t', 200), { value: Buffer.from('v'), flags: 0 });
    assert.equal((await client.mg('t', 't')).flags.t, '200');
    const touched = await client.gats('t', 300);
    assert.equal(typeof touched!.cas, 'bigint');
    assert.equal(await client.gat('nope', 5), undefined);
    assert.equal(await client.delete('t'), true);
    assert.equal(await client.delete('t'), false);
  });

  it('multi-gets split over several lines, with Buffer keys', async () => {
    const keys = Array.from({ length: 600 }, (_, i) => `multi:${i}:${'k'.repeat(20)}`);
    await Promise.all(keys.filter((_, i) => i % 3 !== 0).map((key) => client.set(key, key)));
    const got = await client.getMulti([...keys, Buffer.from(keys[1]!)]);
    assert.equal(got.size, 400);
    for (const [key, item] of got) assert.equal(item.value.toString(), key);
    const withCas = await client.getsMulti(keys.slice(0, 10));
    assert.ok([...withCas.values()].every((item) => typeof item.cas === 'bigint'));
    assert.equal((await client.gatMulti(keys, 50)).size, 400);
    assert.equal((await client.gatsMulti(keys.slice(0, 30), 50)).size, 20);
    assert.equal((await client.mg(keys[1]!, 't')).flags.t, '50');
    assert.equal((await client.getMulti([])).size, 0);
  });

  it('meta commands with flags', async () => {
    assert.equal((await client.ms('m', 'meta', 'T60 F7')).status, 'HD');
    const hit = await client.mg('m', ['v', 'f', 't', 'c', 'k', 'Oabc']);
    assert.equal(hit.status, 'VA');
    assert.equal(hit.value!.toString(), 'meta');
    assert.equal(hit.flags.f, '7');
    assert.equal(hit.flags.k, 'm');
    assert.equal(hit.flags.O, 'abc');
    assert.equal((await client.mg('nope', 'v')).status, 'EN');
    assert.equal((await client.mg('nope', 'v q')).status, 'quiet', 'q suppresses the miss');
    assert.equal((await client.mg('m', 'v q')).value!.toString(), 'meta', 'q still returns a hit');
    assert.equal((await client.ms('m', 'x', 'MA')).status, 'HD');
    assert.equal((await client.mg('m', 'v')).value!.toString(), 'metax');
    assert.equal((await client.ms('m', 'y', 'ME')).status, 'NS', 'add mode on an existing key');
    assert.equal((await client.ma('ctr', 'N0 J10 v')).value!.toString(), '10');
    assert.equal((await client.ma('ctr', 'MD D3 v')).value!.toString(), '7');
    assert.equal((await client.ma('nope')).status, 'NF');
    assert.equal((await client.md('ctr', 'q')).status, 'quiet');
    assert.equal((await client.md('ctr')).status, 'NF');
    const binaryKey = Buffer.from([0, 1, 2, 0xff, 0x20]);
    assert.equal((await client.ms(binaryKey, 'b', 'b')).status, 'HD');
    assert.equal((await client.mg(binaryKey, 'b v')).value!.toString(), 'b');
    await client.mn();
    await assert.rejects(client.mg('m', 'v\r\nflush_all'), RequestError);
  });

  it('version, stats and flush_all on every server', async () => {
    const versions = await client.version();
    assert.match(versions.get(`127.0.0.1:${server.port}`)!, /^1\.6\.18-mnemo-/);
    const stats = (await client.stats()).get(`127.0.0.1:${server.port}`)!;
    assert.ok(Number(stats.curr_items) > 0);
    assert.ok(Number(stats.curr_connections) >= 1);
    assert.equal((await client.stats('settings')).get(`127.0.0.1:${server.port}`)!.maxbytes, String(64 * 1024 * 1024));
    await client.set('f', '1');
    await client.flushAll(3600);
    assert.notEqual(await client.get('f'), undefined, 'a delayed flush leaves items for now');
    await client.flushAll();
    assert.equal(await client.get('f'), undefined);
  });

  it('refuses bad keys, and keeps the connection in step after a server error', async () => {
    await assert.rejects(client.get('has space'), RequestError);
    await assert.rejects(client.set('k'.repeat(251), 'v'), RequestError);
    await assert.rejects(client.set('', 'v'), RequestError);
    await assert.rejects(client.set('huge', Buffer.alloc(2 * 1024 * 1024)), (error: unknown) => error instanceof ServerError && /too large/.test(error.line));
    assert.equal(await client.set('after', 'ok'), true);
    assert.equal((await client.get('after'))!.value.toString(), 'ok');
  });

  it('pipelines thousands of requests over a pool of two connections', async () => {
    const connectionsNow = async (): Promise<number> => Number((await client.stats()).get(`127.0.0.1:${server.port}`)!.curr_connections);
    const before = await connectionsNow();
    const pooled = new Client({ servers: [`127.0.0.1:${server.port}`], poolSize: 2, timeout: 10_000 });
    try {
      const keys = Array.from({ length: 5000 }, (_, i) => `pipe:${i}`);
      const stored = await Promise.all(keys.map((key, i) => pooled.set(key, `value-${i}`)));
      assert.ok(stored.every(Boolean));
      const items = await Promise.all(keys.map((key) => pooled.get(key)));
      items.forEach((item, i) => assert.equal(item!.value.toString(), `value-${i}`));
      assert.equal(await connectionsNow(), before + 2, 'both pooled connections used, no more');
    } finally {
      pooled.close();
    }
  });
});

describe('timeouts', () => {
  it('fails a request that gets no reply in time, and closes its connection', async () => {
    const sockets: Socket[] = [];
    const silent = createServer((socket) => {
      sockets.push(socket);
      socket.on('error', () => {});
      socket.resume(); // reads (and ignores) the request, so the client's close is seen
    });
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    const { port } = silent.address() as { port: number };
    const client = new Client({ servers: [`127.0.0.1:${port}`], timeout: 5000, autoEject: false });
    try {
      const startedAt = Date.now();
      await assert.rejects(client.get('k', { timeout: 200 }), TimeoutError);
      const waited = Date.now() - startedAt;
      assert.ok(waited >= 190 && waited < 2000, `waited ${waited} ms`);
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.ok(sockets.length >= 1 && sockets.every((socket) => socket.destroyed || socket.readableEnded), 'the late connection is closed');
    } finally {
      client.close();
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });
});

describe('a cluster with a node killed mid-run', () => {
  let nodes: RunningServer[] = [];
  let client: Client;
  const RETRY_MS = 800;

  before(async () => {
    nodes = await Promise.all([0, 1, 2].map(() => mnemo()));
    client = new Client({
      servers: nodes.map((node, i) => `127.0.0.1:${node.port}:1 node-${i}`),
      failureLimit: 2,
      retryTimeout: RETRY_MS,
      timeout: 5000,
    });
  });
  after(() => client.close());

  it('ejects the dead node, moves only its keys, retries it, and takes it back once it answers', async () => {
    const keys = Array.from({ length: 300 }, (_, i) => `ring:${i}`);
    assert.ok((await Promise.all(keys.map((key) => client.set(key, `v:${key}`)))).every(Boolean));
    const victim = nodes[1]!;
    const victimAddress = `127.0.0.1:${victim.port}`;
    const owner = new Map(keys.map((key) => [key, client.serverFor(key)]));
    const victimKeys = keys.filter((key) => owner.get(key) === victimAddress);
    assert.ok(victimKeys.length > 50 && victimKeys.length < 150, `${victimKeys.length} keys on the victim`);
    for (const key of victimKeys.slice(0, 5)) assert.equal(await rawGet(victim.port, key), `v:${key}`, 'the client wrote where it routes');

    let failures = 0;
    let roundsAfterEjection = 0;
    for (let round = 0; round < 50 && roundsAfterEjection < 2; round++) {
      if (round === 3) await victim.stop();
      const results = await Promise.allSettled(keys.map((key) => client.get(key)));
      results.forEach((result, i) => {
        const key = keys[i]!;
        const onVictim = owner.get(key) === victimAddress;
        if (result.status === 'rejected') {
          assert.ok(round >= 3 && onVictim, `only the dead node's keys fail: ${key} ${result.reason}`);
          assert.ok(result.reason instanceof ConnectionError, String(result.reason));
          failures++;
        } else if (!onVictim || round < 3) {
          assert.equal(result.value?.value.toString(), `v:${key}`, `${key} is readable`);
        } else {
          assert.equal(result.value, undefined, `${key} moved to a node that never had it`);
        }
      });
      if (!client.servers()[1]!.live) roundsAfterEjection++;
    }
    assert.ok(failures > 0, 'requests to the dead node failed before it was ejected');
    const status = client.servers()[1]!;
    assert.equal(status.live, false);
    assert.equal(status.ejections, 1);
    // Keys of the live nodes did not move.
    for (const key of keys.filter((k) => owner.get(k) !== victimAddress)) assert.equal(client.serverFor(key), owner.get(key));
    assert.ok(victimKeys.every((key) => client.serverFor(key) !== victimAddress));

    // After the retry interval it is tried again; still dead, it fails and is ejected once more.
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    assert.equal(client.servers()[1]!.live, true, 'back in the ring for a retry');
    let retryFailures = 0;
    for (let round = 0; round < 10 && client.servers()[1]!.ejections < 2; round++) {
      const results = await Promise.allSettled(victimKeys.map((key) => client.get(key)));
      retryFailures += results.filter((result) => result.status === 'rejected').length;
    }
    assert.ok(retryFailures > 0);
    assert.equal(client.servers()[1]!.ejections, 2);
    assert.equal(client.servers()[1]!.live, false);

    // Back on the same port: after the retry interval the ring holds it again.
    nodes[1] = await mnemo(['-p', String(victim.port)]);
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    assert.equal(client.serverFor(victimKeys[0]!), victimAddress);
    assert.equal(client.servers()[1]!.live, true);
    assert.equal(await client.set(victimKeys[0]!, 'back'), true);
    assert.equal(await rawGet(victim.port, victimKeys[0]!), 'back');
  });
});

describe('replica-aware reads', () => {
  it('retries a read on the peer when the primary is down; writes are not redirected', async () => {
    const [primary, replica] = await Promise.all([mnemo(), mnemo()]);
    const client = new Client({
      servers: [{ host: '127.0.0.1', port: primary!.port, replica: `127.0.0.1:${replica!.port}` }],
      autoEject: false,
      timeout: 5000,
    });
    const peer = new Client({ servers: [`127.0.0.1:${replica!.port}`] });
    try {
      await client.set('r', 'from primary');
      // What replication would have copied, marked so the test sees where a read was served.
      await peer.set('r', 'from replica');
      await peer.set('r2', 'only on replica');
      assert.equal((await client.get('r'))!.value.toString(), 'from primary');
      await primary!.stop();
      assert.equal((await client.get('r'))!.value.toString(), 'from replica');
      assert.equal((await client.getMulti(['r', 'r2'])).size, 2);
      assert.equal((await client.mg('r', 'v')).value!.toString(), 'from replica');
      await assert.rejects(client.set('r', 'x'), ConnectionError);
    } finally {
      client.close();
      peer.close();
    }
  });
});
