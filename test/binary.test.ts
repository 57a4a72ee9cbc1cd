/**
 * The binary protocol: the same request sequences sent to the real memcached and
 * to Mnemo, compared response by response (CAS values aside), plus flows that
 * need values only the server knows.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectClient, type RawClient } from './helpers/client.js';
import { deltaExtras, describe as describeResponse, parseResponses, request, storeExtras, u32, type BinaryRequest } from './helpers/binary.js';
import { startMemcached } from './helpers/memcached.js';
import { startMnemo, type RunningServer } from './helpers/mnemo.js';

const op = {
  get: 0x00, set: 0x01, add: 0x02, replace: 0x03, delete: 0x04, incr: 0x05, decr: 0x06, quit: 0x07, flush: 0x08,
  getq: 0x09, noop: 0x0a, version: 0x0b, getk: 0x0c, getkq: 0x0d, append: 0x0e, prepend: 0x0f, stat: 0x10,
  setq: 0x11, addq: 0x12, replaceq: 0x13, deleteq: 0x14, incrq: 0x15, decrq: 0x16, quitq: 0x17, flushq: 0x18,
  appendq: 0x19, prependq: 0x1a, verbosity: 0x1b, touch: 0x1c, gat: 0x1d, gatq: 0x1e, saslList: 0x20, saslAuth: 0x21,
  gatk: 0x23, gatkq: 0x24,
};

const END_OPAQUE = 0xdeadbeef;

interface Session {
  name: string;
  requests: BinaryRequest[];
  /** The server hangs up: read until it does. */
  closes?: boolean;
}

const set = (key: string, value: string, flags = 0, exptime = 0, opaque = 1): BinaryRequest => ({
  opcode: op.set, key, value, extras: storeExtras(flags, exptime), opaque,
});

