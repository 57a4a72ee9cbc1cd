/**
 * Values still arriving are bounded across all connections (by -m by default),
 * as memcached bounds them by allocating each item before reading its data:
 * a set past the bound gets "SERVER_ERROR out of memory storing object" once its
 * data is swallowed, the connection stays in step, and the memory held stays
 * bounded however many clients leave sets unfinished.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseResponses, request, storeExtras } from './helpers/binary.js';
import { connectClient, type RawClient } from './helpers/client.js';
import { startMnemo, type RunningServer } from './helpers/mnemo.js';

const MiB = 1024 * 1024;
const OUT_OF_MEMORY = 'SERVER_ERROR out of memory storing object\r\n';

/** A connection for stats, which keeps its own `stats` requests out of the bytes the server read. */
class Admin {
  private statsSent = 0;
  private constructor(readonly client: RawClient) {}

  static async connect(port: number): Promise<Admin> {
    return new Admin(await connectClient(port));
  }

  async stat(name: string): Promise<number> {
    this.statsSent++;
    const text = await this.client.request('stats\r\n', 'END\r\n');
    const match = new RegExp(`^STAT ${name} (\\d+)\\r$`, 'm').exec(text);
    assert.ok(match, `no stat ${name}`);
    return Number(match[1]);
  }

