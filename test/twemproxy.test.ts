/**
 * Mnemo behind twemproxy: three nodes behind Debian's nutcracker (md5, ketama,
 * auto_eject_hosts), driven by pymemcache as an application would drive it. Keys
 * spread evenly; a killed node is ejected and the other keys stay readable; the node
 * restarted on its port rejoins the ring.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { connectClient } from './helpers/client.js';
import { startMnemo, type RunningServer } from './helpers/mnemo.js';
import { NUTCRACKER_BIN, startNutcracker, type RunningNutcracker } from './helpers/nutcracker.js';

const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';
const KEYS = 10_000;
const PREFIX = 'cluster:key:';
/** twemproxy's server_retry_timeout here: how long an ejected node stays out. */
const RETRY_MS = 1500;

/**
 * pymemcache through the proxy. Commands (argv[2]) print one JSON line:
 * - fill: set_many then get_many of keys 0..count-1, in pipelined batches;
 * - read_until_ejected KEYS...: gets the keys until the proxy answers without an
 *   error (the dead node is out of the ring), counting the errors before that;
 * - read KEYS...: get_many of the keys, reporting which were hits with the right value;
 * - set KEYS...: set_many of the keys.
 */
const PYMEMCACHE = `
import json, sys, time
from pymemcache.client.base import Client
port, command, prefix = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def connect():
    return Client(('127.0.0.1', port), connect_timeout=2, timeout=3)
def batches(items, size):
    for i in range(0, len(items), size):
        yield items[i:i + size]
def value(key):
    return ('v-' + key).encode()
client = connect()
if command == 'fill':
    keys = ['%s%d' % (prefix, i) for i in range(int(sys.argv[4]))]
    failed = []
    for batch in batches(keys, 1000):
        failed += client.set_many(dict((k, value(k)) for k in batch), noreply=False)
    read = 0
    for batch in batches(keys, 100):
        got = client.get_many(batch)
        read += sum(1 for k in batch if got.get(k) == value(k))
    print(json.dumps({'failed': len(failed), 'read': read}))
elif command == 'read_until_ejected':
    keys = sys.argv[4:]
    errors, deadline = 0, time.time() + 10
    while time.time() < deadline:
        try:
            got = client.get_many(keys)
            print(json.dumps({'errors': errors, 'hits': len(got)}))
            break
        except Exception as error:
            errors += 1
            client.close()
            client = connect()
            time.sleep(0.05)
    else:
        print(json.dumps({'errors': errors, 'hits': None}))
elif command == 'read':
    keys = sys.argv[4:]
    hits = []
    for batch in batches(keys, 100):
        got = client.get_many(batch)
        hits += [k for k in batch if got.get(k) == value(k)]
    print(json.dumps({'hits': hits}))
elif command == 'set':
    keys = sys.argv[4:]
    failed = client.set_many(dict((k, value(k)) for k in keys), noreply=False)
    print(json.dumps({'failed': len(failed)}))
`;

async function pymemcache<T>(command: string, args: string[]): Promise<T> {
  const { stdout } = await run(PYTHON, ['-c', PYMEMCACHE, String(proxy!.ports.cluster), command, PREFIX, ...args], { maxBuffer: 16 * 1024 * 1024 });
  return JSON.parse(stdout) as T;
}

async function statsOf(port: number): Promise<Record<string, string>> {
  const raw = await connectClient(port);
  try {
    const text = await raw.request('stats\r\n', 'END\r\n');
    return Object.fromEntries([...text.matchAll(/^STAT (\S+) (.*)\r$/gm)].map((m) => [m[1]!, m[2]!]));
  } finally {
    raw.close();
  }
}

async function keysOn(port: number): Promise<string[]> {
  const raw = await connectClient(port);
  try {
    const dump = await raw.request('lru_crawler metadump all\r\n', 'END\r\n');
    return [...dump.matchAll(/^key=(\S+) /gm)].map((m) => decodeURIComponent(m[1]!));
  } finally {
    raw.close();
  }
}

async function poolStats(): Promise<Record<string, unknown>> {
  return (await proxy!.stats()).cluster as Record<string, unknown>;
}

let nodes: RunningServer[] = [];
let proxy: RunningNutcracker | undefined;

