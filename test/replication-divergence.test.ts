/**
 * Replicas end up serving the same thing, key by key, whatever made them differ:
 * a delete racing reads on another node with --data-dir, items and versions that a
 * crash left disagreeing, and random kill -9 while every node takes writes (issue 13, defect 2).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { open } from 'lmdb';
import { connectClient, type RawClient } from './helpers/client.js';
import { freePort } from './helpers/memcached.js';
import { startMnemo, type RunningServer } from './helpers/mnemo.js';
import { Random } from './helpers/random.js';

const root = mkdtempSync(join(tmpdir(), 'mnemo-diverge-'));
after(() => rmSync(root, { recursive: true, force: true }));

const started: RunningServer[] = [];
after(async () => {
  for (const server of started) await stopServer(server);
});

/** SIGTERM, then SIGKILL if the server has not exited 10 s later: no wait lasts forever. */
async function stopServer(server: RunningServer): Promise<void> {
  const timer = setTimeout(() => server.process.kill('SIGKILL'), 10_000);
  await server.stop();
  clearTimeout(timer);
}

interface Node {
  server: RunningServer;
  client: RawClient;
  replPort: number;
  dir: string;
  peers: number[];
  extra: string[];
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function startNode(replPort: number, peers: number[], dir: string, extra: string[]): Promise<Node> {
  const args = ['--replication-port', String(replPort), ...peers.flatMap((port) => ['--peer', `127.0.0.1:${port}`]), '-H', dir, ...extra];
  const server = await startMnemo(args);
  started.push(server);
  return { server, client: await connectClient(server.port), replPort, dir, peers, extra };
}

/** Starts n nodes with data dirs, every one listing every other. */
async function startMesh(n: number, extra: string[]): Promise<Node[]> {
  const ports = await Promise.all(Array.from({ length: n }, () => freePort()));
  return Promise.all(ports.map((port, i) => startNode(port, ports.filter((p) => p !== port), mkdtempSync(join(root, `n${i}-`)), ['--node-id', `n${i}`, ...extra])));
}

async function restart(node: Node): Promise<void> {
  node.client.close();
  const fresh = await startNode(node.replPort, node.peers, node.dir, node.extra);
  node.server = fresh.server;
  node.client = fresh.client;
}

async function kill9(node: Node): Promise<void> {
  node.client.close();
  const child = node.server.process;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

async function stopAll(nodes: Node[]): Promise<void> {
  for (const node of nodes) {
    node.client.close();
    await stopServer(node.server);
  }
}

async function stat(client: RawClient, name: string): Promise<string | undefined> {
  const stats = await client.request('stats\r\n', 'END\r\n');
  return new RegExp(`STAT ${name} (\\S+)\\r\\n`).exec(stats)?.[1];
}

async function waitFor(what: string, done: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Each key's value on the node ('' when missing), asked one get per key so a whole-reply match cannot hide one. */
async function valuesOf(client: RawClient, keys: string[]): Promise<Map<string, string>> {
  const reply = await client.request(`${keys.map((key) => `get ${key}\r\n`).join('')}mn\r\n`, 'MN\r\n');
  const values = new Map<string, string>();
  const parts = reply.split('END\r\n');
  keys.forEach((key, i) => {
    const match = /^VALUE \S+ (\d+) \d+\r\n([^\r]*)\r\n$/.exec(parts[i]!);
    values.set(key, match === null ? '' : `${match[1]}:${match[2]}`);
  });
  return values;
}

/** Keys on which the nodes do not all serve the same, with what each serves. */
async function differences(nodes: Node[], keys: string[]): Promise<string[]> {
  const views = await Promise.all(nodes.map((node) => valuesOf(node.client, keys)));
  return keys.filter((key) => views.some((view) => view.get(key) !== views[0]!.get(key))).map((key) => `${key}: ${views.map((view) => JSON.stringify(view.get(key))).join(' / ')}`);
}

/** Waits until every node serves the same for every key; fails naming the keys that still differ. */
async function converge(nodes: Node[], keys: string[], timeoutMs: number): Promise<number> {
  const start = Date.now();
  let diff: string[] = [];
  while (Date.now() - start < timeoutMs) {
    diff = await differences(nodes, keys);
    if (diff.length === 0) return Date.now() - start;
    await sleep(100);
  }
  assert.fail(`${diff.length} keys still differ after ${timeoutMs} ms:\n${diff.slice(0, 20).join('\n')}`);
}

const RECORD_HEADER = 16;

/** Writes a record straight into a stopped node's data dir (the layout disk.ts keeps: flags, exptime, cas, value). */
async function writeRecords(dir: string, put: Record<string, string | null>): Promise<void> {
  const env = open({ path: join(dir, 'lmdb'), maxDbs: 4 });
  const items = env.openDB<Buffer, Buffer>({ name: 'items', encoding: 'binary', keyEncoding: 'binary' });
  for (const [key, value] of Object.entries(put)) {
    if (value === null) items.removeSync(Buffer.from(key));
    else {
      const record = Buffer.alloc(RECORD_HEADER + value.length);
      record.writeDoubleBE(1, 8);
      record.write(value, RECORD_HEADER, 'latin1');
      items.putSync(Buffer.from(key), record);
    }
  }
  await env.close();
}

describe('replicas converge on what they serve', () => {
  it('2 nodes with --data-dir: 200 keys deleted on one while a client reads them on the other end missing on both', async (t) => {
    const nodes = await startMesh(2, ['--peer-wait', '1', '--anti-entropy-interval', '0.2']);
    const [a, b] = nodes as [Node, Node];
    const keys = Array.from({ length: 200 }, (_, i) => `s${i}`);
    try {
      await waitFor('the link', async () => (await stat(b.client, 'peer_0_state')) === 'connected');
      await a.client.request(`${keys.map((key) => `set ${key} 0 0 7 noreply\r\nsession\r\n`).join('')}mn\r\n`, 'MN\r\n');
      // B has them all, in memory and committed on its disk (what a lookup could bring back).
      await waitFor('the sets on B', async () => (await stat(b.client, 'disk_items')) === '200' && (await stat(b.client, 'curr_items')) === '200');
      let reading = true;
      let reads = 0;
      const reader = (async () => {
        const client = await connectClient(b.server.port);
        try {
          while (reading) {
            await client.request(`${keys.map((key) => `get ${key}\r\n`).join('')}mn\r\n`, 'MN\r\n');
            reads++;
          }
        } finally {
          client.close();
        }
      })();
      for (const key of keys) assert.equal(await a.client.request(`delete ${key}\r\n`), 'DELETED\r\n');
      await waitFor('the tombstones on B', async () => Number(await stat(b.client, 'repl_tombstones')) === 200);
      await sleep(100); // reads go on after the deletes arrived
      reading = false;
      await reader;
      const ms = await converge(nodes, keys, 5000);
      const left = [...(await valuesOf(b.client, keys))].filter(([, value]) => value !== '');
      assert.deepEqual(left, [], 'every key is missing on B');
      t.diagnostic(`${reads} read rounds on B during the deletes; converged ${ms} ms after`);
    } finally {
      await stopAll(nodes);
    }
  });

  it('items and versions that disagree (a crash between their commits) are repaired: served state is compared, not only versions', async (t) => {
    const common = ['--peer-wait', '1', '--anti-entropy-interval', '0.2'];
    const nodes = await startMesh(2, common);
    const [a, b] = nodes as [Node, Node];
    const keys = ['gone', 'lost', 'orphan', 'kept'];
    try {
      await waitFor('the link', async () => (await stat(b.client, 'peer_0_state')) === 'connected');
      assert.equal(await a.client.request('set gone 0 0 3\r\nold\r\nset lost 0 0 4\r\nlive\r\nset kept 0 0 4\r\nkept\r\n'), 'STORED\r\nSTORED\r\nSTORED\r\n');
      assert.equal(await a.client.request('delete gone\r\n'), 'DELETED\r\n');
      await waitFor('the changes on B', async () => (await stat(b.client, 'repl_tombstones')) === '1' && (await stat(b.client, 'disk_items')) === '2');
      b.client.close();
      await b.server.stop();
      // B's disk now disagrees with its versions: a deleted key is back, a live one is gone,
      // and a key no node has a version of is there (its version never committed).
      await writeRecords(b.dir, { gone: 'old', lost: null, orphan: 'only-b' });
      await restart(b);
      const ms = await converge(nodes, keys, 8000);
      assert.deepEqual([...(await valuesOf(a.client, keys))], [['gone', ''], ['lost', '0:live'], ['orphan', '0:only-b'], ['kept', '0:kept']]);
      assert.equal(await stat(b.client, 'repl_audit_unserved'), '1');
      t.diagnostic(`converged ${ms} ms after the restart`);
    } finally {
      await stopAll(nodes);
    }
  });

  it('3 nodes with -H, writes on every node and random kill -9 and restarts: every node serves the same, key by key', async (t) => {
    const seed = Number(process.env.CHAOS_SEED ?? Date.now() % 100_000);
    t.diagnostic(`seed ${seed} (CHAOS_SEED replays it)`);
    const random = new Random(seed);
    const nodes = await startMesh(3, ['--peer-wait', '1', '--anti-entropy-interval', '0.2', '--sync', 'interval=50']);
    const keys = Array.from({ length: 300 }, (_, i) => `c${i}`);
    const up = [true, true, true];
    let ops = 0;
    let refusedOrCut = 0;
    let writing = true;
    /** One client per node: pipelined set/append/incr/delete/get on random keys while the node is up. */
    const writer = async (index: number, maxOps: number): Promise<void> => {
      for (let round = 0; writing && ops < maxOps; round++) {
        if (!up[index]) {
          await sleep(20);
          continue;
        }
        let batch = '';
        for (let i = 0; i < 20; i++) {
          const key = random.pick(keys);
          const op = random.int(6);
          const value = `n${index}r${round}i${i}`;
          if (op === 0) batch += `set ${key} ${index} 0 ${value.length} noreply\r\n${value}\r\n`;
          else if (op === 1) batch += `append ${key} 0 0 1 noreply\r\n${index}\r\n`;
          else if (op === 2) batch += `set ${key} 0 0 2 noreply\r\n10\r\nincr ${key} ${index + 1} noreply\r\n`;
          else if (op === 3) batch += `delete ${key} noreply\r\nget ${key}\r\n`;
          else batch += `get ${key}\r\n`; // reads too: a read brought deleted keys back from disk
          ops++;
        }
        try {
          const client = nodes[index]!.client;
          const reply = await client.request(`${batch}mn\r\n`, 'MN\r\n', 2000);
          if (!reply.endsWith('MN\r\n')) refusedOrCut++;
        } catch {
          refusedOrCut++; // killed under this writer
          await sleep(20);
        }
      }
    };
    const trace = (line: string): void => {
      if (process.env.CHAOS_TRACE) appendFileSync(process.env.CHAOS_TRACE, `${new Date().toISOString()} ${line}\n`);
    };
    try {
      for (const node of nodes) await waitFor('the links', async () => (await stat(node.client, 'peer_1_state')) === 'connected' && (await stat(node.client, 'peer_0_state')) === 'connected');
      // Writes go on through every kill and restart, up to a bound on operations.
      const writers = nodes.map((_, i) => writer(i, 100_000));
      for (let kill = 0; kill < 3; kill++) {
        await sleep(random.range(100, 400));
        const victim = random.int(3);
        up[victim] = false;
        trace(`kill ${victim}`);
        await kill9(nodes[victim]!);
        await sleep(random.range(50, 300));
        trace(`restart ${victim}`);
        await restart(nodes[victim]!);
        trace(`restarted ${victim}`);
        up[victim] = true;
      }
      await sleep(300); // and on a while after the last restart
      writing = false;
      await Promise.all(writers);
      trace('writers done');
      const ms = await converge(nodes, keys, 15_000);
      const live = [...(await valuesOf(nodes[0]!.client, keys)).values()].filter((value) => value !== '').length;
      t.diagnostic(`${ops} operations, 3 kill -9 and restarts (${refusedOrCut} batches cut); all 3 nodes serve the same ${live} live of ${keys.length} keys, ${ms} ms after the writes`);
    } finally {
      writing = false;
      await stopAll(nodes);
    }
  });
});