const sessions: Session[] = [
  { name: 'set and get', requests: [set('a', 'hello', 7), { opcode: op.get, key: 'a', opaque: 2 }] },
  { name: 'get miss and getk miss', requests: [{ opcode: op.get, key: 'nope' }, { opcode: op.getk, key: 'nope' }] },
  { name: 'getk hit', requests: [set('a', 'v'), { opcode: op.getk, key: 'a' }] },
  {
    name: 'quiet gets answer only hits',
    requests: [set('a', '1'), { opcode: op.getq, key: 'nope', opaque: 5 }, { opcode: op.getq, key: 'a', opaque: 6 }, { opcode: op.getkq, key: 'a', opaque: 7 }, { opcode: op.getkq, key: 'no', opaque: 8 }],
  },
  { name: 'add on existing and missing', requests: [set('a', '1'), { opcode: op.add, key: 'a', value: 'x', extras: storeExtras(0, 0) }, { opcode: op.add, key: 'b', value: 'y', extras: storeExtras(0, 0) }] },
  { name: 'replace on missing and existing', requests: [{ opcode: op.replace, key: 'a', value: 'x', extras: storeExtras(0, 0) }, set('a', '1'), { opcode: op.replace, key: 'a', value: 'y', extras: storeExtras(3, 0) }, { opcode: op.get, key: 'a' }] },
  { name: 'quiet stores answer only errors', requests: [{ opcode: op.setq, key: 'a', value: '1', extras: storeExtras(0, 0) }, { opcode: op.addq, key: 'a', value: '2', extras: storeExtras(0, 0) }, { opcode: op.replaceq, key: 'zz', value: '2', extras: storeExtras(0, 0) }, { opcode: op.get, key: 'a' }] },
  { name: 'append and prepend', requests: [{ opcode: op.append, key: 'a', value: 'x' }, set('a', 'mid'), { opcode: op.append, key: 'a', value: '>' }, { opcode: op.prepend, key: 'a', value: '<' }, { opcode: op.appendq, key: 'a', value: '!' }, { opcode: op.prependq, key: 'zz', value: '!' }, { opcode: op.get, key: 'a' }] },
  { name: 'set with a wrong cas', requests: [set('a', '1'), { opcode: op.set, key: 'a', value: '2', extras: storeExtras(0, 0), cas: 999999n }, { opcode: op.set, key: 'nope', value: '2', extras: storeExtras(0, 0), cas: 5n }] },
  { name: 'delete', requests: [set('a', '1'), { opcode: op.delete, key: 'a', cas: 999999n }, { opcode: op.delete, key: 'a' }, { opcode: op.delete, key: 'a' }, { opcode: op.deleteq, key: 'a' }, set('b', '1'), { opcode: op.deleteq, key: 'b' }, { opcode: op.get, key: 'b' }] },
  {
    name: 'incr and decr',
    requests: [
      { opcode: op.incr, key: 'n', extras: deltaExtras(1n, 10n, 0xffffffff) },
      { opcode: op.incr, key: 'n', extras: deltaExtras(1n, 10n, 0) },
      { opcode: op.incr, key: 'n', extras: deltaExtras(5n, 10n, 0) },
      { opcode: op.decr, key: 'n', extras: deltaExtras(100n, 0n, 0) },
      { opcode: op.incrq, key: 'n', extras: deltaExtras(7n, 0n, 0) },
      { opcode: op.decrq, key: 'zz', extras: deltaExtras(1n, 0n, 0xffffffff) },
      { opcode: op.get, key: 'n' },
      { opcode: op.incr, key: 'n', extras: deltaExtras(18446744073709551615n, 0n, 0) },
    ],
  },
  { name: 'incr on a non-number', requests: [set('a', 'abc'), { opcode: op.incr, key: 'a', extras: deltaExtras(1n, 0n, 0) }] },
  { name: 'touch and gat', requests: [set('a', 'v', 9), { opcode: op.touch, key: 'a', extras: u32(100) }, { opcode: op.touch, key: 'zz', extras: u32(100) }, { opcode: op.gat, key: 'a', extras: u32(100) }, { opcode: op.gatk, key: 'a', extras: u32(100) }, { opcode: op.gatq, key: 'zz', extras: u32(1) }, { opcode: op.gatkq, key: 'a', extras: u32(1) }] },
  { name: 'touch to expire', requests: [set('a', 'v'), { opcode: op.touch, key: 'a', extras: u32(0xffffffff) }, { opcode: op.get, key: 'a' }] },
  { name: 'flush', requests: [set('a', 'v'), { opcode: op.flush }, { opcode: op.get, key: 'a' }, set('a', 'v'), { opcode: op.flushq }, { opcode: op.get, key: 'a' }, set('a', 'v'), { opcode: op.flush, extras: u32(100) }, { opcode: op.get, key: 'a' }, { opcode: op.flush }] },
  { name: 'version and noop', requests: [{ opcode: op.version }, { opcode: op.noop, opaque: 42 }] },
  { name: 'unknown opcode without a body', requests: [{ opcode: 0x50 }, { opcode: op.version }] },
  { name: 'sasl without -S', requests: [{ opcode: op.saslList }] },
  { name: 'opaque is echoed', requests: [{ opcode: op.get, key: 'zz', opaque: 0x01020304 }, set('a', '1', 0, 0, 77)] },
  { name: 'quit', requests: [set('a', '1'), { opcode: op.quit }, { opcode: op.get, key: 'a' }], closes: true },
  { name: 'quitq', requests: [set('a', '1'), { opcode: op.quitq }, { opcode: op.get, key: 'a' }], closes: true },
  { name: 'get with extras is a protocol error', requests: [{ opcode: op.get, key: 'a', extras: u32(1) }], closes: true },
  { name: 'set without extras is a protocol error', requests: [{ opcode: op.set, key: 'a', value: 'x' }], closes: true },
  { name: 'key longer than the body', requests: [{ opcode: op.get, key: 'abc', bodyLength: 1 }], closes: true },
  { name: 'key over 250 bytes', requests: [{ opcode: op.get, key: 'k'.repeat(251) }], closes: true },
  { name: 'bad magic closes', requests: [{ opcode: op.get, key: 'a' }, { opcode: op.get, key: 'a', magic: 0x81 }], closes: true },
  { name: 'value too large is swallowed', requests: [set('big', 'x'), set('big', 'x'.repeat(1_100_000)), { opcode: op.get, key: 'big' }] },
];

function splitResponses(data: Buffer): string[] {
  const [responses] = parseResponses(data);
  return responses.map(describeResponse);
}

async function play(port: number, session: Session): Promise<string[]> {
  const setup = await connectClient(port);
  assert.equal(await setup.request('flush_all\r\n'), 'OK\r\n');
  setup.close();
  const client = await connectClient(port);
  try {
    const bytes = Buffer.concat(session.requests.map(request));
    if (session.closes) {
      client.send(bytes);
      const { data, closed } = await client.readToClose(3000);
      return [...splitResponses(Buffer.from(data, 'latin1')), closed ? '<closed>' : '<open>'];
    }
    client.send(Buffer.concat([bytes, request({ opcode: op.noop, opaque: END_OPAQUE })]));
    const data = await client.readUntil((got) => parseResponses(got)[0].some((r) => r.opaque === END_OPAQUE));
    return splitResponses(data).slice(0, -1);
  } finally {
    client.close();
  }
}

