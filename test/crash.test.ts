/**
 * kill -9 under each --sync policy, checked against a model of acknowledged
 * operations (helpers/crash.ts): writers pipeline 1-6 set/append/incr/delete/get
 * per write over 1000 keys, every reply is checked live, and after each restart
 * every key must read back as the policy promises. A bounded slice here;
 * `npm run crash` is the long run. Environment: MNEMO_CRASH_ROUNDS (kills per
 * policy, default 3), MNEMO_CRASH_LOAD_MS (the longest time before a kill,
 * default 1000; interval=500 adds its 500 ms), MNEMO_CRASH_SEED (replays a run's draws: its first round's
 * commands exactly; later rounds start from what survived the kills, and the
 * kill moments fall where the machine's timing puts them).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { runCrash } from './helpers/crash.js';

const ROUNDS = Number(process.env.MNEMO_CRASH_ROUNDS ?? 3);
const LOAD_MS = Number(process.env.MNEMO_CRASH_LOAD_MS ?? 1000);
const SEED = Number(process.env.MNEMO_CRASH_SEED ?? Date.now() % 1_000_000_007);
/** The interval policy's flush period, and so the window of acknowledged writes a kill may lose. */
const INTERVAL_MS = 500;

const root = mkdtempSync(join(tmpdir(), 'mnemo-crash-'));
after(() => rmSync(root, { recursive: true, force: true }));

const policies = [
  { sync: 'always', windowMs: 0, promise: 'no acknowledged write lost' },
  { sync: `interval=${INTERVAL_MS}`, windowMs: INTERVAL_MS, promise: `none acknowledged more than ${INTERVAL_MS} ms before the kill lost` },
  { sync: 'none', windowMs: Infinity, promise: 'only whole values the key held' },
];

// The policies run side by side: most of the time is spent starting servers.
describe(`kill -9 against a model of acknowledged operations (seed ${SEED}, MNEMO_CRASH_SEED replays it)`, { concurrency: true }, () => {
  for (const [n, policy] of policies.entries()) {
    it(`--sync ${policy.sync}: ${ROUNDS} kills, no forbidden reply, ${policy.promise}`, { timeout: 60_000 + ROUNDS * (LOAD_MS + 15_000) }, async (t) => {
      const dir = join(root, `data${n}`);
      mkdirSync(dir);
      const seed = SEED + n;
      // Under interval=500 only writes acknowledged over 500 ms before the kill must survive: the kill
      // comes that much later, so that every round has such writes to check (else a kill at 300-500 ms checks nothing).
      const window = Number.isFinite(policy.windowMs) ? policy.windowMs : 0;
      const report = await runCrash({
        sync: policy.sync,
        windowMs: policy.windowMs,
        dataDir: dir,
        rounds: ROUNDS,
        loadMs: [Math.min(300, LOAD_MS) + window, LOAD_MS + window],
        replies: [100, 400],
        seed,
        log: (line) => t.diagnostic(line),
      });
      t.diagnostic(
        `seed ${seed}: ${report.sent} commands sent, ${report.acknowledged} answered; ` +
          `${report.keysWithKeptWrites} key checks with writes that had to be kept; ` +
          `${report.lostWrites} acknowledged writes lost (oldest ${report.oldestLostMs.toFixed(1)} ms before the kill)`,
      );
      t.diagnostic(Object.entries(report.counts).sort().map(([k, v]) => `${k}=${v}`).join(' '));
      assert.deepEqual(
        { forbiddenReplies: report.forbiddenReplies, badRestarts: report.badRestarts, failures: report.failures },
        { forbiddenReplies: 0, badRestarts: 0, failures: [] },
        `seed ${seed}`,
      );
      assert.deepEqual(report.stderr, []);
      // The run did what it claims: every command ran and met both outcomes, and the checks had work.
      for (const name of ['set:STORED', 'append:STORED', 'append:NOT_STORED', 'incr:number', 'incr:NOT_FOUND', 'delete:DELETED', 'delete:NOT_FOUND', 'get:hit', 'get:miss']) {
        assert.ok((report.counts[name] ?? 0) > 0, `${name} never happened`);
      }
      if (policy.windowMs !== Infinity) assert.ok(report.keysWithKeptWrites > 0, 'no restart had an acknowledged write to keep');
    });
  }
});
