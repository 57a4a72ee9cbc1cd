/**
 * The long soak: `npm run soak -- [--minutes N] [--connections C] [--seed S] [--memcached]`.
 * Starts Mnemo with --test-clock (or, with --memcached, Debian's memcached, to
 * check the model itself against the reference; expiry then stays within one
 * epoch; use --connections 1 there, see SoakOptions.memcached) and runs the
 * model-checked mix for N minutes (default 5).
 */
import { parseArgs } from 'node:util';
import { stderrProblems } from '../test/helpers/fuzz.js';
import { startMemcached } from '../test/helpers/memcached.js';
import { startMnemo } from '../test/helpers/mnemo.js';
import { runSoak } from '../test/helpers/soak.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '5' },
    connections: { type: 'string', default: '20' },
    seed: { type: 'string' },
    memcached: { type: 'boolean', default: false },
  },
});

const seed = values.seed === undefined ? Date.now() % 1_000_000_007 : Number(values.seed);
let server: { stop(): Promise<void>; port: number; alive(): boolean; stderr(): string };
if (values.memcached) {
  const memcached = await startMemcached();
  server = { ...memcached, port: memcached.port, alive: () => true, stderr: () => '' };
} else {
  const mnemo = await startMnemo(['--test-clock']);
  server = {
    port: mnemo.port,
    stop: () => mnemo.stop(),
    alive: () => mnemo.process.exitCode === null && mnemo.process.signalCode === null,
    stderr: () => mnemo.stderr(),
  };
}
console.log(`soak: ${values.memcached ? 'memcached' : 'mnemo'} on port ${server.port}, seed ${seed}, ${values.minutes} minutes`);
let failed = false;
try {
  const report = await runSoak({
    port: server.port,
    durationMs: Number(values.minutes) * 60_000,
    connections: Number(values.connections),
    seed,
    testClock: !values.memcached,
    memcached: values.memcached,
    alive: server.alive,
    log: (line) => console.log(line),
  });
  const seconds = report.elapsedMs / 1000;
  console.log(
    `soak: ${report.commands} commands checked in ${report.batches} batches, ${seconds.toFixed(1)} s ` +
      `(${Math.round(report.commands / seconds)}/s), ${report.epochs} clock moves, ${report.flushes} flushes`,
  );
  console.log(`soak: ${Object.entries(report.counts).sort().map(([k, v]) => `${k}=${v}`).join(' ')}`);
  for (const line of stderrProblems(server.stderr()).slice(0, 10)) report.failures.push(`server stderr: ${line}`);
  for (const failure of report.failures) console.log(`FAIL ${failure}`);
  failed = report.failures.length > 0;
  console.log(failed ? `soak: ${report.failures.length} failures` : 'soak: no failures');
} finally {
  await server.stop();
}
process.exit(failed ? 1 : 0);
