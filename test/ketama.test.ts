/**
 * The client's key-to-server mapping against the two it must equal: twemproxy's
 * (nutcracker, hash md5, distribution ketama) and libmemcached's weighted ketama
 * (pylibmc with ketama_weighted, and php-memcached with OPT_LIBKETAMA_COMPATIBLE). Both store 10,000 keys on real Mnemo nodes; asking
 * each node which keys it holds (lru_crawler metadump) tells where each key went.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { buildContinuum, Client, ketamaKeyHash, ketamaLabel, lookup, pointsFor } from '../src/client/index.js';
import { connectClient } from './helpers/client.js';
import { startMnemo, type RunningServer } from './helpers/mnemo.js';
import { startNutcracker, type RunningNutcracker } from './helpers/nutcracker.js';

const run = promisify(execFile);
/** Debian's Python modules belong to Debian's interpreter. */
const PYTHON = '/usr/bin/python3';
const KEYS = 10_000;

/** Weights where float rounding matters: in double arithmetic they would get 32, 320, 192, 192, 64 points. */
const FIVE_WEIGHTS = [1, 10, 6, 6, 2];
const THREE_WEIGHTS = [1, 2, 3];
const THREE_NAMES = ['alpha', 'beta', 'gamma'];

interface Case {
  /** Keys are `${prefix}${i}`; each case has its own, so one dump of the nodes serves all. */
  prefix: string;
  nodes: number;
  weights: number[];
  names?: string[];
}

const TWEMPROXY_CASES: Record<string, Case> = {
  three: { prefix: 'tw3:key:', nodes: 3, weights: THREE_WEIGHTS },
  five: { prefix: 'tw5:key:', nodes: 5, weights: FIVE_WEIGHTS },
  named: { prefix: 'twn:key:', nodes: 3, weights: THREE_WEIGHTS, names: THREE_NAMES },
};
const LIBMEMCACHED_CASES: Record<string, Case> = {
  three: { prefix: 'lm3:key:', nodes: 3, weights: THREE_WEIGHTS },
  five: { prefix: 'lm5:key:', nodes: 5, weights: FIVE_WEIGHTS },
};
/** php-memcached's OPT_LIBKETAMA_COMPATIBLE is the same libmemcached behaviour, reached from PHP. */
const PHP_CASE: Case = { prefix: 'php5:key:', nodes: 5, weights: FIVE_WEIGHTS };

let nodes: RunningServer[] = [];
let proxy: RunningNutcracker | undefined;
/** key -> index of the node holding it. */
const holder = new Map<string, number>();

function keysOf(c: Case): string[] {
  return Array.from({ length: KEYS }, (_, i) => `${c.prefix}${i}`);
}

function serverLines(c: Case): string[] {
  return nodes.slice(0, c.nodes).map((node, i) => `127.0.0.1:${node.port}:${c.weights[i]}${c.names ? ` ${c.names[i]}` : ''}`);
}

async function storeThroughTwemproxy(pool: string, c: Case): Promise<void> {
  const client = new Client({ servers: [`127.0.0.1:${proxy!.ports[pool]}`], poolSize: 4, timeout: 30_000 });
  try {
    const stored = await Promise.all(keysOf(c).map((key) => client.set(key, 'x')));
    assert.ok(stored.every(Boolean));
  } finally {
    client.close();
  }
}

async function storeThroughPylibmc(c: Case): Promise<void> {
  const script = `
import sys, pylibmc
servers, prefix, count = sys.argv[1].split(','), sys.argv[2], int(sys.argv[3])
client = pylibmc.Client(servers, behaviors={'ketama_weighted': True})
failed = client.set_multi(dict(('%s%d' % (prefix, i), b'x') for i in range(count)))
assert not failed, failed
print('ok')
`;
  const { stdout } = await run(PYTHON, ['-c', script, serverLines(c).join(','), c.prefix, String(KEYS)]);
  assert.equal(stdout.trim(), 'ok');
}

async function storeThroughPhpMemcached(c: Case): Promise<void> {
  const script = `
$m = new Memcached();
$m->setOption(Memcached::OPT_LIBKETAMA_COMPATIBLE, true);
foreach (explode(',', $argv[1]) as $server) { [$host, $port, $weight] = explode(':', $server); $m->addServer($host, (int)$port, (int)$weight); }
for ($i = 0; $i < (int)$argv[3]; $i++) { if (!$m->set($argv[2] . $i, 'x')) { fwrite(STDERR, $m->getResultMessage()); exit(1); } }
echo "ok";`;
  const { stdout } = await run('php', ['-r', script, serverLines(c).join(','), c.prefix, String(KEYS)]);
  assert.equal(stdout.trim(), 'ok');
}

async function dumpHolders(): Promise<void> {
  for (let i = 0; i < nodes.length; i++) {
    const raw = await connectClient(nodes[i]!.port);
    try {
      const dump = await raw.request('lru_crawler metadump all\r\n', 'END\r\n');
      for (const match of dump.matchAll(/^key=(\S+) /gm)) holder.set(decodeURIComponent(match[1]!), i);
    } finally {
      raw.close();
    }
  }
}