  /** Waits (polling, no fixed delay) until the server has read `bytes` besides these stats requests. */
  async untilRead(bytes: number): Promise<void> {
    for (let tries = 0; tries < 600; tries++) {
      const read = await this.stat('bytes_read');
      if (read - this.statsSent * 'stats\r\n'.length >= bytes) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.fail(`the server did not read ${bytes} bytes`);
  }

  /** Waits until only this connection is open: the server has seen the others close. */
  async untilAlone(): Promise<void> {
    for (let tries = 0; tries < 600; tries++) {
      if ((await this.stat('curr_connections')) === 1) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.fail('connections stayed open');
  }

  close(): void {
    this.client.close();
  }
}

/** Peak resident memory of the server process so far (VmHWM): no sampling, so no timing. */
function peakRssMiB(server: RunningServer): number {
  return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${server.process.pid}/status`, 'latin1'))![1]) / 1024;
}

/** A value that names its key, so a value mixed up with another cannot pass. */
function valueFor(key: string, size: number): Buffer {
  return Buffer.from(`${key}|`.repeat(Math.ceil(size / (key.length + 1))).slice(0, size), 'latin1');
}

/** Reads one connection's whole reply to `data + get`: the set's line, then the get's. */
async function textReplies(client: RawClient): Promise<string> {
  return (await client.readUntil((got) => got.length >= 5 && got.subarray(got.length - 5).toString('latin1') === 'END\r\n', 30_000)).toString('latin1');
}

describe('unfinished sets', () => {
  it('are bounded across connections: the ones past -m are refused, the others are stored intact', async (t) => {
    const server = await startMnemo(['-m', '16']);
    const admin = await Admin.connect(server.port);
    const clients: RawClient[] = [];
    try {
      const count = 300;
      const size = 1_000_000;
      const sent = 900_000;
      let total = 0;
      for (let i = 0; i < count; i++) clients.push(await connectClient(server.port));
      // An old value under every key: a refused set must not leave it behind (memcached unlinks it).
      for (let i = 0; i < count; i += 50) {
        let batch = '';
        for (let j = i; j < i + 50; j++) batch += `set k${j} 0 0 3 noreply\r\nold\r\n`;
        await admin.client.request(`${batch}mn\r\n`, 'MN\r\n');
        total += batch.length + 'mn\r\n'.length;
      }
      const peakBefore = peakRssMiB(server);
      for (let i = 0; i < count; i++) {
        const head = `set k${i} 0 0 ${size}\r\n`;
        clients[i]!.send(Buffer.concat([Buffer.from(head), valueFor(`k${i}`, size).subarray(0, sent)]));
        total += head.length + sent;
      }
      await admin.untilRead(total);
      const peak = peakRssMiB(server);
      t.diagnostic(`peak RSS ${peakBefore.toFixed(0)} MiB before, ${peak.toFixed(0)} MiB with ${count} sets of ${size} bytes unfinished`);
      // Unbounded, this held ~300 MiB more than at start; bounded, 16 MiB of values plus the garbage of swallowed ones.
      assert.ok(peak - peakBefore < 120, `peak RSS grew by ${(peak - peakBefore).toFixed(0)} MiB`);
      // As in memcached, the refusal is answered once the data is swallowed, not before.
      for (const client of clients) assert.equal((await client.readUntil(() => true, 0)).length, 0);

      for (let i = 0; i < count; i++) clients[i]!.send(Buffer.concat([valueFor(`k${i}`, size).subarray(sent), Buffer.from(`\r\nget k${i}\r\n`)]));
      let stored = 0;
      for (let i = 0; i < count; i++) {
        const replies = await textReplies(clients[i]!);
        if (replies.startsWith('STORED\r\n')) {
          stored++;
          const expected = Buffer.concat([Buffer.from(`STORED\r\nVALUE k${i} 0 ${size}\r\n`), valueFor(`k${i}`, size), Buffer.from('\r\nEND\r\n')]);
          assert.ok(Buffer.from(replies, 'latin1').equals(expected), `k${i}: the stored value is not the one sent`);
        } else {
          assert.equal(replies, `${OUT_OF_MEMORY}END\r\n`, `k${i}`);
        }
      }
      // -m 16 bounds them to 16 MiB: 16 data blocks of 1,000,002 bytes fit, the 17th does not.
      assert.equal(stored, 16);
      assert.equal(await admin.stat('store_no_memory'), count - stored);

      // Everything given back: a set that arrives in pieces is taken again, and the connection is in step.
      const late = clients[0]!;
      late.send(`set again 0 0 ${size}\r\n`);
      late.send(valueFor('again', size).subarray(0, sent));
      assert.equal(await late.request(Buffer.concat([valueFor('again', size).subarray(sent), Buffer.from('\r\n')]), '\r\n'), 'STORED\r\n');
    } finally {
      for (const client of clients) client.close();
      admin.close();
      await server.stop();
    }
  });

  it('gives back the room of connections that close mid-value', async () => {
    const server = await startMnemo(['-m', '16', '-I', '8m']);
    const admin = await Admin.connect(server.port);
    try {
      const size = 5 * MiB;
      let expected = 0;
      // Three 5 MiB values take 15 of the 16 MiB; their clients hang up before finishing.
      for (let round = 0; round < 3; round++) {
        const quitters: RawClient[] = [];
        for (let i = 0; i < 3; i++) {
          const client = await connectClient(server.port);
          const head = `set q${i} 0 0 ${size}\r\nxx`;
          client.send(head);
          expected += head.length;
          quitters.push(client);
        }
        await admin.untilRead(expected);
        for (const client of quitters) client.close();
        await admin.untilAlone();
        // Another 5 MiB value in pieces is refused unless the closed connections gave back their room.
        const probe = await connectClient(server.port);
        const head = `set probe 0 0 ${size}\r\n`;
        probe.send(head);
        probe.send(Buffer.alloc(size - 10, 0x70));
        expected += head.length + size - 10;
        await admin.untilRead(expected);
        assert.equal(await probe.request(Buffer.concat([Buffer.alloc(10, 0x70), Buffer.from('\r\n')])), 'STORED\r\n');
        expected += 12;
        probe.close();
        await admin.untilAlone();
      }
    } finally {
      admin.close();
      await server.stop();
    }
  });

  it('are refused the same way in meta (ms) and binary (set) past the bound', async () => {
    const server = await startMnemo(['-m', '16']);
    const admin = await Admin.connect(server.port);
    const clients: RawClient[] = [];
    try {
      const size = 600_000;
      const sent = 450_000;
      const count = 40;
      let total = 0;
      const requests: Buffer[] = [];
      for (let i = 0; i < count; i++) {
        const key = `m${i}`;
        // Even connections speak meta, odd ones binary.
        requests.push(
          i % 2 === 0
            ? Buffer.concat([Buffer.from(`ms ${key} ${size} T0\r\n`), valueFor(key, size), Buffer.from(`\r\nmg ${key} v\r\nmn\r\n`)])
            : Buffer.concat([
                request({ opcode: 0x01, key, extras: storeExtras(0, 0), value: valueFor(key, size), opaque: i }),
                request({ opcode: 0x0c, key, opaque: i }),
              ]),
        );
        clients.push(await connectClient(server.port));
      }
      // Cut each request after the header and `sent` bytes of the value.
      const cut = (i: number): number => (i % 2 === 0 ? `ms m${i} ${size} T0\r\n`.length : 24 + 8 + `m${i}`.length) + sent;
      for (let i = 0; i < count; i++) {
        clients[i]!.send(requests[i]!.subarray(0, cut(i)));
        total += cut(i);
      }
      await admin.untilRead(total);
      for (let i = 0; i < count; i++) clients[i]!.send(requests[i]!.subarray(cut(i)));
      let stored = 0;
      for (let i = 0; i < count; i++) {
        const key = `m${i}`;
        if (i % 2 === 0) {
          const replies = Buffer.from(await clients[i]!.readUntilEnds('MN\r\n', 30_000), 'latin1');
          if (replies.toString('latin1', 0, 4) === 'HD\r\n') {
            stored++;
            assert.ok(replies.equals(Buffer.concat([Buffer.from(`HD\r\nVA ${size}\r\n`), valueFor(key, size), Buffer.from('\r\nMN\r\n')])), key);
          } else {
            assert.equal(replies.toString('latin1'), `${OUT_OF_MEMORY}EN\r\nMN\r\n`, key);
          }
        } else {
          const data = await clients[i]!.readUntil((got) => parseResponses(got)[0].length === 2, 30_000);
          const [responses] = parseResponses(data);
          if (responses[0]!.status === 0) {
            stored++;
            assert.equal(responses[1]!.status, 0);
            assert.ok(responses[1]!.value.equals(valueFor(key, size)), key);
          } else {
            assert.deepEqual([responses[0]!.status, responses[0]!.value.toString('latin1')], [0x82, 'Out of memory allocating item'], key);
            assert.equal(responses[1]!.status, 0x01, `${key}: nothing stored`);
          }
        }
      }
      // 16 MiB holds 27 data blocks of 600,002 bytes (binary: 600,000).
      assert.equal(stored, 27);
    } finally {
      for (const client of clients) client.close();
      admin.close();
      await server.stop();
    }
  });

  it('hold authentication data (-Y, SASL) to the same bound', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mnemo-partial-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const passwords = join(dir, 'passwords');
    writeFileSync(passwords, 'alice:wonderland\n');
    const size = 2 * MiB;
    const ascii = await startMnemo(['-m', '1', '-I', '256k', '-Y', passwords]);
    try {
      const client = await connectClient(ascii.port);
      // Past the 1 MiB bound before authenticating: refused, swallowed, and the connection can still log in.
      client.send(`set auth 0 0 ${size}\r\n`);
      client.send(Buffer.alloc(size, 0x61));
      assert.equal(await client.request('\r\n'), OUT_OF_MEMORY);
      assert.equal(await client.request('set auth 0 0 16\r\nalice wonderland\r\n'), 'STORED\r\n');
      client.close();
    } finally {
      await ascii.stop();
    }
    const sasl = await startMnemo(['-m', '1', '-I', '256k', '-S', '--sasl-pwdb', passwords]);
    try {
      const client = await connectClient(sasl.port);
      const huge = request({ opcode: 0x21, key: 'PLAIN', value: Buffer.alloc(size, 0x61) });
      client.send(huge.subarray(0, 1000));
      client.send(huge.subarray(1000));
      const [refused] = parseResponses(await client.readUntil((got) => parseResponses(got)[0].length === 1));
      assert.deepEqual([refused![0]!.status, refused![0]!.value.toString('latin1')], [0x82, 'Out of memory']);
      client.send(request({ opcode: 0x21, key: 'PLAIN', value: '\0alice\0wonderland' }));
      const [accepted] = parseResponses(await client.readUntil((got) => parseResponses(got)[0].length === 1));
      assert.equal(accepted![0]!.status, 0);
      client.close();
    } finally {
      await sasl.stop();
    }
  });
});
