/** Replication between real Mnemo processes on 127.0.0.1: convergence, join sync, restarts, authentication. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { request, storeExtras } from './helpers/binary.js';
import { connectClient, type RawClient } from './helpers/client.js';
import { freePort } from './helpers/memcached.js';
import { runMnemo, startMnemo, type RunningServer } from './helpers/mnemo.js';
import { randomBytes } from 'node:crypto';
import {
  FrameReader,
  FrameWriter,
  TOMB_FIXED,
  T_AUTH,
  T_CHALLENGE,
  T_HELLO,
  T_ITEM,
  PROTOCOL_VERSION,
  T_REFUSED,
  T_SNAPSHOT_BEGIN,
  T_SNAPSHOT_END,
  T_SUBSCRIBE,
  T_TOMB,
  T_WELCOME,
} from '../src/replication/frames.js';
import { HybridClock, MAX_AHEAD_MS } from '../src/replication/hlc.js';
import { AE_BUCKETS, VersionTable } from '../src/replication/versions.js';

const root = mkdtempSync(join(tmpdir(), 'mnemo-repl-'));
after(() => rmSync(root, { recursive: true, force: true }));

const started: RunningServer[] = [];
/** Test listeners (proxies, fake peers): closed after the file even when a test failed before its finally. */
const listeners: Array<{ close(): Promise<void> }> = [];
after(async () => {
  for (const server of started) await server.stop();
  for (const listener of listeners) await listener.close();
});

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
 * notice by silence, and a close on one side does not reach the other); cut(): resets
 * every connection and refuses new ones. heal() forwards again; connections that lost
 * bytes to drop() are reset (their streams have gaps), as TCP gives up on a connection
 * whose packets keep vanishing.
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
        // In a silent partition a close is lost like every other byte: the other side must notice by itself.
        if (this.mode === 'drop') return;
        client.destroy();
        upstream.destroy();
      });
    }
    this.forward(client, upstream);
    this.forward(upstream, client);
  });

  constructor(private readonly target: number) {
    listeners.push(this);
  }

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
    if (!this.server.listening) return;
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

interface Frame {
  type: number;
  body: Buffer;
}