/** Keys where the client picks another node than the one holding the key, and the per-node counts. */
function compare(c: Case, hashBy: 'name' | 'address'): { mismatches: string[]; counts: number[] } {
  const servers = nodes
    .slice(0, c.nodes)
    .map((node, i) => ({ host: '127.0.0.1', port: node.port, weight: c.weights[i]!, ...(c.names ? { name: c.names[i]! } : {}) }));
  const client = new Client({ servers, hashBy });
  const indexOf = new Map(servers.map((server, i) => [`127.0.0.1:${server.port}`, i]));
  const mismatches: string[] = [];
  const counts = new Array<number>(c.nodes).fill(0);
  for (const key of keysOf(c)) {
    const held = holder.get(key);
    assert.notEqual(held, undefined, `${key} is on no node`);
    counts[held!]!++;
    if (indexOf.get(client.serverFor(key)) !== held) mismatches.push(key);
  }
  client.close();
  return { mismatches, counts };
}

before(async () => {
  nodes = await Promise.all(Array.from({ length: 5 }, () => startMnemo()));
  proxy = await startNutcracker(
    Object.entries(TWEMPROXY_CASES).map(([name, c]) => ({ name, servers: serverLines(c) })),
  );
  await Promise.all([
    ...Object.entries(TWEMPROXY_CASES).map(([pool, c]) => storeThroughTwemproxy(pool, c)),
    ...Object.values(LIBMEMCACHED_CASES).map((c) => storeThroughPylibmc(c)),
    storeThroughPhpMemcached(PHP_CASE),
  ]);
  await dumpHolders();
});

after(async () => {
  await proxy?.stop();
  await Promise.all(nodes.map((node) => node.stop()));
});

describe('ketama ring', () => {
  it("labels servers as twemproxy and libmemcached do", () => {
    assert.equal(ketamaLabel('10.0.0.1', 11211), '10.0.0.1');
    assert.equal(ketamaLabel('10.0.0.1', 11212), '10.0.0.1:11212');
    assert.equal(ketamaLabel('10.0.0.1', 11212, 'cache-a'), 'cache-a');
  });

  it('gives each server 160 points scaled by weight, rounded in float as the C code does', () => {
    assert.deepEqual([1, 1, 1].map((w) => pointsFor(w, 3, 3)), [160, 160, 160]);
    assert.deepEqual(THREE_WEIGHTS.map((w) => pointsFor(w, 6, 3)), [80, 160, 240]);
    assert.deepEqual(FIVE_WEIGHTS.map((w) => pointsFor(w, 25, 5)), [28, 320, 188, 188, 60]);
    assert.equal(Math.floor((1 / 25) * 160 / 4 * 5 + 0.0000000001) * 4, 32, 'double arithmetic would differ here');
    const continuum = buildContinuum([{ label: 'a', weight: 1 }, { label: 'b', weight: 1 }]);
    assert.equal(continuum.values.length, 320);
    for (let i = 1; i < continuum.values.length; i++) assert.ok(continuum.values[i - 1]! <= continuum.values[i]!);
  });

  it('sends a hash past the last point to the first point', () => {
    const continuum = buildContinuum([{ label: 'a', weight: 1 }, { label: 'b', weight: 1 }]);
    assert.equal(lookup(continuum, 0xffffffff), continuum.owners[0]);
    assert.equal(lookup(continuum, continuum.values[5]!), continuum.owners[5]);
    assert.equal(ketamaKeyHash(Buffer.from('foo')), Buffer.from('acbd18db4cc2f85cedef654fccc4a4d8', 'hex').readUInt32LE(0));
  });
});

describe('mapping of 10,000 keys', () => {
  for (const [pool, c] of Object.entries(TWEMPROXY_CASES)) {
    it(`equals twemproxy's for ${c.nodes} servers, weights ${c.weights.join(':')}${c.names ? ', hashed by name' : ''}`, () => {
      const { mismatches, counts } = compare(c, 'name');
      assert.deepEqual(mismatches.slice(0, 5), [], `pool ${pool}: ${mismatches.length} keys differ`);
      assert.ok(counts.every((count) => count > 0), `every node holds keys: ${counts}`);
    });
  }

  for (const c of Object.values(LIBMEMCACHED_CASES)) {
    it(`equals libmemcached's weighted ketama (pylibmc) for ${c.nodes} servers, weights ${c.weights.join(':')}`, () => {
      const { mismatches, counts } = compare(c, 'address');
      assert.deepEqual(mismatches.slice(0, 5), [], `${mismatches.length} keys differ`);
      // The weights show: the weight-10 server of five holds about 10/25 of the keys.
      const heaviest = c.weights.indexOf(Math.max(...c.weights));
      assert.ok(counts[heaviest]! > KEYS * (Math.max(...c.weights) / c.weights.reduce((a, b) => a + b)) * 0.7, `counts ${counts}`);
    });
  }

  it(`equals php-memcached's OPT_LIBKETAMA_COMPATIBLE for 5 servers, weights ${PHP_CASE.weights.join(':')}`, () => {
    const { mismatches } = compare(PHP_CASE, 'address');
    assert.deepEqual(mismatches.slice(0, 5), [], `${mismatches.length} keys differ`);
  });

  it('hashes the address instead of the name when asked (hashBy: address)', () => {
    const { mismatches } = compare(TWEMPROXY_CASES.named!, 'address');
    assert.ok(mismatches.length > KEYS / 10, 'a named pool places keys by name, not by address');
  });
});
