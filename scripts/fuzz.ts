/**
 * The long fuzz run: `npm run fuzz -- [--inputs N] [--seconds S] [--workers W] [--seed N] [--memcached]`.
 * Starts its own server (Mnemo, or with --memcached Debian's memcached, to check
 * the framing oracle against the reference), fuzzes it until N inputs (default
 * 1,000,000) or S seconds, prints the count and rate, exits 1 on any failure.
 */
import { parseArgs } from 'node:util';
import { runFuzz, stderrProblems } from '../test/helpers/fuzz.js';
import { startMemcached } from '../test/helpers/memcached.js';
import { startMnemo } from '../test/helpers/mnemo.js';

const { values } = parseArgs({
  options: {
    inputs: { type: 'string', default: '1000000' },
    seconds: { type: 'string' },
    workers: { type: 'string', default: '4' },
    seed: { type: 'string' },
    memcached: { type: 'boolean', default: false },
  },
});

// -F and -X keep the fuzzer from flushing the sentinels or dumping every key it made; -M keeps them from being evicted.
const serverArgs = ['-F', '-X', '-M', '-m', '64'];
const seed = values.seed === undefined ? Date.now() % 1_000_000_007 : Number(values.seed);
let server: { stop(): Promise<void>; port: number; alive(): boolean; stderr(): string };
if (values.memcached) {
  const memcached = await startMemcached(serverArgs);
  server = { ...memcached, port: memcached.port, alive: () => true, stderr: () => '' };
} else {
  const mnemo = await startMnemo(serverArgs);
  server = {
    port: mnemo.port,
    stop: () => mnemo.stop(),
    alive: () => mnemo.process.exitCode === null && mnemo.process.signalCode === null,
    stderr: () => mnemo.stderr(),
  };
}
console.log(`fuzzing ${values.memcached ? 'memcached' : 'mnemo'} on port ${server.port}, seed ${seed}`);
let failed = false;
try {
  const report = await runFuzz({
    port: server.port,
    maxInputs: Number(values.inputs),
    durationMs: values.seconds === undefined ? undefined : Number(values.seconds) * 1000,
    workers: Number(values.workers),
    seed,
    alive: server.alive,
    log: (line) => console.log(line),
    knownOpcodesOnly: values.memcached,
  });
  const seconds = report.elapsedMs / 1000;
  console.log(
    `fuzz: ${report.inputs} inputs in ${report.batches} batches, ${(report.bytesSent / 1e6).toFixed(1)} MB, ` +
      `${seconds.toFixed(1)} s, ${Math.round(report.inputs / seconds)} inputs/s; ${report.expectedCloses} expected closes, ` +
      `${report.abandoned} batches with a data block too large to complete, ${report.liveness} liveness probes`,
  );
  const problems = stderrProblems(server.stderr());
  if (!server.alive()) report.failures.push('the server process died');
  for (const line of problems.slice(0, 10)) report.failures.push(`server stderr: ${line}`);
  for (const failure of report.failures) console.log(`FAIL ${failure}`);
  failed = report.failures.length > 0;
  console.log(failed ? `fuzz: ${report.failures.length} failures` : 'fuzz: no failures');
} finally {
  await server.stop();
}
process.exit(failed ? 1 : 0);
