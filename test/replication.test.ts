/** Replication between real Mnemo processes on 127.0.0.1: convergence, join sync, restarts, authentication. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { request, storeExtras } from './helpers/binary.js';
import { connectClient, type RawClient } from './helpers/client.js';
import { runMnemo, startMnemo, type RunningServer } from './helpers/mnemo.js';
import { AE_BUCKETS, VersionTable } from '../src/replication/versions.js';

const root = mkdtempSync(join(tmpdir(), 'mnemo-repl-'));
after(() => rmSync(root, { recursive: true, force: true }));

const started: RunningServer[] = [];
after(async () => {
  for (const server of started) await server.stop();
});

/** A port that was free a moment ago (peers must know each other's ports before they start). */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

interface Node {
  server: RunningServer;
  client: RawClient;
  replPort: number;
}

/** Starts a node on replication port replPort with the given peers and waits for its replication line. */
async function startNode(replPort: number, peers: number[], extra: string[] = []): Promise<Node> {
  const args = ['--replication-port', String(replPort), ...peers.flatMap((port) => ['--peer', `127.0.0.1:${port}`]), ...extra];
  const server = await startMnemo(args);
  started.push(server);
  const deadline = Date.now() + 2000;
  while (!/mnemo replication on /.test(server.stderr()) && Date.now() < deadline) await sleep(10);
  assert.match(server.stderr(), new RegExp(`mnemo replication on 127\\.0\\.0\\.1:${replPort}\\n`));
  return { server, client: await connectClient(server.port), replPort };
}

/** Starts n nodes together, every one listing every other. */
async function startMesh(n: number, extra: string[] = []): Promise<Node[]> {
  const ports = await Promise.all(Array.from({ length: n }, () => freePort()));
  return Promise.all(ports.map((port) => startNode(port, ports.filter((p) => p !== port), ['--peer-wait', '2', ...extra])));
}

