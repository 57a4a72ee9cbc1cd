/**
 * The `stats` counters per protocol: the same operations over text, meta and
 * binary, sent to the real memcached and to Mnemo, must leave the same counters.
 * memcached's quirks are the reference: `mg <missing> T…` counts a get miss (only
 * a hit counts as a touch), and a too-large binary set leaves store_too_large alone.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { deltaExtras, parseResponses, request, storeExtras, u32, type BinaryRequest } from './helpers/binary.js';
import { connectClient, type RawClient } from './helpers/client.js';
import { startMemcached } from './helpers/memcached.js';
import { startMnemo, type RunningServer } from './helpers/mnemo.js';

/**
 * The counters memcached and Mnemo both keep for commands. Left out: get_flushed
 * and curr_items, because memcached drops flushed items lazily (a get of one counts
 * get_flushed, and it stays in curr_items until then) while Mnemo's store drops
 * them at once (a store property, not a protocol one).
 */
const COUNTERS = [
  'cmd_get', 'cmd_set', 'cmd_flush', 'cmd_touch', 'get_hits', 'get_misses',
  'delete_misses', 'delete_hits', 'incr_misses', 'incr_hits', 'decr_misses', 'decr_hits',
  'cas_misses', 'cas_hits', 'cas_badval', 'touch_hits', 'touch_misses', 'store_too_large',
  'store_no_memory', 'total_items',
];

const TOO_LARGE = 'x'.repeat(1024 * 1024 + 10);

const TEXT = [
  'set a 0 0 1\r\n1\r\n', 'get a\r\n', 'get missing\r\n', 'gets a missing a\r\n',
  'add a 0 0 1\r\n2\r\n', 'replace missing 0 0 1\r\n2\r\n', 'append a 0 0 1\r\n2\r\n', 'prepend missing 0 0 1\r\n2\r\n',
  'cas a 0 0 1 1\r\n3\r\n', 'cas missing 0 0 1 1\r\n3\r\n',
  'incr n 1\r\n', 'set n 0 0 1\r\n5\r\n', 'incr n 2\r\n', 'decr n 1\r\n', 'decr missing 1\r\n', 'incr a 1\r\n',
  'touch a 100\r\n', 'touch missing 100\r\n', 'gat 100 a missing\r\n', 'gats 0 a\r\n',
  'delete a\r\n', 'delete a\r\n', `set big 0 0 ${TOO_LARGE.length}\r\n${TOO_LARGE}\r\n`,
  'set f 0 0 1\r\n1\r\n', 'flush_all\r\n', 'get f\r\n',
].join('');

const META = [
  'ms a 1\r\n1\r\n', 'mg a v\r\n', 'mg missing v\r\n', 'mg a T30 v\r\n', 'mg missing T30 v\r\n', 'mg missing T30 q\r\n',
  'ms a 1 MA\r\n2\r\n', 'ms missing 1 MR\r\n2\r\n', 'ms a 1 C1\r\n3\r\n', 'ms missing 1 C1\r\n3\r\n', 'ms a 1 ME\r\n3\r\n',
  'ma n\r\n', 'ma n N0 J5\r\n', 'ma n\r\n', 'ma n MD\r\n', 'ma missing MD\r\n',
  'mg vivify N30 v\r\n', 'mg a s t\r\n', 'md a\r\n', 'md a\r\n', `ms big ${TOO_LARGE.length}\r\n${TOO_LARGE}\r\n`,
  'ms f 1\r\n1\r\n', 'flush_all\r\n', 'mg f v\r\n', 'mn\r\n',
].join('');

