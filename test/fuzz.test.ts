/**
 * A time-bounded slice of the protocol fuzzer (helpers/fuzz.ts); `npm run fuzz`
 * is the long run. MNEMO_FUZZ_SECONDS sets the slice (default 25).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { request } from './helpers/binary.js';
import { BinaryFraming, TextFraming, dataBlockLength } from './helpers/framing.js';
import { runFuzz, stderrProblems } from './helpers/fuzz.js';
import { startMemcached } from './helpers/memcached.js';
import { startMnemo, type RunningServer } from './helpers/mnemo.js';

const SECONDS = Number(process.env.MNEMO_FUZZ_SECONDS ?? 25);
const hasMemcached = spawnSync('memcached', ['-V']).status === 0;

describe('framing oracle', () => {
  it('knows where text commands and their data blocks end', () => {
    const line = (text: string) => dataBlockLength(Buffer.from(text, 'latin1'));
    assert.equal(line('set a 0 0 5'), 7);
    assert.equal(line('set a 0 0 5 noreply'), 7);
    assert.equal(line('set a 0 0 4294967297'), 3); // memcached keeps the low 32 bits
    assert.equal(line('set a 0 0 2147483648'), 0); // negative as int32: refused, no data
    assert.equal(line('set a -1 0 5'), 0);
    assert.equal(line('set a 0 0 5 x y'), 0);
    assert.equal(line(`set ${'k'.repeat(251)} 0 0 5`), 0);
    assert.equal(line('cas a 0 0 5 -1'), 0);
    assert.equal(line('ms a 3 T5'), 5);
    assert.equal(line('ms a'), 0);
    assert.equal(line('get a'), 0);
    const text = new TextFraming();
    text.push(Buffer.from('set a 0 0 5\r\nab'));
    assert.equal(text.pending, 5);
    text.push(Buffer.from('cde\r\nquit\r\n'));
    assert.equal(text.pending, 0);
    assert.ok(text.closeAllowed);
  });

  it('knows where binary requests end and which ones close', () => {
    const binary = new BinaryFraming();
    binary.push(request({ opcode: 0x01, key: 'k', extras: Buffer.alloc(8), value: 'xyz' }).subarray(0, 30));
    assert.equal(binary.pending, 24 + 8 + 1 - 30); // extras and key first, as memcached reads them
    binary.push(Buffer.alloc(3));
    assert.equal(binary.pending, 3); // then the value
    binary.push(Buffer.alloc(3));
    assert.equal(binary.pending, 0);
    binary.push(request({ opcode: 0x0a, key: 'k' }));
    assert.ok(binary.closed);
  });
});

describe('protocol fuzzing', () => {
  let server: RunningServer;

  before(async () => {
    // -F and -X: the fuzzer cannot flush the sentinel items or dump every key it made; -M: nor evict them.
    server = await startMnemo(['-F', '-X', '-M', '-m', '64']);
  });
  after(async () => {
    await server.stop();
  });

  it(`text, meta and binary garbage never crashes or desynchronises Mnemo (${SECONDS} s)`, { timeout: (SECONDS + 60) * 1000 }, async (t) => {
    const report = await runFuzz({
      port: server.port,
      durationMs: SECONDS * 1000,
      workers: 4,
      alive: () => server.process.exitCode === null && server.process.signalCode === null,
    });
    t.diagnostic(
      `${report.inputs} inputs in ${report.batches} batches, ${Math.round(report.inputs / (report.elapsedMs / 1000))}/s, ` +
        `${report.expectedCloses} expected closes, ${report.abandoned} abandoned, ${report.liveness} liveness probes`,
    );
    assert.deepEqual(report.failures, []);
    assert.ok(report.inputs > 1000, `only ${report.inputs} inputs`);
    assert.equal(server.process.exitCode, null);
    assert.deepEqual(stderrProblems(server.stderr()), []);
  });

  it('the framing oracle agrees with memcached itself', { skip: !hasMemcached && 'memcached is not installed', timeout: 60_000 }, async () => {
    const memcached = await startMemcached(['-F', '-X', '-M', '-m', '64']);
    try {
      const report = await runFuzz({ port: memcached.port, durationMs: 4000, workers: 2, knownOpcodesOnly: true });
      assert.deepEqual(report.failures, []);
    } finally {
      await memcached.stop();
    }
  });
});