describe('binary differential: Mnemo answers as memcached does', () => {
  let memcached: { port: number; stop(): Promise<void> };
  let mnemo: RunningServer;

  before(async () => {
    memcached = await startMemcached(['-m', '64']);
    mnemo = await startMnemo(['-m', '64']);
  });

  after(async () => {
    await mnemo?.stop();
    await memcached?.stop();
  });

  for (const session of sessions) {
    it(session.name, async () => {
      assert.deepEqual(await play(mnemo.port, session), await play(memcached.port, session));
    });
  }
});

describe('binary protocol', () => {
  let mnemo: RunningServer;
  let client: RawClient;

  before(async () => {
    mnemo = await startMnemo();
    client = await connectClient(mnemo.port);
  });

  after(async () => {
    client?.close();
    await mnemo?.stop();
  });

  async function exchange(...requests: BinaryRequest[]): Promise<ReturnType<typeof parseResponses>[0]> {
    client.send(Buffer.concat([...requests.map(request), request({ opcode: op.noop, opaque: END_OPAQUE })]));
    const data = await client.readUntil((got) => parseResponses(got)[0].some((r) => r.opaque === END_OPAQUE));
    return parseResponses(data)[0].slice(0, -1);
  }

  it('compares and swaps with the CAS a get returned', async () => {
    const [stored] = await exchange(set('c', 'one'));
    assert.notEqual(stored!.cas, 0n);
    const [got] = await exchange({ opcode: op.get, key: 'c' });
    assert.equal(got!.cas, stored!.cas);
    const [swapped] = await exchange({ opcode: op.set, key: 'c', value: 'two', extras: storeExtras(0, 0), cas: got!.cas });
    assert.equal(swapped!.status, 0);
    const [stale] = await exchange({ opcode: op.set, key: 'c', value: 'three', extras: storeExtras(0, 0), cas: got!.cas });
    assert.equal(stale!.status, 0x02);
    const [deleted] = await exchange({ opcode: op.delete, key: 'c', cas: swapped!.cas });
    assert.equal(deleted!.status, 0);
  });

  it('lists statistics by group, ending with an empty response', async () => {
    const general = await exchange({ opcode: op.stat });
    assert.equal(general.at(-1)!.key, '');
    const names = general.map((r) => r.key);
    for (const name of ['pid', 'uptime', 'curr_items', 'get_hits', 'limit_maxbytes']) assert.ok(names.includes(name), name);
    const settings = await exchange({ opcode: op.stat, key: 'settings' });
    assert.equal(settings.find((r) => r.key === 'maxbytes')!.value.toString(), String(64 * 1024 * 1024));
    const [missing] = await exchange({ opcode: op.stat, key: 'nonsense' });
    assert.equal(missing!.status, 0x01);
  });

  it('answers opcodes memcached 1.6 lacks (verbosity too) with "Unknown command" and stays in step', async () => {
    // memcached would also swallow the next request's first bytes here; Mnemo keeps the connection usable.
    const responses = await exchange({ opcode: op.verbosity, extras: u32(1) }, { opcode: 0x50, key: 'k', value: 'v' }, { opcode: op.version });
    assert.deepEqual(responses.map((r) => [r.opcode, r.status, r.value.toString()]).slice(0, 2), [
      [op.verbosity, 0x81, 'Unknown command'],
      [0x50, 0x81, 'Unknown command'],
    ]);
    assert.match(responses[2]!.value.toString(), /^1\.6\.18-mnemo-/);
  });

  it('runs a quiet pipeline and answers the noop at its end', async () => {
    const responses = await exchange(
      { opcode: op.setq, key: 'q1', value: 'a', extras: storeExtras(0, 0) },
      { opcode: op.setq, key: 'q2', value: 'b', extras: storeExtras(0, 0) },
      { opcode: op.getkq, key: 'q1', opaque: 1 },
      { opcode: op.getkq, key: 'missing', opaque: 2 },
      { opcode: op.getkq, key: 'q2', opaque: 3 },
    );
    assert.deepEqual(responses.map((r) => [r.opaque, r.key, r.value.toString()]), [[1, 'q1', 'a'], [3, 'q2', 'b']]);
  });
});
