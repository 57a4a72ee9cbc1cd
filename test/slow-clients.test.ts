/**
 * Slow clients and connection floods: 1,000 connections that ask for a large
 * value many times and never read must not slow other clients down or make the
 * server buffer without bound; connections beyond -c are refused with
 * memcached's error line and the server stays healthy.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { stderrProblems } from './helpers/fuzz.js';
import { startMnemo, type RunningServer } from './helpers/mnemo.js';
import { Wire } from './helpers/wire.js';

/** The server's resident memory in MiB (VmRSS). */
function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]);
  return kb / 1024;
}

/** One `version` round trip on a connection, in milliseconds. */
async function versionRoundTrip(wire: Wire, timeoutMs = 5000): Promise<number> {
  const started = performance.now();
  wire.write('version\r\n');
  const line = await wire.line(timeoutMs);
  assert.match(line, /^VERSION /);
  return performance.now() - started;
}

async function openMany(port: number, count: number): Promise<Wire[]> {
  const wires: Wire[] = [];
  // In waves, so the listen backlog is never the limit.
  for (let i = 0; i < count; i += 100) {
    wires.push(...(await Promise.all(Array.from({ length: Math.min(100, count - i) }, () => Wire.open(port)))));
  }
  return wires;
}

describe('slow clients', () => {
  let server: RunningServer;
  const VALUE_SIZE = 256 * 1024;
  const GETS_PER_CLIENT = 16;

  before(async () => {
    server = await startMnemo(['-c', '1100', '-m', '64']);
  });
  after(async () => {
    await server.stop();
  });

  it('1,000 clients that never read leave other clients fast and memory bounded', async () => {
    const setup = await Wire.open(server.port);
    const value = Buffer.alloc(VALUE_SIZE, 0x61);
    setup.write(Buffer.concat([Buffer.from(`set big 0 0 ${VALUE_SIZE}\r\n`), value, Buffer.from('\r\n')]));
    assert.equal(await setup.line(), 'STORED');
    const before = rssMiB(server.process.pid!);

    const slow = await openMany(server.port, 1000);
    try {
      // Each asks for 16 x 256 KiB = 4 MiB and reads nothing (sockets paused, data left in the kernel).
      const request = Buffer.from('get big\r\n'.repeat(GETS_PER_CLIENT));
      for (const wire of slow) {
        wire.socket.pause();
        wire.write(request);
      }
      // The first round trip waits while the server hands 16,000 replies of 256 KiB to the
      // kernel (until every slow socket is full and paused): bounded, loosely.
      const probe = await Wire.open(server.port);
      const burst = await versionRoundTrip(probe, 30_000);
      assert.ok(burst < 30_000, `the first round trip took ${burst.toFixed(0)} ms`);
      // From then on the slow clients are parked and others see normal latency.
      let worst = 0;
      let peak = rssMiB(server.process.pid!);
      const deadline = Date.now() + 6000;
      while (Date.now() < deadline) {
        worst = Math.max(worst, await versionRoundTrip(probe));
        // A fresh connection is served too.
        const fresh = await Wire.open(server.port);
        worst = Math.max(worst, await versionRoundTrip(fresh));
        fresh.close();
        peak = Math.max(peak, rssMiB(server.process.pid!));
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      probe.close();
      assert.ok(worst < 1000, `a version round trip took ${worst.toFixed(0)} ms while 1,000 clients did not read`);
      assert.ok(peak < 1024, `server RSS reached ${peak.toFixed(0)} MiB (was ${before.toFixed(0)} MiB)`);
      // The server still holds data correctly.
      setup.write('get big\r\n');
      assert.equal(await setup.line(), `VALUE big 0 ${VALUE_SIZE}`);
      assert.ok((await setup.bytes(VALUE_SIZE + 2)).subarray(0, VALUE_SIZE).equals(value));
      assert.equal(await setup.line(), 'END');
    } finally {
      for (const wire of slow) wire.close();
      setup.close();
    }
    assert.equal(server.process.exitCode, null);
    assert.deepEqual(stderrProblems(server.stderr()), []);
  });
});

describe('connection flood beyond -c', () => {
  let server: RunningServer;
  const LIMIT = 100;

  before(async () => {
    server = await startMnemo(['-c', String(LIMIT)]);
  });
  after(async () => {
    await server.stop();
  });

  it('refuses the extra connections cleanly and keeps serving', async () => {
    const held = await openMany(server.port, LIMIT);
    // Every held connection is really served.
    await Promise.all(held.map((wire) => versionRoundTrip(wire)));
    const extra = await openMany(server.port, 400);
    try {
      for (const wire of extra) {
        const state = await wire.waitFor(() => false, 5000);
        assert.equal(state, 'closed', 'a connection beyond -c stayed open');
        assert.equal(wire.take().toString('latin1'), 'ERROR Too many open connections\r\n');
      }
      // Those inside the limit still work, and freeing some lets new ones in.
      await Promise.all(held.map((wire) => versionRoundTrip(wire)));
      for (const wire of held.splice(0, 10)) wire.close();
      let admitted: Wire | null = null;
      for (let attempt = 0; attempt < 50 && admitted === null; attempt++) {
        const wire = await Wire.open(server.port);
        wire.write('version\r\n');
        const state = await wire.waitFor(() => wire.available > 0, 2000);
        const text = wire.take().toString('latin1');
        if (state === 'ok' && text.startsWith('VERSION ')) admitted = wire;
        else {
          wire.close();
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
      assert.ok(admitted !== null, 'no connection was admitted after others closed');
      admitted.write('stats\r\n');
      let rejected = -1;
      for (;;) {
        const line = await admitted.line();
        if (line === 'END') break;
        const match = /^STAT rejected_connections (\d+)$/.exec(line);
        if (match) rejected = Number(match[1]);
      }
      assert.ok(rejected >= 400, `rejected_connections is ${rejected}`);
      admitted.close();
    } finally {
      for (const wire of [...held, ...extra]) wire.close();
    }
    assert.equal(server.process.exitCode, null);
    assert.deepEqual(stderrProblems(server.stderr()), []);
  });
});