before(async () => {
  nodes = await Promise.all([0, 1, 2].map(() => startMnemo()));
  proxy = await startNutcracker([
    {
      name: 'cluster',
      // Named, as in examples/twemproxy: the ring (and so the spread) does not depend on the ports picked.
      servers: nodes.map((node, i) => `127.0.0.1:${node.port}:1 mnemo-${i + 1}`),
      autoEject: true,
      failureLimit: 2,
      retryTimeoutMs: RETRY_MS,
      timeoutMs: 2000,
    },
  ]);
});

after(async () => {
  await proxy?.stop();
  await Promise.all(nodes.map((node) => node.stop()));
});

describe('three Mnemo nodes behind twemproxy', () => {
  /** The keys on the node that is killed, and on the other two. */
  let victimKeys: string[] = [];
  let survivorKeys: string[] = [];
  let victimPort = 0;

  it('stores and reads 10,000 keys with pymemcache, spread within 15% of even', async () => {
    const filled = await pymemcache<{ failed: number; read: number }>('fill', [String(KEYS)]);
    assert.deepEqual(filled, { failed: 0, read: KEYS });
    const counts = await Promise.all(nodes.map(async (node) => Number((await statsOf(node.port)).curr_items)));
    assert.equal(counts.reduce((a, b) => a + b), KEYS);
    for (const count of counts) assert.ok(Math.abs(count - KEYS / 3) <= 0.15 * (KEYS / 3), `keys per node ${counts}`);
  });

  it('ejects a killed node; the keys on the other nodes stay readable', async () => {
    const victim = nodes[1]!;
    victimPort = victim.port;
    victimKeys = await keysOn(victim.port);
    survivorKeys = [...(await keysOn(nodes[0]!.port)), ...(await keysOn(nodes[2]!.port))];
    assert.equal(victimKeys.length + survivorKeys.length, KEYS);
    await victim.stop();

    // The first requests for the dead node's keys fail (server_failure_limit: 2); then it is ejected
    // and the same keys are plain misses on the nodes that now own them.
    const probe = victimKeys.slice(0, 20);
    const ejected = await pymemcache<{ errors: number; hits: number | null }>('read_until_ejected', probe);
    assert.ok(ejected.errors >= 1, 'the proxy reported the dead node before ejecting it');
    assert.equal(ejected.hits, 0, 'after ejection the dead node\'s keys are misses elsewhere');

    const { hits } = await pymemcache<{ hits: string[] }>('read', survivorKeys);
    assert.equal(hits.length, survivorKeys.length, 'every key on a live node is still readable');

    let ejects = 0;
    for (let tries = 0; tries < 30 && ejects === 0; tries++) {
      ejects = Number((await poolStats()).server_ejects ?? 0);
      if (ejects === 0) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(ejects >= 1, 'nutcracker counted the ejection (server_ejects)');

    // Writes for the dead node's keys now land on the survivors.
    const moved = victimKeys.slice(0, 50);
    assert.deepEqual(await pymemcache('set', moved), { failed: 0 });
    const onSurvivors = new Set([...(await keysOn(nodes[0]!.port)), ...(await keysOn(nodes[2]!.port))]);
    assert.ok(moved.every((key) => onSurvivors.has(key)));
  });

  it('ships an example config that nutcracker accepts', async () => {
    const example = fileURLToPath(new URL('../examples/twemproxy/nutcracker.yml', import.meta.url));
    const { stdout, stderr } = await run(NUTCRACKER_BIN, ['-t', '-c', example]);
    assert.match(stdout + stderr, /syntax is ok/);
  });

  it('takes the node back when it is restarted on the same port', async () => {
    assert.ok(victimPort > 0, 'runs after the ejection test');
    nodes[1] = await startMnemo(['-p', String(victimPort)]);
    const sample = victimKeys.slice(100, 200);
    // The node rejoins once server_retry_timeout has passed since its ejection; until then
    // writes for its keys still go to the survivors.
    const deadline = Date.now() + RETRY_MS + 5000;
    let onRestarted: string[] = [];
    while (Date.now() < deadline) {
      assert.deepEqual(await pymemcache('set', sample), { failed: 0 });
      onRestarted = await keysOn(victimPort);
      if (onRestarted.length === sample.length) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert.deepEqual(onRestarted.sort(), [...sample].sort(), 'its keys are written to it again');
    const { hits } = await pymemcache<{ hits: string[] }>('read', sample);
    assert.equal(hits.length, sample.length);
  });
});
