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

/** A TCP proxy between two peers that can cut the link (and refuse new connections) until healed. */
class CuttingProxy {
  private readonly sockets = new Set<Socket>();
  private open = true;
  private readonly server = createServer((client) => {
    if (!this.open) {
      client.destroy();
      return;
    }
    const upstream = connect({ host: '127.0.0.1', port: this.target });
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => {
        this.sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });

  constructor(private readonly target: number) {}

  async listen(): Promise<number> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return (this.server.address() as AddressInfo).port;
  }

  cut(): void {
    this.open = false;
    for (const socket of this.sockets) socket.destroy();
  }

  heal(): void {
    this.open = true;
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
    const proxy = new CuttingProxy(portB);
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