/** One end of a replication connection that the test speaks frame by frame: a hostile or broken peer. */
class FrameSocket {
  private readonly reader = new FrameReader();
  private readonly frames: Frame[] = [];
  private wake: (() => void) | null = null;
  closed = false;

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.reader.push(chunk);
      for (let type = this.reader.next(); type !== -1; type = this.reader.next()) {
        this.frames.push({ type, body: Buffer.from(this.reader.buf.subarray(this.reader.start, this.reader.end)) });
      }
      this.wake?.();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
  }

  /** The next frame, or null once the other side closed the connection. */
  async next(timeoutMs = 5000): Promise<Frame | null> {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.length === 0 && !this.closed) {
      if (Date.now() > deadline) assert.fail(`no frame and no close within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 50);
      });
      this.wake = null;
    }
    return this.frames.shift() ?? null;
  }

  async expect(type: number): Promise<Buffer> {
    const frame = await this.next();
    assert.equal(frame?.type, type, `expected frame type ${type}, got ${frame === null ? 'the connection closed' : frame.type}`);
    return frame!.body;
  }

  send(write: (w: FrameWriter) => void): void {
    const w = new FrameWriter();
    write(w);
    for (const piece of w.take()) this.socket.write(piece);
  }
}

/** Listens where a node's --peer points, and hands over each connection the node makes to it. */
class FakePeer {
  private readonly accepted: FrameSocket[] = [];
  private readonly server = createServer((socket) => this.accepted.push(new FrameSocket(socket)));

  constructor() {
    listeners.push(this);
  }

  async listen(): Promise<number> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return (this.server.address() as AddressInfo).port;
  }

  async accept(timeoutMs = 6000): Promise<FrameSocket> {
    const deadline = Date.now() + timeoutMs;
    while (this.accepted.length === 0) {
      if (Date.now() > deadline) assert.fail(`the node did not connect within ${timeoutMs} ms`);
      await sleep(10);
    }
    return this.accepted.shift()!;
  }

  async close(): Promise<void> {
    for (const peer of this.accepted) peer.socket.destroy();
    if (!this.server.listening) return;
    this.server.close();
    await once(this.server, 'close');
  }
}

/** Plays a publisher without a secret through the handshake (HELLO, CHALLENGE, AUTH, WELCOME, SUBSCRIBE). */
async function handshake(peer: FrameSocket): Promise<void> {
  await peer.expect(T_HELLO);
  peer.send((w) => w.control(T_CHALLENGE, [], Buffer.concat([randomBytes(16), Buffer.from([0]), Buffer.from('fake')])));
  await peer.expect(T_AUTH);
  // A new process (epoch), not serving, whose log reaches back to its start: the link asks for the log.
  peer.send((w) => w.control(T_WELCOME, [1 + Math.floor(Math.random() * 2 ** 40), 0, 0, 0, 0]));
  await peer.expect(T_SUBSCRIBE);
}

/** A version time now, as a peer's clock would make it. */
function hlcNow(): number {
  return Date.now() * 1024;
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
      // Each node's clock ticks once a second from its own start: they may differ by one.
      assert.match(await a.client.request('mg tt t\r\n'), /^HD t(99\d|100[01])\r\n$/);
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

  it('the publishing side notices a silent link too, and closes its session; an idle link stays up', async () => {
    const portA = await freePort();
    const toA = new FaultProxy(portA);
    const viaA = await toA.listen();
    // Only b subscribes (to a, through the proxy): a is the publisher of this link and nothing else.
    const a = await startNode(portA, [], ['--node-id', 'a', '--anti-entropy-interval', '0']);
    const b = await startNode(await freePort(), [viaA], ['--node-id', 'b', '--peer-wait', '1', '--anti-entropy-interval', '0']);
    try {
      await waitForStat(b.client, 'peer_0_state', 'connected');
      assert.equal(await stat(a.client, 'repl_subscribers'), '1');
      // Idle for longer than the silence limit: keepalives hold the link.
      await sleep(6000);
      assert.equal(await stat(a.client, 'repl_subscribers'), '1');
      assert.doesNotMatch(a.server.stderr() + b.server.stderr(), /silent for/);
      toA.drop();
      await waitForStat(a.client, 'repl_subscribers', '0', 10_000);
      assert.match(a.server.stderr(), /replication peer b silent for 5 s; closing its session/);
      toA.heal();
      await waitForStat(b.client, 'peer_0_state', 'connected', 10_000);
      await waitForStat(a.client, 'repl_subscribers', '1');
    } finally {
      await stopAll([a, b]);
      await toA.close();
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

  it('client connections held during the join sync count in curr_connections, once', async () => {
    const portA = await freePort();
    const a = await startNode(portA, [], ['--node-id', 'a']);
    await a.client.request('set only-on-a 0 0 3\r\nyes\r\n');
    // b joins through a proxy that drops everything until healed: b cannot finish its join before then.
    const proxy = new FaultProxy(portA);
    const viaA = await proxy.listen();
    proxy.drop();
    const [replPort, clientPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
    let ready = false;
    const starting = startMnemo(['-p', String(clientPort), '--metrics-port', String(metricsPort), '--replication-port', String(replPort), '--peer', `127.0.0.1:${viaA}`, '--peer-wait', '60', '--node-id', 'b']);
    void starting.then((server) => {
      ready = true;
      started.push(server);
    }, () => {});
    const held: RawClient[] = [];
    const connections = async (): Promise<number> =>
      fetch(`http://127.0.0.1:${metricsPort}/api/stats`).then(async (response) => ((await response.json()) as { connections: number }).connections);
    const waitForConnections = async (count: number): Promise<void> => {
      const deadline = Date.now() + 5000;
      let last = await connections();
      while (last !== count && Date.now() < deadline) {
        await sleep(20);
        last = await connections();
      }
      assert.equal(last, count, `curr_connections while ${held.filter((client) => !client.closed).length} clients are held`);
    };
    try {
      const deadline = Date.now() + 5000;
      while (held.length < 2 && Date.now() < deadline) {
        const client = await connectClient(clientPort).catch(() => null);
        if (client === null) await sleep(10);
        else held.push(client);
      }
      assert.equal(held.length, 2, 'the client port opened');
      await waitForConnections(2);
      held[1]!.close();
      await waitForConnections(1);
      assert.equal(ready, false, 'still joining');
      proxy.heal();
      const server = await starting;
      assert.equal(await held[0]!.request('get only-on-a\r\n', 'END\r\n'), 'VALUE only-on-a 0 3\r\nyes\r\nEND\r\n', 'served after the sync');
      assert.equal(await stat(held[0]!, 'curr_connections'), '1');
      const late = await connectClient(server.port);
      assert.equal(await stat(late, 'curr_connections'), '2');
      late.close();
    } finally {
      for (const client of held) client.close();
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
      // The version store reports its commits' failures (none here) as the items' store does.
      for (const node of [a, b]) {
        assert.equal(await stat(node.client, 'repl_version_write_errors'), '0');
        assert.equal(await stat(node.client, 'repl_versions_failing'), '0');
      }
    } finally {
      await stopAll([a, b]);
    }
  });

  it('with --data-dir, the version store reports failed commits (its own file system full) and recovers when space returns', async (t) => {
    const dir = mkdtempSync(join(root, 'v-'));
    // The versions on a file system of their own: the data dir's free-space reserve does not see it fill.
    const versions = join(dir, 'replication-versions');
    mkdirSync(versions);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', versions], { stdio: 'ignore' });
    } catch {
      t.skip('cannot mount a small tmpfs here (needs root)');
      return;
    }
    t.after(() => execFileSync('umount', ['-l', versions], { stdio: 'ignore' }));
    const node = await startNode(await freePort(), [], ['--data-dir', dir, '--sync', 'always']);
    try {
      assert.equal(await stat(node.client, 'repl_versions_failing'), '0');
      const prefix = 'v'.repeat(200);
      for (let batch = 0; batch < 40 && (await stat(node.client, 'repl_versions_failing')) === '0'; batch++) {
        let request = '';
        for (let i = 0; i < 100; i++) request += `set ${prefix}${batch}-${i} 0 0 1\r\nx\r\n`;
        const replies = await node.client.request(request, 'STORED\r\n'.repeat(100));
        assert.equal(replies, 'STORED\r\n'.repeat(100));
      }
      assert.equal(await stat(node.client, 'repl_versions_failing'), '1');
      assert.notEqual(await stat(node.client, 'repl_version_write_errors'), '0');
      assert.match(node.server.stderr(), /replication versions: a commit failed/);
      // The items themselves are kept and served.
      assert.equal(await node.client.request(`get ${prefix}0-0\r\n`, 'END\r\n'), `VALUE ${prefix}0-0 0 1\r\nx\r\nEND\r\n`);
      execFileSync('mount', ['-o', 'remount,size=16m', versions]);
      await waitForStat(node.client, 'repl_versions_failing', '0', 10_000);
      assert.match(node.server.stderr(), /replication versions: commits succeed again/);
    } finally {
      await stopAll([node]);
    }
  });

  it('a join snapshot from a node with --data-dir includes the items only its disk holds', async () => {
    const [portA, portB] = [await freePort(), await freePort()];
    const dirA = mkdtempSync(join(root, 'disk-only-'));
    // A alone first (its peer is not up): 300 x 20 KB through 2 MB of memory, so most live only on disk.
    const a = await startNode(portA, [portB], ['--node-id', 'a', '--peer-wait', '0.2', '--data-dir', dirA, '-m', '2', '--anti-entropy-interval', '0']);
    let b: Node | null = null;
    try {
      const value = 'd'.repeat(20_000);
      let batch = '';
      for (let i = 0; i < 300; i++) batch += `set disk${i} ${i} 0 ${value.length} noreply\r\n${value}\r\n`;
      await a.client.request(`${batch}mn\r\n`, 'MN\r\n');
      assert.ok(Number(await stat(a.client, 'curr_items')) < 150);
      b = await startNode(portB, [portA], ['--node-id', 'b', '--peer-wait', '5', '--anti-entropy-interval', '0', '-m', '64']);
      assert.match(b.server.stderr(), /synced from a/);
      assert.equal(await stat(b.client, 'curr_items'), '300');
      const keys = ['disk0', 'disk1', 'disk150', 'disk299'];
      assert.equal(await contents(b.client, keys), keys.map((key) => `VALUE ${key} ${key.slice(4)} 20000\r\n${value}\r\n`).join('') + 'END\r\n');
    } finally {
      await stopAll(b === null ? [a] : [a, b]);
    }
  });

  it('a peer joining a restarted node with --data-dir gets base64-key items still marked, from its memory and from its disk', async () => {
    const [portA, portB] = [await freePort(), await freePort()];
    const dirA = mkdtempSync(join(root, 'b64-'));
    // Raw keys with a space and CR/LF: answered undecoded, they would break the reply line.
    const small = Buffer.from('a b\r\nc').toString('base64');
    const big = Buffer.from('z z\r\n').toString('base64');
    const value = 'd'.repeat(20_000);
    const aArgs = ['--node-id', 'a', '--peer-wait', '0.2', '--data-dir', dirA, '-m', '2', '--anti-entropy-interval', '0'];
    let a = await startNode(portA, [portB], aArgs);
    let b: Node | null = null;
    try {
      let batch = `ms ${small} 5 b F3\r\nhello\r\nms ${big} ${value.length} b\r\n${value}\r\n`;
      for (let i = 0; i < 300; i++) batch += `set disk${i} 0 0 ${value.length} noreply\r\n${value}\r\n`;
      await a.client.request(`${batch}mn\r\n`, 'MN\r\n');
      await stopAll([a]);
      // After the restart the small item is loaded into memory (its key sorts first); the big one stays on disk.
      a = await startNode(portA, [portB], aArgs);
      b = await startNode(portB, [portA], ['--node-id', 'b', '--peer-wait', '5', '--anti-entropy-interval', '0', '-m', '64']);
      assert.match(b.server.stderr(), /synced from a/);
      assert.equal(await b.client.request(`mg ${small} b k f v\r\n`, 'hello\r\n'), `VA 5 k${small} b f3\r\nhello\r\n`);
      assert.equal(await b.client.request(`mg ${big} b k s\r\n`), `HD k${big} b s20000\r\n`);
    } finally {
      await stopAll(b === null ? [a] : [a, b]);
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
    const unserved: string[] = [];
    const servesAll = { serves: () => true, unserve: (key: string) => unserved.push(key) };
    one.prune(600, servesAll); // past the exptime of every third key
    assert.equal(one.map.size, 250 - [...Array(250).keys()].filter((i) => (i + 250) % 3 === 0 && (i + 250) % 10 !== 0).length);
    assert.ok([...one.map.values()].every((v) => v.since === 0 || v.tomb));
    // The audit: a tombstoned key still served is deleted again; a live key no longer served loses its entry.
    assert.equal(unserved.length, 25);
    assert.ok(unserved.every((key) => one.get(key)?.tomb === true));
    const live = one.map.size - 25;
    one.prune(600, { serves: (key) => key !== 'k251', unserve: () => {} });
    assert.equal(one.get('k251'), undefined);
    assert.equal(one.map.size, 25 + live - 1);
  });

  it('a change batched before a value of 16 KB or more (sent by reference) is not lost', async () => {
    const nodes = await startMesh(2, ['--anti-entropy-interval', '0']);
    const [a] = nodes as [Node, Node];
    try {
      await a.client.request('set gone-soon 0 0 1\r\nx\r\nset small 0 0 1\r\n1\r\n');
      await converge(nodes, ['gone-soon', 'small']);
      const big = 'v'.repeat(20 * 1024);
      // One client batch: one batch of frames, the tombstone and the small item copied in, then the big value.
      await a.client.request(`delete gone-soon noreply\r\nset small 0 0 1 noreply\r\n2\r\nset big 0 0 ${big.length} noreply\r\n${big}\r\nset after 0 0 1 noreply\r\n3\r\nmn\r\n`, 'MN\r\n');
      const { dump } = await converge(nodes, ['gone-soon', 'small', 'big', 'after'], 5000);
      assert.equal(dump, `VALUE small 0 1\r\n2\r\nVALUE big 0 ${big.length}\r\n${big}\r\nVALUE after 0 1\r\n3\r\nEND\r\n`);
    } finally {
      await stopAll(nodes);
    }
  });

  it('frames written around values sent by reference read back whole and in order', () => {
    const w = new FrameWriter();
    const big = Buffer.alloc(70 * 1024, 7);
    w.tomb(1, 100, 1, 'first');
    w.item(2, 101, 1, 0, 0, false, 'big1', big);
    w.item(3, 102, 1, 0, 0, false, 'big2', big.subarray(0, 16 * 1024));
    w.item(4, 103, 1, 0, 0, false, 'small', Buffer.from('s'));
    w.tomb(5, 104, 1, 'last');
    const bytes = Buffer.concat(w.take());
    const r = new FrameReader();
    // Fed in odd-sized chunks.
    const seen: Array<[number, number]> = [];
    for (let o = 0; o < bytes.length; o += 999) {
      r.push(bytes.subarray(o, o + 999));
      for (let type = r.next(); type !== -1; type = r.next()) seen.push([type, r.buf.readDoubleBE(r.start)]);
    }
    assert.deepEqual(seen, [[T_TOMB, 1], [T_ITEM, 2], [T_ITEM, 3], [T_ITEM, 4], [T_TOMB, 5]]);
  });

  it('a --peer that skips the challenge, or sends data before it, is refused and nothing it sent is applied', async () => {
    const secret = join(root, 'secret-hostile');
    writeFileSync(secret, 'a secret the fake peer does not know\n');
    const fake = new FakePeer();
    const fakePort = await fake.listen();
    const hostile = (async () => {
      // A WELCOME (and an item) without proving the secret.
      const first = await fake.accept();
      await first.expect(T_HELLO);
      first.send((w) => {
        w.control(T_WELCOME, [12345, 0, 0, 1, 0]);
        w.item(1, hlcNow(), 7, 0, 0, false, 'evil1', Buffer.from('bad'));
      });
      assert.equal(await first.next(), null, 'the node closes the link instead of subscribing');
      // Data frames in the middle of the handshake.
      const second = await fake.accept();
      await second.expect(T_HELLO);
      second.send((w) => {
        w.item(1, hlcNow(), 7, 0, 0, false, 'evil2', Buffer.from('bad'));
        w.tomb(2, hlcNow(), 7, 'kept');
      });
      assert.equal(await second.next(), null, 'the node closes the link');
    })();
    const node = await startNode(await freePort(), [fakePort], ['--replication-secret-file', secret, '--peer-wait', '0.5', '--anti-entropy-interval', '0']);
    try {
      await node.client.request('set kept 0 0 1\r\nk\r\n');
      await hostile;
      assert.equal(await contents(node.client, ['evil1', 'evil2', 'kept']), 'VALUE kept 0 1\r\nk\r\nEND\r\n');
      assert.equal(await stat(node.client, 'repl_versions'), '1');
      const log = node.server.stderr();
      assert.match(log, /replication peer refused: unexpected welcome before the peer proved the secret/);
      assert.match(log, /replication peer refused: unexpected data frame/);
    } finally {
      node.client.close();
      await node.server.stop();
      await fake.close();
    }
  });

  /** The header of a 64 MB frame of the given type and its first 1000 bytes. */
  function oversizedFrameStart(type: number): Buffer {
    const header = Buffer.alloc(5);
    header.writeUInt32BE(64 * 1024 * 1024, 0);
    header[4] = type;
    return Buffer.concat([header, Buffer.alloc(1000)]);
  }

  it('before authentication a frame may be only a few KB, on either side of a link', async () => {
    const fake = new FakePeer();
    const fakePort = await fake.listen();
    const subscriberSide = (async () => {
      const peer = await fake.accept();
      await peer.expect(T_HELLO);
      // A frame header claiming 64 MB, from a peer that has not proved anything.
      peer.socket.write(oversizedFrameStart(T_CHALLENGE));
      assert.equal(await peer.next(), null, 'the node closes the link');
    })();
    const replPort = await freePort();
    const node = await startNode(replPort, [fakePort], ['--peer-wait', '0.5', '--anti-entropy-interval', '0']);
    try {
      await subscriberSide;
      assert.match(node.server.stderr(), /replication peer refused: bad frame length 67108864/);
      // The publisher side: a stranger connects to the replication port and starts a 64 MB frame.
      const stranger = new FrameSocket(connect({ host: '127.0.0.1', port: replPort }));
      await once(stranger.socket, 'connect');
      stranger.socket.write(oversizedFrameStart(T_HELLO));
      assert.match((await stranger.expect(T_REFUSED)).toString(), /bad frame length 67108864/);
      assert.equal(await stranger.next(), null, 'and closes the connection');
    } finally {
      node.client.close();
      await node.server.stop();
      await fake.close();
    }
  });

  it('a malformed frame, or a version time far ahead of the clock, fails the link and nothing of it is recorded', async () => {
    const fake = new FakePeer();
    const fakePort = await fake.listen();
    const script = (async () => {
      // A tombstone whose key length (60) runs past the end of its frame, then a good item.
      const first = await fake.accept();
      await handshake(first);
      const bad = Buffer.alloc(5 + TOMB_FIXED + 3);
      bad.writeUInt32BE(1 + TOMB_FIXED + 3, 0);
      bad[4] = T_TOMB;
      bad.writeDoubleBE(1, 5);
      bad.writeDoubleBE(hlcNow(), 13);
      bad.writeUInt32BE(7, 21);
      bad[25] = 60;
      bad.write('abc', 26, 'latin1');
      const good = new FrameWriter();
      good.item(2, hlcNow(), 7, 0, 0, false, 'after-bad', Buffer.from('x'.repeat(100)));
      first.socket.write(Buffer.concat([bad, ...good.take()]));
      assert.equal(await first.next(), null, 'the node closes the link');
      // An item an hour ahead of the node's clock.
      const second = await fake.accept();
      await handshake(second);
      second.send((w) => w.item(1, (Date.now() + 3600_000) * 1024, 7, 0, 0, false, 'future', Buffer.from('f')));
      assert.equal(await second.next(), null, 'the node closes the link');
      // A well-behaved peer is served as ever.
      const third = await fake.accept();
      await handshake(third);
      third.send((w) => w.item(1, hlcNow(), 7, 0, 0, false, 'good', Buffer.from('g')));
      return third;
    })();
    const node = await startNode(await freePort(), [fakePort], ['--peer-wait', '0.5', '--anti-entropy-interval', '0']);
    try {
      const third = await script;
      let got = '';
      for (let deadline = Date.now() + 3000; !got.includes('VALUE good') && Date.now() < deadline; await sleep(20)) {
        got = await contents(node.client, ['after-bad', 'future', 'good']);
      }
      assert.equal(got, 'VALUE good 0 1\r\ng\r\nEND\r\n');
      assert.equal(await stat(node.client, 'repl_versions'), '1');
      assert.equal(await stat(node.client, 'repl_tombstones'), '0');
      const log = node.server.stderr();
      assert.match(log, /replication peer refused: malformed replication frame \(type 2: key length 60 in 24 bytes\)/);
      assert.match(log, new RegExp(`replication peer refused: version time \\d+ is not valid or more than ${MAX_AHEAD_MS / 1000} s ahead`));
      third.socket.destroy();
    } finally {
      node.client.close();
      await node.server.stop();
      await fake.close();
    }
  });

  it('the hybrid clock ignores remote times that are not finite or far ahead of the wall clock', () => {
    const clock = new HybridClock();
    const now = clock.next();
    assert.equal(clock.observe(Infinity), false);
    assert.equal(clock.observe(NaN), false);
    assert.equal(clock.observe(-5), false);
    assert.equal(clock.observe((Date.now() + MAX_AHEAD_MS + 5000) * 1024), false);
    assert.ok(clock.now < (Date.now() + 1000) * 1024, 'the clock did not move');
    const ahead = (Date.now() + 5000) * 1024;
    assert.equal(clock.observe(ahead), true);
    assert.ok(clock.next() > ahead);
    assert.ok(clock.next() > now);
  });

  it("a peer's change the store here refuses (larger than -I) keeps the old version, so a later sync still brings it", async () => {
    const [portA, portB] = [await freePort(), await freePort()];
    const dirB = mkdtempSync(join(root, 'refuse-'));
    const a = await startNode(portA, [portB], ['--node-id', 'a', '--peer-wait', '1', '--anti-entropy-interval', '0']);
    const bArgs = ['--node-id', 'b', '--peer-wait', '1', '--data-dir', dirB, '--anti-entropy-interval', '0'];
    let b = await startNode(portB, [portA], [...bArgs, '-I', '64k']);
    try {
      await waitForStat(a.client, 'peer_0_state', 'connected');
      await waitForStat(b.client, 'peer_0_state', 'connected');
      await a.client.request('set k 0 0 3\r\nold\r\n');
      await converge([a, b], ['k']);
      const big = 'b'.repeat(100 * 1024);
      assert.equal(await a.client.request(`set k 0 0 ${big.length}\r\n${big}\r\n`), 'STORED\r\n');
      await waitForStat(b.client, 'repl_store_refused', '1');
      assert.equal(await contents(b.client, ['k']), 'VALUE k 0 3\r\nold\r\nEND\r\n');
      // B restarts with room for it: its version of k is still that of "old", so A's snapshot replaces it.
      b.client.close();
      await b.server.stop();
      b = await startNode(portB, [portA], bArgs);
      assert.match(b.server.stderr(), /synced from a/);
      const { dump } = await converge([a, b], ['k'], 5000);
      assert.equal(dump, `VALUE k 0 ${big.length}\r\n${big}\r\nEND\r\n`);
    } finally {
      await stopAll([a, b]);
    }
  });

  it('a join snapshot cut off is asked for again on reconnect, not just the log', async () => {
    const fake = new FakePeer();
    const fakePort = await fake.listen();
    const epoch = 4242;
    const subscribe = async (peer: FrameSocket): Promise<[number, number]> => {
      await peer.expect(T_HELLO);
      peer.send((w) => w.control(T_CHALLENGE, [], Buffer.concat([randomBytes(16), Buffer.from([0]), Buffer.from('fake')])));
      await peer.expect(T_AUTH);
      // The same serving process every time: log tail 0, head 10.
      peer.send((w) => w.control(T_WELCOME, [epoch, 1, 0, 10, 0]));
      const body = await peer.expect(T_SUBSCRIBE);
      return [body.readDoubleBE(0), body.readDoubleBE(8)];
    };
    const script = (async () => {
      const first = await fake.accept();
      assert.deepEqual(await subscribe(first), [1, 0], 'joining: a snapshot');
      first.send((w) => {
        w.control(T_SNAPSHOT_BEGIN, [2]);
        w.item(0, hlcNow(), 7, 0, 0, false, 'snap1', Buffer.from('1'));
      });
      await sleep(100);
      first.socket.destroy(); // cut off before the rest and SNAPSHOT_END
      const second = await fake.accept();
      assert.deepEqual(await subscribe(second), [1, 0], 'the cut-off snapshot is asked for again');
      second.send((w) => {
        w.control(T_SNAPSHOT_BEGIN, [2]);
        w.item(0, hlcNow(), 7, 0, 0, false, 'snap1', Buffer.from('1'));
        w.item(0, hlcNow(), 7, 0, 0, false, 'snap2', Buffer.from('2'));
        w.control(T_SNAPSHOT_END, [10]);
      });
      await sleep(100);
      second.socket.destroy();
      const third = await fake.accept();
      assert.deepEqual(await subscribe(third), [0, 10], 'after a complete snapshot: the log from its cursor');
      return third;
    })();
    const node = await startNode(await freePort(), [fakePort], ['--peer-wait', '5', '--anti-entropy-interval', '0']);
    try {
      const third = await script;
      assert.equal(await contents(node.client, ['snap1', 'snap2']), 'VALUE snap1 0 1\r\n1\r\nVALUE snap2 0 1\r\n2\r\nEND\r\n');
      third.socket.destroy();
    } finally {
      node.client.close();
      await node.server.stop();
      await fake.close();
    }
  });

  it('after a restart with --data-dir, new versions come after the kept ones', async () => {
    const dir = mkdtempSync(join(root, 'hlc-'));
    const fake = new FakePeer();
    const fakePort = await fake.listen();
    // A peer's version 50 s ahead of the clock here (within what is accepted) is kept in the data dir.
    const ahead = (Date.now() + 50_000) * 1024;
    const script = (async () => {
      const peer = await fake.accept();
      await handshake(peer);
      peer.send((w) => w.item(1, ahead, 7, 0, 0, false, 'ahead', Buffer.from('peer')));
      return peer;
    })();
    const replPort = await freePort();
    let node = await startNode(replPort, [fakePort], ['--peer-wait', '0.5', '--anti-entropy-interval', '0', '--data-dir', dir]);
    try {
      const peer = await script;
      for (let deadline = Date.now() + 3000; (await contents(node.client, ['ahead'])) === 'END\r\n' && Date.now() < deadline; ) await sleep(20);
      peer.socket.destroy();
      node.client.close();
      await node.server.stop();
      await fake.close();
      node = await startNode(replPort, [], ['--data-dir', dir]);
      assert.match(node.server.stderr(), /replication versions loaded: 1/);
      assert.equal(await node.client.request('set ahead 0 0 5\r\nlocal\r\n'), 'STORED\r\n');
      // Subscribe to the node as a peer would and read the version its change went out with.
      const sub = new FrameSocket(connect({ host: '127.0.0.1', port: replPort }));
      sub.send((w) => w.control(T_HELLO, [], Buffer.concat([Buffer.from([PROTOCOL_VERSION]), randomBytes(16), Buffer.from('fake-sub')])));
      await sub.expect(T_CHALLENGE);
      sub.send((w) => w.control(T_AUTH, []));
      await sub.expect(T_WELCOME);
      sub.send((w) => w.control(T_SUBSCRIBE, [0, 0]));
      const item = await sub.expect(T_ITEM);
      assert.ok(item.readDoubleBE(8) > ahead, `the local write's version ${item.readDoubleBE(8)} comes after the kept ${ahead}`);
      sub.socket.destroy();
    } finally {
      node.client.close();
      await node.server.stop();
    }
  });

  it('a touch frame sets the expiry of the value of its base version only; a protocol version 1 subscriber is refused', async () => {
    const fake = new FakePeer();
    const fakePort = await fake.listen();
    const base = hlcNow();
    const script = (async () => {
      const peer = await fake.accept();
      await handshake(peer);
      peer.send((w) => w.item(1, base, 7, 0, 0, false, 'tk', Buffer.from('peer')));
      return peer;
    })();
    const replPort = await freePort();
    const node = await startNode(replPort, [fakePort], ['--peer-wait', '0.5', '--anti-entropy-interval', '0']);
    const ttl = async (key: string): Promise<string> => node.client.request(`mg ${key} t\r\n`);
    const waitFor = async (key: string, check: RegExp): Promise<void> => {
      for (let deadline = Date.now() + 3000; !check.test(await ttl(key)) && Date.now() < deadline; ) await sleep(20);
      assert.match(await ttl(key), check);
    };
    try {
      const peer = await script;
      await waitFor('tk', /^HD t-1\r\n$/);
      const at = Math.floor(Date.now() / 1000) + 1000;
      peer.send((w) => w.touch(2, base + 10, 7, base, 7, at, 'tk'));
      await waitFor('tk', /^HD t(1000|999|998)\r\n$/);
      // Made on another value (a base version this node does not hold): the item keeps its expiry.
      peer.send((w) => w.touch(3, base + 20, 7, base - 5, 7, at + 1000, 'tk'));
      peer.send((w) => w.item(4, base + 30, 7, 0, 0, false, 'marker', Buffer.from('m')));
      await waitFor('marker', /^HD t-1\r\n$/);
      assert.match(await ttl('tk'), /^HD t(1000|999|998)\r\n$/);
      assert.equal(await node.client.request('mg tk v\r\n', 'peer\r\n'), 'VA 4\r\npeer\r\n');

      const old = new FrameSocket(connect({ host: '127.0.0.1', port: replPort }));
      old.send((w) => w.control(T_HELLO, [], Buffer.concat([Buffer.from([1]), randomBytes(16), Buffer.from('old-sub')])));
      assert.match((await old.expect(T_REFUSED)).toString(), new RegExp(`protocol version 1 is not ${PROTOCOL_VERSION}`));
      old.socket.destroy();
      peer.socket.destroy();
    } finally {
      node.client.close();
      await node.server.stop();
      await fake.close();
    }
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
