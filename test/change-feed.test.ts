/**
 * The change feed as a node with --data-dir and a peer shows it: a touch travels as a
 * change of expiry (a few bytes to disk and to the peer, not the value), survives a
 * restart, and the stale mark of meta `md I` stays local to the node that made it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { connectClient, type RawClient, statLines } from './helpers/client.js';
import { freePort } from './helpers/memcached.js';
import { startMnemo, type RunningServer } from './helpers/mnemo.js';

const root = mkdtempSync(join(tmpdir(), 'mnemo-feed-'));
after(() => rmSync(root, { recursive: true, force: true }));

const started: RunningServer[] = [];
after(async () => {
  for (const server of started) await server.stop();
});

const VALUE_BYTES = 512 * 1024;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function stat(client: RawClient, name: string): Promise<number> {
  const value = (await statLines(client)).get(name);
  assert.notEqual(value, undefined, `stats has ${name}`);
  return Number(value);
}

/** Polls until check passes (replication is asynchronous); fails after 5 s with the last reply. */
async function eventually(client: RawClient, command: string, until: string, check: RegExp): Promise<string> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const reply = await client.request(command, until);
    if (check.test(reply) || Date.now() > deadline) {
      assert.match(reply, check);
      return reply;
    }
    await sleep(20);
  }
}

async function startNode(replPort: number, peerPort: number, extra: string[]): Promise<RunningServer> {
  const server = await startMnemo(['--replication-port', String(replPort), '--peer', `127.0.0.1:${peerPort}`, '--peer-wait', '2', ...extra]);
  started.push(server);
  return server;
}

describe('change feed', () => {
  it('a touch, gat and mg T write the new expiry to disk and to the peer, never the value', async (t) => {
    const dir = mkdtempSync(join(root, 'a-'));
    const [portA, portB] = await Promise.all([freePort(), freePort()]);
    let [a, b] = await Promise.all([startNode(portA, portB, ['-H', dir]), startNode(portB, portA, [])]);
    let clientA = await connectClient(a.port);
    const clientB = await connectClient(b.port);
    try {
      const value = 'v'.repeat(VALUE_BYTES);
      assert.equal(await clientA.request(`set big 5 0 ${VALUE_BYTES}\r\n${value}\r\n`), 'STORED\r\n');
      await eventually(clientB, 'mg big s t\r\n', '\r\n', new RegExp(`^HD s${VALUE_BYTES} t-1\r\n$`));
      // The set itself is counted: the value went to disk and to the peer.
      const diskAfterSet = await stat(clientA, 'disk_write_bytes');
      const sentAfterSet = await stat(clientA, 'peer_0_bytes_sent');
      assert.ok(diskAfterSet >= VALUE_BYTES, `disk_write_bytes ${diskAfterSet} counts the set`);
      assert.ok(sentAfterSet >= VALUE_BYTES, `peer_0_bytes_sent ${sentAfterSet} counts the set`);

      assert.equal(await clientA.request('touch big 1000\r\n'), 'TOUCHED\r\n');
      await eventually(clientB, 'mg big t\r\n', '\r\n', /^HD t(1000|999)\r\n$/);
      assert.match(await clientA.request('gat 2000 big\r\n', 'END\r\n'), new RegExp(`^VALUE big 5 ${VALUE_BYTES}\r\n`));
      await eventually(clientB, 'mg big t\r\n', '\r\n', /^HD t(2000|1999)\r\n$/);
      assert.equal(await clientA.request('mg big T3000\r\n'), 'HD\r\n');
      await eventually(clientB, 'mg big t f\r\n', '\r\n', /^HD t(3000|2999) f5\r\n$/);

      // Three expiry changes: a few dozen bytes each to disk and to the peer (heartbeats add a little on the link).
      const diskWritten = (await stat(clientA, 'disk_write_bytes')) - diskAfterSet;
      const sent = (await stat(clientA, 'peer_0_bytes_sent')) - sentAfterSet;
      t.diagnostic(`three touches of a ${VALUE_BYTES}-byte value: ${diskWritten} bytes to disk, ${sent} bytes to the peer`);
      assert.ok(diskWritten > 0 && diskWritten < 200, `disk_write_bytes grew by ${diskWritten} for three touches`);
      assert.ok(sent > 0 && sent < 2000, `peer_0_bytes_sent grew by ${sent} for three touches`);
      // The peer still has the whole value.
      assert.equal(await clientB.request('mg big s\r\n'), `HD s${VALUE_BYTES}\r\n`);

      // A restart of A reads the touched expiry back from its disk.
      clientA.close();
      await a.stop();
      a = await startNode(portA, portB, ['-H', dir]);
      clientA = await connectClient(a.port);
      assert.match(await clientA.request('mg big t s\r\n'), new RegExp(`^HD t(3000|2999|2998) s${VALUE_BYTES}\r\n$`));
      // A set after a touch drops the touch's expiry on disk: the restart reads the new record's.
      assert.equal(await clientA.request('set big 0 0 3\r\nnew\r\n'), 'STORED\r\n');
      clientA.close();
      await a.stop();
      a = await startNode(portA, portB, ['-H', dir]);
      clientA = await connectClient(a.port);
      assert.equal(await clientA.request('mg big t v\r\n', 'new\r\n'), 'VA 3 t-1\r\nnew\r\n');
    } finally {
      clientA.close();
      clientB.close();
      await a.stop();
      await b.stop();
    }
  });

  it("md I's stale mark is local: not replicated, not kept across a restart; the value and the peer's copy stay", async () => {
    const dir = mkdtempSync(join(root, 'i-'));
    const [portA, portB] = await Promise.all([freePort(), freePort()]);
    let [a, b] = await Promise.all([startNode(portA, portB, ['-H', dir]), startNode(portB, portA, [])]);
    let clientA = await connectClient(a.port);
    const clientB = await connectClient(b.port);
    try {
      assert.equal(await clientA.request('set page 0 0 3\r\nold\r\n'), 'STORED\r\n');
      await eventually(clientB, 'mg page s\r\n', '\r\n', /^HD s3\r\n$/);
      const sentBefore = await stat(clientA, 'peer_0_bytes_sent');
      assert.equal(await clientA.request('md page I\r\n'), 'HD\r\n');
      assert.equal(await clientA.request('mg page v\r\n', 'old\r\n'), 'VA 3 X W\r\nold\r\n');
      // Nothing to ship: the peer serves the value unmarked (give a change time to arrive).
      await sleep(300);
      assert.ok((await stat(clientA, 'peer_0_bytes_sent')) - sentBefore < 200, 'no frame for the invalidation');
      assert.equal(await clientB.request('mg page v\r\n', 'old\r\n'), 'VA 3\r\nold\r\n');
      // A restart forgets the mark: the value comes back from disk as it was stored.
      clientA.close();
      await a.stop();
      a = await startNode(portA, portB, ['-H', dir]);
      clientA = await connectClient(a.port);
      assert.equal(await clientA.request('mg page v\r\n', 'old\r\n'), 'VA 3\r\nold\r\n');
    } finally {
      clientA.close();
      clientB.close();
      await a.stop();
      await b.stop();
    }
  });
});