async function stopAll(nodes: Node[]): Promise<void> {
  for (const node of nodes) {
    node.client.close();
    await node.server.stop();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** get over every key, in one request: values and flags (CAS values are per node). */
async function contents(client: RawClient, keys: string[]): Promise<string> {
  return client.request(`get ${keys.join(' ')}\r\n`, 'END\r\n');
}

/** Waits until every node answers the same for the keys; returns that answer and how long it took. */
async function converge(nodes: Node[], keys: string[], timeoutMs = 10_000): Promise<{ dump: string; ms: number }> {
  const start = Date.now();
  let dumps: string[] = [];
  while (Date.now() - start < timeoutMs) {
    dumps = await Promise.all(nodes.map((node) => contents(node.client, keys)));
    if (dumps.every((dump) => dump === dumps[0])) return { dump: dumps[0]!, ms: Date.now() - start };
    await sleep(50);
  }
  assert.fail(`nodes did not converge in ${timeoutMs} ms:\n${dumps.map((d) => d.slice(0, 300)).join('\n---\n')}`);
}

async function stat(client: RawClient, name: string): Promise<string | undefined> {
  const stats = await client.request('stats\r\n', 'END\r\n');
  return new RegExp(`STAT ${name} (\\S+)\\r\\n`).exec(stats)?.[1];
}

/**
 * A fault-injecting TCP proxy between two peers. pass: forwards; delay(ms): forwards
 * every chunk ms later, in order; drop(): a silent partition: every byte is dropped
 * and new connections are accepted and then ignored, with no reset (the link can only
 * notice by silence); cut(): resets every connection and refuses new ones. heal()
 * forwards again; connections that lost bytes to drop() are reset (their streams have
 * gaps), as TCP gives up on a connection whose packets keep vanishing.
 */
class FaultProxy {
  private readonly sockets = new Set<Socket>();
  private mode: 'pass' | 'drop' | 'cut' = 'pass';
  private delayMs = 0;
  private readonly server = createServer((client) => {
    client.on('error', () => {});
    this.sockets.add(client);
    client.on('close', () => this.sockets.delete(client));
    if (this.mode === 'cut') {
      client.destroy();
      return;
    }
    if (this.mode === 'drop') return; // accepted, then silence
    const upstream = connect({ host: '127.0.0.1', port: this.target });
    upstream.on('error', () => {});
    this.sockets.add(upstream);
    for (const socket of [client, upstream]) {
      socket.on('close', () => {
        this.sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    this.forward(client, upstream);
    this.forward(upstream, client);
  });

  constructor(private readonly target: number) {}

  private forward(from: Socket, to: Socket): void {
    const queue: Array<{ due: number; chunk: Buffer }> = [];
    let timer: NodeJS.Timeout | null = null;
    const drain = (): void => {
      timer = null;
      const now = Date.now();
      while (queue.length > 0 && queue[0]!.due <= now) to.write(queue.shift()!.chunk);
      if (queue.length > 0) timer = setTimeout(drain, queue[0]!.due - now);
    };
    from.on('data', (chunk: Buffer) => {
      if (this.mode !== 'pass') return; // dropped
      if (this.delayMs === 0 && queue.length === 0) {
        to.write(chunk);
        return;
      }
      queue.push({ due: Date.now() + this.delayMs, chunk });
      timer ??= setTimeout(drain, this.delayMs);
    });
  }

  async listen(): Promise<number> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return (this.server.address() as AddressInfo).port;
  }

  delay(ms: number): void {
    this.delayMs = ms;
  }

  drop(): void {
    this.mode = 'drop';
  }

  cut(): void {
    this.mode = 'cut';
    for (const socket of this.sockets) socket.destroy();
  }

  heal(): void {
    if (this.mode === 'drop') for (const socket of this.sockets) socket.destroy();
    this.mode = 'pass';
  }

  async close(): Promise<void> {
    this.cut();
    this.server.close();
    await once(this.server, 'close');
  }
}

/** Polls `stats` until the statistic has the value (links reconnect with up to 2 s of backoff). */
async function waitForStat(client: RawClient, name: string, value: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: string | undefined;
  while (Date.now() < deadline) {
    last = await stat(client, name);
    if (last === value) return;
    await sleep(50);
  }
  assert.fail(`${name} is ${last}, not ${value}`);
}

describe('replication', () => {
  it('2 nodes: writes from text, meta and binary on each reach the other, deletes and flush_all too', async () => {
    const nodes = await startMesh(2);
    const [a, b] = nodes as [Node, Node];
    try {
      await a.client.request('set t1 7 0 5\r\nhello\r\nset n 0 0 2\r\n10\r\nincr n 5\r\nset s 0 0 1\r\na\r\nappend s 0 0 1\r\nb\r\nmn\r\n', 'MN\r\n');
      await b.client.request('ms m1 3 F9\r\nxyz\r\nset gone 0 0 1\r\nx\r\ndelete gone\r\nset tt 0 0 1\r\nx\r\ntouch tt 1000\r\nmn\r\n', 'MN\r\n');
      const binary = await connectClient(b.server.port);
      binary.send(request({ opcode: 0x01, key: 'bin1', extras: storeExtras(42, 0), value: 'binary!' }));
      await binary.readUntil((got) => got.length >= 24);
      binary.close();
      const keys = ['t1', 'n', 's', 'm1', 'gone', 'tt', 'bin1'];
      const { dump } = await converge(nodes, keys);
      assert.equal(
        dump,
        'VALUE t1 7 5\r\nhello\r\nVALUE n 0 2\r\n15\r\nVALUE s 0 2\r\nab\r\nVALUE m1 9 3\r\nxyz\r\nVALUE tt 0 1\r\nx\r\nVALUE bin1 42 7\r\nbinary!\r\nEND\r\n',
      );
      assert.match(await a.client.request('mg tt t\r\n'), /^HD t(99\d|1000)\r\n$/);
      await waitForStat(a.client, 'peer_0_state', 'connected');
      assert.ok(Number(await stat(a.client, 'peer_0_bytes_received')) > 0);

      // A delete on the node that did not write the key, and flush_all, replicate as tombstones.
      assert.equal(await b.client.request('delete t1\r\n'), 'DELETED\r\n');
      await converge(nodes, ['t1']).then(({ dump: d }) => assert.equal(d, 'END\r\n'));
      assert.equal(await a.client.request('flush_all\r\n'), 'OK\r\n');
      const flushed = await converge(nodes, keys);
      assert.equal(flushed.dump, 'END\r\n');
      // Writes after the flush still replicate.
      await b.client.request('set after 0 0 2\r\nok\r\n');
      assert.equal((await converge(nodes, ['after'])).dump, 'VALUE after 0 2\r\nok\r\nEND\r\n');
    } finally {
      await stopAll(nodes);
    }
  });

  it('3 nodes: concurrent conflicting writes from clients on every node converge to identical contents', async () => {
    const nodes = await startMesh(3);
    try {
      // Each node first writes keys of its own; all must read them everywhere.
      for (const [i, node] of nodes.entries()) await node.client.request(`set own${i} 0 0 1\r\n${i}\r\n`);
      const own = await converge(nodes, ['own0', 'own1', 'own2']);
      assert.equal(own.dump, 'VALUE own0 0 1\r\n0\r\nVALUE own1 0 1\r\n1\r\nVALUE own2 0 1\r\n2\r\nEND\r\n');

      // Then two clients per node hammer the same 100 keys with set, append, incr and delete.
      const keys = Array.from({ length: 100 }, (_, i) => `c${i}`);
      const writers = await Promise.all(nodes.flatMap((node) => [connectClient(node.server.port), connectClient(node.server.port)]));
      await Promise.all(writers.map(async (client, w) => {
        for (let round = 0; round < 20; round++) {
          let batch = '';
          for (let i = 0; i < keys.length; i++) {
            const key = keys[(i * 7 + w * 13 + round) % keys.length]!;
            const op = (i + round + w) % 10;
            if (op === 0) batch += `delete ${key} noreply\r\n`;
            else if (op === 1) batch += `append ${key} 0 0 2 noreply\r\n+${w}\r\n`;
            else if (op === 2) batch += `incr ${key} 1 noreply\r\n`;
            else {
              const value = `w${w}r${round}i${i}`;
              batch += `set ${key} ${w} 0 ${value.length} noreply\r\n${value}\r\n`;
            }
          }
          await client.request(`${batch}mn\r\n`, 'MN\r\n');
        }
        client.close();
      }));
      const { dump, ms } = await converge(nodes, keys);
      const present = dump.split('VALUE ').length - 1;
      assert.ok(present > 50, `only ${present} keys survived`);
      console.log(`# 3 nodes converged ${ms} ms after 6000 conflicting writes (${present} keys live)`);
    } finally {
      await stopAll(nodes);
    }
  });

  it('a node killed with SIGKILL during writes syncs from its peer before it serves again, and ends identical', async () => {
    const [portA, portB] = [await freePort(), await freePort()];
    const a = await startNode(portA, [portB], ['--node-id', 'a', '--peer-wait', '1']);
    let b = await startNode(portB, [portA], ['--node-id', 'b', '--peer-wait', '1']);
    const nodes = (): Node[] => [a, b];
    const keys = Array.from({ length: 2000 }, (_, i) => `k${i}`);
    let writing = true;
    const write = async (port: number, tag: string): Promise<number> => {
      const client = await connectClient(port);
      let rounds = 0;
      try {
        while (writing) {
          let batch = '';
          for (let i = 0; i < 200; i++) {
            const key = keys[(rounds * 200 + i) % keys.length]!;
            const value = `${tag}-${rounds}-${i}-${'x'.repeat(i % 50)}`;
            batch += `set ${key} 0 0 ${value.length} noreply\r\n${value}\r\n`;
          }
          const reply = await client.request(`${batch}mn\r\n`, 'MN\r\n');
          if (!reply.endsWith('MN\r\n')) break; // the node was killed under this writer
          rounds++;
        }
      } catch {
        // the node was killed under this writer
      } finally {
        client.close();
      }
      return rounds;
    };
    try {
      const onA = write(a.server.port, 'a');
      const onB = write(b.server.port, 'b');
      await sleep(400);
      b.server.process.kill('SIGKILL');
      await once(b.server.process, 'exit');
      b.client.close();
      await onB;
      await sleep(400); // A keeps taking writes while B is down
      await a.client.request('set written-while-down 0 0 3\r\nyes\r\n');
      b = await startNode(portB, [portA], ['--node-id', 'b', '--peer-wait', '1']);
      const log = b.server.stderr();
      // It synced before it listened: the sync line comes before the ready line, and the
      // first read it answers already has what A took while B was down.
      const synced = log.search(/"msg":"synced from a: \d+ items/);
      assert.ok(synced !== -1, log);
      assert.ok(synced < log.indexOf('listening on'), 'synced before serving');
      assert.equal(await b.client.request('get written-while-down\r\n', 'END\r\n'), 'VALUE written-while-down 0 3\r\nyes\r\nEND\r\n');
      await sleep(300); // writes keep going on A while B is back
      writing = false;
      assert.ok((await onA) > 3);
      const { dump } = await converge(nodes(), keys);
      assert.equal(dump.split('VALUE ').length - 1, keys.length);
      assert.equal(await stat(b.client, 'peer_0_syncs'), '1');
    } finally {
      writing = false;
      await stopAll(nodes());
    }
  });

  it('a link cut by a fault-injecting proxy catches up from the change log after it heals, without a full sync', async () => {
    const [portA, portB] = [await freePort(), await freePort()];
    const proxy = new FaultProxy(portB);
    const proxyPort = await proxy.listen();
    // A reaches B only through the proxy; B reaches A directly.
    const a = await startNode(portA, [proxyPort], ['--node-id', 'a', '--peer-wait', '1']);
    const b = await startNode(portB, [portA], ['--node-id', 'b', '--peer-wait', '1']);
    const nodes = [a, b];
    try {
      await b.client.request('set before 0 0 1\r\n1\r\n');
      await converge(nodes, ['before']);
      proxy.cut();
      let batch = '';
      const keys = Array.from({ length: 500 }, (_, i) => `p${i}`);
      for (const key of keys) batch += `set ${key} 0 0 ${key.length} noreply\r\n${key}\r\n`;
      await b.client.request(`${batch}mn\r\n`, 'MN\r\n');
      await sleep(300);
      assert.equal(await contents(a.client, ['p0', 'p499']), 'END\r\n', 'nothing crosses a cut link');
      assert.notEqual(await stat(a.client, 'peer_0_state'), 'connected');
      const healed = Date.now();
      proxy.heal();
      const { ms } = await converge(nodes, keys);
      console.log(`# converged ${Date.now() - healed} ms after the link healed (${ms} ms of polling)`);
      assert.equal(await stat(a.client, 'peer_0_syncs'), '0', 'caught up from the log, not by a snapshot');
      await waitForStat(a.client, 'peer_0_state', 'connected');
      await waitForStat(a.client, 'peer_0_lag_ops', '0');
    } finally {
      await stopAll(nodes);
      await proxy.close();
    }
  });

  it('anti-entropy repairs changes lost on the way (--test-drop-changes) within a bounded time, and costs little once equal', async (t) => {
    const [portA, portB] = [await freePort(), await freePort()];
    const common = ['--peer-wait', '1', '--test-drop-changes', '0.3', '--anti-entropy-interval', '1'];
    const a = await startNode(portA, [portB], ['--node-id', 'a', ...common]);
    const b = await startNode(portB, [portA], ['--node-id', 'b', ...common]);
    const nodes = [a, b];
    try {
      await waitForStat(a.client, 'peer_0_state', 'connected');
      await waitForStat(b.client, 'peer_0_state', 'connected');
      const keys = Array.from({ length: 1000 }, (_, i) => `d${i}`);
      const sets = (from: number, to: number, tag: string): string => {
        let batch = '';
        for (let i = from; i < to; i++) batch += `set d${i} 0 0 ${tag.length} noreply\r\n${tag}\r\n`;
        return batch;
      };
      // a writes d0..d599, b d400..d999 (d400..d599 on both); a then deletes d0..d49.
      await Promise.all([a.client.request(`${sets(0, 600, 'from-a')}mn\r\n`, 'MN\r\n'), b.client.request(`${sets(400, 1000, 'from-b')}mn\r\n`, 'MN\r\n')]);
      let deletes = '';
      for (let i = 0; i < 50; i++) deletes += `delete d${i} noreply\r\n`;
      await a.client.request(`${deletes}mn\r\n`, 'MN\r\n');
      const written = Date.now();
      await sleep(300);
      // A third of the changes never arrived: the nodes differ (repairs wait until a change is 1 s old).
      const [dumpA, dumpB] = [await contents(a.client, keys), await contents(b.client, keys)];
      assert.notEqual(dumpA, dumpB, 'the nodes diverged');
      assert.ok(Number(await stat(a.client, 'repl_test_dropped')) > 100);
      assert.ok(Number(await stat(b.client, 'repl_test_dropped')) > 100);
      const { dump, ms } = await converge(nodes, keys, 15_000);
      const healMs = Date.now() - written;
      t.diagnostic(`anti-entropy (interval 1 s) healed ${dumpA.split('VALUE ').length - 1} vs ${dumpB.split('VALUE ').length - 1} live keys to ${dump.split('VALUE ').length - 1} on both, ${healMs} ms after the writes (${ms} ms after divergence was seen)`);
      assert.ok(healMs < 8000, `healed in ${healMs} ms`);
      assert.equal(dump.split('VALUE ').length - 1, 950);
      const applied = Number(await stat(a.client, 'repl_anti_entropy_applied')) + Number(await stat(b.client, 'repl_anti_entropy_applied'));
      assert.ok(applied > 100, `${applied} repairs applied`);

      // Once equal, a round is one small digest frame per link and no repairs.
      await sleep(1200);
      const figures = async (): Promise<number[]> => [
        Number(await stat(a.client, 'repl_anti_entropy_rounds')),
        Number(await stat(a.client, 'repl_anti_entropy_differing')),
        Number(await stat(a.client, 'peer_0_bytes_sent')),
      ];
      const before = await figures();
      await sleep(3000);
      const after = await figures();
      assert.ok(after[0]! - before[0]! >= 2, `rounds ${before[0]} -> ${after[0]}`);
      assert.equal(after[1], before[1], 'no round found a difference');
      const idleBytes = after[2]! - before[2]!;
      t.diagnostic(`idle: ${after[0]! - before[0]!} rounds in 3 s, ${idleBytes} bytes sent to the peer (digests and heartbeats)`);
      assert.ok(idleBytes < 1000, `${idleBytes} bytes sent while idle`);
    } finally {
      await stopAll(nodes);
    }
  });

  it('a silent partition (the proxy drops every byte) is noticed, and after it heals the nodes converge within a bounded time', async (t) => {
    const [portA, portB] = [await freePort(), await freePort()];
    const toA = new FaultProxy(portA);
    const toB = new FaultProxy(portB);
    const [viaA, viaB] = [await toA.listen(), await toB.listen()];
    const a = await startNode(portA, [viaB], ['--node-id', 'a', '--peer-wait', '1']);
    const b = await startNode(portB, [viaA], ['--node-id', 'b', '--peer-wait', '1']);
    const nodes = [a, b];
    try {
      await waitForStat(a.client, 'peer_0_state', 'connected');
      await waitForStat(b.client, 'peer_0_state', 'connected');
      await a.client.request('set before 0 0 1\r\n1\r\n');
      await converge(nodes, ['before']);
      toA.drop();
      toB.drop();
      // Writes on both sides of the partition, conflicting on q150..q299.
      const keys = Array.from({ length: 450 }, (_, i) => `q${i}`);
      let onA = '';
      let onB = '';
      for (let i = 0; i < 300; i++) onA += `set q${i} 0 0 1 noreply\r\na\r\n`;
      for (let i = 150; i < 450; i++) onB += `set q${i} 0 0 1 noreply\r\nb\r\n`;
      await a.client.request(`${onA}mn\r\n`, 'MN\r\n');
      await b.client.request(`${onB}mn\r\n`, 'MN\r\n');
      await sleep(6500);
      assert.equal(await contents(a.client, ['q449']), 'END\r\n', 'nothing crosses the partition');
      assert.equal(await contents(b.client, ['q0']), 'END\r\n', 'nothing crosses the partition');
      assert.match(a.server.stderr(), /replication link to 127\.0\.0\.1:\d+ silent for 5 s; reconnecting/);
      assert.notEqual(await stat(a.client, 'peer_0_state'), 'connected');
      const healed = Date.now();
      toA.heal();
      toB.heal();
      const { dump } = await converge(nodes, keys, 15_000);
      const ms = Date.now() - healed;
      t.diagnostic(`silent partition of 6.5 s: converged ${ms} ms after it healed`);
      assert.ok(ms < 8000, `converged in ${ms} ms`);
      assert.equal(dump.split('VALUE ').length - 1, 450);
      await waitForStat(a.client, 'peer_0_state', 'connected');
      await waitForStat(b.client, 'peer_0_state', 'connected');
    } finally {
      await stopAll(nodes);
      await toA.close();
      await toB.close();
    }
  });

  it('a delaying link (200 ms each way) delays changes but the nodes converge; the time is measured', async (t) => {
    const [portA, portB] = [await freePort(), await freePort()];
    const toA = new FaultProxy(portA);
    const toB = new FaultProxy(portB);
    const [viaA, viaB] = [await toA.listen(), await toB.listen()];
    const a = await startNode(portA, [viaB], ['--node-id', 'a', '--peer-wait', '1']);
    const b = await startNode(portB, [viaA], ['--node-id', 'b', '--peer-wait', '1']);
    const nodes = [a, b];
    try {
      await waitForStat(a.client, 'peer_0_state', 'connected');
      await waitForStat(b.client, 'peer_0_state', 'connected');
      toA.delay(200);
      toB.delay(200);
      const keys = Array.from({ length: 400 }, (_, i) => `w${i}`);
      let onA = '';
      let onB = '';
      for (let i = 0; i < 250; i++) onA += `set w${i} 0 0 1 noreply\r\na\r\n`;
      for (let i = 150; i < 400; i++) onB += `set w${i} 0 0 1 noreply\r\nb\r\n`;
      const wrote = Date.now();
      await Promise.all([a.client.request(`${onA}mn\r\n`, 'MN\r\n'), b.client.request(`${onB}mn\r\n`, 'MN\r\n')]);
      assert.equal(await contents(b.client, ['w0']), 'END\r\n', 'not there before the delay');
      const { dump } = await converge(nodes, keys, 10_000);
      const ms = Date.now() - wrote;
      t.diagnostic(`200 ms each way: converged ${ms} ms after the writes`);
      assert.ok(ms >= 200, `converged in ${ms} ms, faster than the link`);
      assert.equal(dump.split('VALUE ').length - 1, 400);
    } finally {
      await stopAll(nodes);
      await toA.close();
      await toB.close();
    }
  });

  it('client connections made during the join sync wait for it, or get SERVER_ERROR not ready after --sync-wait-timeout', async (t) => {
    const portA = await freePort();
    const a = await startNode(portA, [], ['--node-id', 'a']);
    await a.client.request('set only-on-a 0 0 3\r\nyes\r\n');
    // Joining through a slow link: the handshake and the snapshot take several round trips.
    const proxy = new FaultProxy(portA);
    const viaA = await proxy.listen();
    proxy.delay(250);
    const join = async (name: string, extra: string[]): Promise<{ reply: string; heldMs: number; server: RunningServer }> => {
      const [replPort, clientPort] = [await freePort(), await freePort()];
      let ready = false;
      const starting = startMnemo(['-p', String(clientPort), '--replication-port', String(replPort), '--peer', `127.0.0.1:${viaA}`, '--node-id', name, ...extra]);
      void starting.then((server) => {
        ready = true;
        started.push(server);
      }, () => {});
      let client: RawClient | null = null;
      const deadline = Date.now() + 5000;
      while (client === null && Date.now() < deadline) {
        client = await connectClient(clientPort).catch(() => null);
        if (client === null) await sleep(10);
      }
      assert.ok(client !== null, 'the client port opened');
      assert.equal(ready, false, 'connected before the node serves');
      const connectedAt = Date.now();
      const reply = await client.request('get only-on-a\r\n', 'END\r\n');
      const heldMs = Date.now() - connectedAt;
      client.close();
      return { reply, heldMs, server: await starting };
    };
    try {
      const waits = await join('b', []);
      assert.equal(waits.reply, 'VALUE only-on-a 0 3\r\nyes\r\nEND\r\n', 'answered after the sync, with what it synced');
      assert.match(waits.server.stderr(), /synced from a/);
      t.diagnostic(`a client connected during the sync was held ${waits.heldMs} ms, then answered from the synced store`);
      const times = await join('c', ['--sync-wait-timeout', '0.2']);
      assert.equal(times.reply, 'SERVER_ERROR not ready\r\n');
      assert.ok(times.heldMs >= 150, `held ${times.heldMs} ms`);
      // It serves once synced.
      const late = await connectClient(times.server.port);
      assert.equal(await late.request('get only-on-a\r\n', 'END\r\n'), 'VALUE only-on-a 0 3\r\nyes\r\nEND\r\n');
      late.close();
    } finally {
      a.client.close();
      await a.server.stop();
      await proxy.close();
    }
  });

  it('refuses a peer with the wrong secret or none, logs it, and replicates nothing', async () => {
    const secret1 = join(root, 'secret1');
    const secret2 = join(root, 'secret2');
    writeFileSync(secret1, 'correct horse battery staple\n');
    writeFileSync(secret2, 'something else entirely\n');
    const [portA, portB, portC, portD] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const common = ['--peer-wait', '0.5'];
    const a = await startNode(portA, [portB, portC, portD], ['--replication-secret-file', secret1, ...common]);
    const b = await startNode(portB, [portA], ['--replication-secret-file', secret2, ...common]);
    const c = await startNode(portC, [portA], common);
    const d = await startNode(portD, [portA], ['--replication-secret-file', secret1, ...common]);
    const nodes = [a, b, c, d];
    try {
      await a.client.request('set secret 0 0 1\r\ns\r\n');
      await b.client.request('set from-b 0 0 1\r\nb\r\n');
      await c.client.request('set from-c 0 0 1\r\nc\r\n');
      // The peer with the right secret gets it, so the others have had time too.
      assert.equal((await converge([a, d], ['secret'])).dump, 'VALUE secret 0 1\r\ns\r\nEND\r\n');
      await sleep(300);
      assert.equal(await contents(b.client, ['secret']), 'END\r\n');
      assert.equal(await contents(c.client, ['secret']), 'END\r\n');
      assert.equal(await contents(a.client, ['from-b', 'from-c']), 'END\r\n');
      assert.match(a.server.stderr(), /replication peer refused: wrong secret/);
      assert.match(b.server.stderr(), /replication peer refused: wrong secret/);
      assert.match(a.server.stderr(), /replication peer refused: peer did not prove the shared secret/);
      assert.equal(await stat(b.client, 'peer_0_state'), 'refused');
      assert.equal(await stat(a.client, 'peer_0_state'), 'refused');
      await waitForStat(a.client, 'peer_2_state', 'connected');
    } finally {
      await stopAll(nodes);
    }
  });

  it('with --data-dir, versions survive a restart: a later write that never left the node still wins, and anti-entropy sends it out', async (t) => {
    const [portA, portB] = [await freePort(), await freePort()];
    const [dirA, dirB] = [mkdtempSync(join(root, 'a-')), mkdtempSync(join(root, 'b-'))];
    const a = await startNode(portA, [portB], ['--node-id', 'a', '--peer-wait', '1', '--data-dir', dirA, '--anti-entropy-interval', '0']);
    const bArgs = ['--node-id', 'b', '--peer-wait', '1', '--data-dir', dirB];
    let b = await startNode(portB, [portA], [...bArgs, '--anti-entropy-interval', '0', '--test-drop-changes', '1']);
    try {
      await waitForStat(a.client, 'peer_0_state', 'connected');
      await waitForStat(b.client, 'peer_0_state', 'connected');
      await a.client.request('set z 0 0 5\r\na-old\r\n');
      await converge([a, b], ['z']);
      // B's changes never leave it (--test-drop-changes 1): a later z, and y.
      await b.client.request('set z 0 0 5\r\nb-new\r\nset y 0 0 6\r\nonly-b\r\n');
      await sleep(300);
      assert.equal(await contents(a.client, ['y', 'z']), 'VALUE z 0 5\r\na-old\r\nEND\r\n');
      b.client.close();
      await b.server.stop();
      b = await startNode(portB, [portA], [...bArgs, '--anti-entropy-interval', '0.5']);
      const restarted = Date.now();
      assert.match(b.server.stderr(), /replication versions loaded: 2/);
      assert.match(b.server.stderr(), /synced from a/);
      // The snapshot from A did not replace B's later z; anti-entropy sent z and y to A.
      const { dump } = await converge([a, b], ['y', 'z'], 10_000);
      t.diagnostic(`restarted node's kept versions reached its peer ${Date.now() - restarted} ms after the restart`);
      assert.equal(dump, 'VALUE y 0 6\r\nonly-b\r\nVALUE z 0 5\r\nb-new\r\nEND\r\n');
    } finally {
      await stopAll([a, b]);
    }
  });

  it('anti-entropy digests depend on the entries only, not on the order they came in or what was undone', () => {
    const digests = (table: VersionTable): string => `${table.rootA}/${table.rootB}/${Buffer.from(table.digestA.buffer).toString('hex')}${Buffer.from(table.digestB.buffer).toString('hex')}`;
    const one = new VersionTable();
    const two = new VersionTable();
    const empty = digests(one);
    for (let i = 0; i < 500; i++) one.set(`k${i}`, 1000 + i, 7, i % 10 === 0, 100, i % 3 === 0 ? 500 : 0);
    for (let i = 499; i >= 0; i--) {
      two.set(`k${i}`, 5, 9, false, 100); // overwritten below: must leave no trace
      two.set(`k${i}`, 1000 + i, 7, i % 10 === 0, 100, i % 3 === 0 ? 500 : 0);
    }
    assert.equal(digests(one), digests(two));
    assert.notEqual(digests(one), empty);
    assert.equal([...one.counts].reduce((a, b) => a + b, 0), 500);
    assert.ok(one.counts.filter((n) => n > 0).length > AE_BUCKETS / 3, 'keys spread over the buckets');
    // One version apart: the digests differ.
    two.set('k7', 2000, 7, false, 100);
    assert.notEqual(digests(one), digests(two));
    // A flush drops what is older on both sides; expired items' entries are pruned.
    one.flush(1250, 1);
    const three = new VersionTable();
    for (let i = 250; i < 500; i++) three.set(`k${i}`, 1000 + i, 7, i % 10 === 0, 100, i % 3 === 0 ? 500 : 0);
    assert.equal(digests(one), digests(three));
    two.flush(2001, 1);
    assert.equal(two.map.size, 0);
    assert.equal(digests(two), empty);
    one.prune(600, null); // past the exptime of every third key
    assert.equal(one.map.size, 250 - [...Array(250).keys()].filter((i) => (i + 250) % 3 === 0 && (i + 250) % 10 !== 0).length);
    assert.ok([...one.map.values()].every((v) => v.since === 0 || v.tomb));
  });

  it('rejects bad replication flags with exit code 2 and one line naming the flag', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--peer', 'nohost'], /--peer: 'nohost' is not HOST:PORT/],
      [['--peer', '127.0.0.1:0'], /--peer: port 0 is out of range/],
      [['--peer', '10.1.2.3:11212'], /--peer: 10\.1\.2\.3 is not loopback/],
      [['--replication-port', 'x'], /--replication-port: 'x' is not a number/],
      [['--replication-port', '70000'], /--replication-port: 70000 is out of range/],
      [['--node-id', 'a b', '--replication-port', '-1'], /--node-id: 'a b' must be/],
      [['--peer-wait', '-3', '--replication-port', '-1'], /--peer-wait: '-3' is not a number of seconds/],
      [['--peer-wait', '2'], /--peer-wait: only with --peer or --replication-port/],
      [['--anti-entropy-interval', 'x', '--replication-port', '-1'], /--anti-entropy-interval: 'x' is not a number of seconds/],
      [['--sync-wait-timeout', '5'], /--sync-wait-timeout: only with --peer or --replication-port/],
      [['--test-drop-changes', '2', '--replication-port', '-1'], /--test-drop-changes: '2' is not a fraction/],
      [['--replication-secret-file', join(root, 'missing'), '--replication-port', '-1'], /--replication-secret-file: cannot read/],
    ];
    for (const [args, message] of cases) {
      const result = await runMnemo(['-p', '-1', ...args]);
      assert.equal(result.code, 2, args.join(' '));
      assert.match(result.stderr, message);
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    }
  });
});