const NOT_CREATE = 0xffffffff;
const BINARY: BinaryRequest[] = [
  { opcode: 0x01, key: 'a', extras: storeExtras(0, 0), value: '1' },
  { opcode: 0x00, key: 'a' }, { opcode: 0x00, key: 'missing' }, { opcode: 0x0c, key: 'a' }, { opcode: 0x0d, key: 'missing' },
  { opcode: 0x02, key: 'a', extras: storeExtras(0, 0), value: '2' },
  { opcode: 0x03, key: 'missing', extras: storeExtras(0, 0), value: '2' },
  { opcode: 0x0e, key: 'a', value: '2' }, { opcode: 0x0f, key: 'missing', value: '2' },
  { opcode: 0x01, key: 'a', extras: storeExtras(0, 0), value: '3', cas: 1n },
  { opcode: 0x03, key: 'missing', extras: storeExtras(0, 0), value: '3', cas: 1n },
  { opcode: 0x05, key: 'n', extras: deltaExtras(1n, 0n, NOT_CREATE) },
  { opcode: 0x05, key: 'n', extras: deltaExtras(1n, 5n, 0) },
  { opcode: 0x05, key: 'n', extras: deltaExtras(2n, 0n, 0) },
  { opcode: 0x06, key: 'n', extras: deltaExtras(1n, 0n, 0) },
  { opcode: 0x06, key: 'missing', extras: deltaExtras(1n, 0n, NOT_CREATE) },
  { opcode: 0x1c, key: 'a', extras: u32(100) }, { opcode: 0x1c, key: 'missing', extras: u32(100) },
  { opcode: 0x1d, key: 'a', extras: u32(100) }, { opcode: 0x1e, key: 'missing', extras: u32(100) },
  { opcode: 0x04, key: 'a' }, { opcode: 0x04, key: 'a' },
  { opcode: 0x01, key: 'big', extras: storeExtras(0, 0), value: TOO_LARGE },
  { opcode: 0x01, key: 'f', extras: storeExtras(0, 0), value: '1' },
  { opcode: 0x08 }, { opcode: 0x00, key: 'f' },
];

async function stats(port: number): Promise<Record<string, string>> {
  const client = await connectClient(port);
  try {
    const text = await client.request('stats\r\n', 'END\r\n');
    const all: Record<string, string> = {};
    for (const line of text.split('\r\n')) {
      const [, name, value] = line.split(' ');
      if (name !== undefined && value !== undefined) all[name] = value;
    }
    const picked: Record<string, string> = {};
    for (const name of COUNTERS) picked[name] = all[name] ?? '<missing>';
    return picked;
  } finally {
    client.close();
  }
}

/** Sends one protocol's operations on a fresh connection and waits for the last reply. */
async function play(port: number, protocol: 'text' | 'meta' | 'binary'): Promise<void> {
  const client: RawClient = await connectClient(port);
  try {
    if (protocol === 'binary') {
      // A noop answers after everything before it: its reply ends the run.
      client.send(Buffer.concat([...BINARY.map((r) => request(r)), request({ opcode: 0x0a, opaque: 0xfeed })]));
      await client.readUntil((got) => parseResponses(got)[0].some((r) => r.opcode === 0x0a && r.opaque === 0xfeed));
    } else {
      client.send((protocol === 'text' ? TEXT : META) + 'version\r\n');
      await client.readUntil((got) => /VERSION [^\r]*\r\n$/.test(got.toString('latin1')));
    }
  } finally {
    client.close();
  }
}

describe('stats counters per protocol match memcached', () => {
  let memcached: { port: number; stop(): Promise<void> };
  let mnemo: RunningServer;

  before(async () => {
    [memcached, mnemo] = await Promise.all([startMemcached(), startMnemo()]);
  });
  after(async () => {
    await Promise.all([memcached.stop(), mnemo.stop()]);
  });

  for (const protocol of ['text', 'meta', 'binary'] as const) {
    it(`${protocol}: the same operations leave the same counters`, async () => {
      for (const port of [memcached.port, mnemo.port]) {
        const reset = await connectClient(port);
        assert.equal(await reset.request('flush_all\r\nstats reset\r\n', 'RESET\r\n'), 'OK\r\nRESET\r\n');
        reset.close();
      }
      await play(memcached.port, protocol);
      await play(mnemo.port, protocol);
      assert.deepEqual(await stats(mnemo.port), await stats(memcached.port));
    });
  }

  it("LRU hits (stats items hits_to_*): gets and mg count; touch, gat and mg with T do not", async () => {
    const hits: string[] = [];
    for (const port of [memcached.port, mnemo.port]) {
      const client = await connectClient(port);
      try {
        await client.request('flush_all\r\nstats reset\r\n', 'RESET\r\n');
        await client.request('set k 0 0 1\r\nx\r\nget k\r\nmg k v\r\nmg k T30 v\r\nmg k T30\r\ngat 10 k\r\ntouch k 10\r\ngets k\r\nmn\r\n', 'MN\r\n');
        const items = await client.request('stats items\r\n', 'END\r\n');
        hits.push(items.split('\r\n').filter((line) => /^STAT items:1:hits_to_/.test(line)).join('\n'));
      } finally {
        client.close();
      }
    }
    assert.equal(hits[1], hits[0]);
    const total = [...hits[1]!.matchAll(/ (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    assert.equal(total, 3, 'get, mg v and gets');
  });
});
