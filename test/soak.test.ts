/**
 * A slice of the soak against the reference model (helpers/soak.ts, model.ts);
 * `npm run soak -- --minutes N` is the long run. MNEMO_SOAK_SECONDS sets the
 * slice (default 18).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { stderrProblems } from './helpers/fuzz.js';
import { startMemcached } from './helpers/memcached.js';
import { startMnemo, type RunningServer } from './helpers/mnemo.js';
import { runSoak } from './helpers/soak.js';

const SECONDS = Number(process.env.MNEMO_SOAK_SECONDS ?? 18);
const hasMemcached = spawnSync('memcached', ['-V']).status === 0;

describe('soak against a model', () => {
  let server: RunningServer;

  before(async () => {
    server = await startMnemo(['--test-clock']);
  });
  after(async () => {
    await server.stop();
  });

  it(`20 connections of text and meta commands answer as the model says (${SECONDS} s)`, { timeout: (SECONDS + 60) * 1000 }, async (t) => {
    const report = await runSoak({
      port: server.port,
      durationMs: SECONDS * 1000,
      connections: 20,
      testClock: true,
      alive: () => server.process.exitCode === null && server.process.signalCode === null,
    });
    t.diagnostic(
      `${report.commands} commands in ${report.batches} batches, ${report.epochs} clock moves, ${report.flushes} flushes: ` +
        Object.entries(report.counts).sort().map(([k, v]) => `${k}=${v}`).join(' '),
    );
    assert.deepEqual(report.failures, []);
    assert.ok(report.commands > 1000, `only ${report.commands} commands`);
    assert.ok(report.epochs > 0 && report.flushes > 0, 'no clock moves or flushes happened');
    for (const name of ['set', 'add', 'replace', 'append', 'prepend', 'cas', 'get', 'gets', 'gat', 'gats', 'touch', 'incr', 'decr', 'delete', 'mg', 'ms', 'md', 'ma']) {
      assert.ok((report.counts[name] ?? 0) > 0, `${name} never ran`);
    }
    assert.equal(server.process.exitCode, null);
    assert.deepEqual(stderrProblems(server.stderr()), []);
  });

  it('the model agrees with memcached itself', { skip: !hasMemcached && 'memcached is not installed', timeout: 60_000 }, async () => {
    const memcached = await startMemcached();
    try {
      const report = await runSoak({ port: memcached.port, durationMs: 4000, connections: 1, memcached: true });
      assert.deepEqual(report.failures, []);
    } finally {
      await memcached.stop();
    }
  });
});
