#!/usr/bin/env node
// Mnemo vs memcached benchmark harness. See bench/NOTES.md.
//   npm run bench          full run: scenarios a-g, 3 rounds, 8 s per server per run
//   npm run bench:smoke    scenario a only, one round, 5 s per server; never asserts on timings
// The summary prints issue 15's targets beside the measured ratios with a pass/miss mark; it
// never fails on them.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  cpuCount,
  cpuSeconds,
  load,
  median,
  parseTraceGc,
  percentile,
  rssBytes,
  runMemaslap,
  startProbe,
  startServer,
  stats,
  systemBusySeconds,
} from './lib.mjs';

const HELP = `Usage: node bench/run.mjs [options]
  --scenarios=LIST   comma-separated subset of a,b,c,d,e,f,g (default: all)
                       a  50 conns, 10% set / 90% get, 32 B values, 100k keys prefilled;
                          memcached, Mnemo and node-floor.mjs (../shared/bench: fixed replies)
                       b  as a, with multi-gets of 16 keys (memcaslap -d 16); the floor too
                       c  as a, with 4 KiB values (memcached and Mnemo)
                       d  memory: RSS per item after loading 1,000,000 items of 100 B
                       e  naive-node-server.mjs (../shared/bench) under workload a, beside a's servers
                       f  persistence: 50 conns, 100% set, 256 B values; memcached, Mnemo in
                          memory, with --data-dir --sync interval=1000, and --sync always
                       g  GC pauses: Mnemo under node --trace-gc, 1,000,000 items of 100 B loaded
                          (--mem-items), then workload a; the longest pause and the GC count
                          during the load
  --rounds=N         rounds; server order alternates each round (default 3)
  --seconds=S        memcaslap run time per server per run (default 8)
  --memory=MB        -m for every server (default 1024)
  --keys=N           keys prefilled and memcaslap's window in a-c (default 100000)
  --mem-items=N      items loaded in d and g (default 1000000)
  --out=FILE         Markdown output (default bench/results/latest.md)
  --cpu-prof=DIR     run Mnemo under node --cpu-prof, profiles written to DIR
  --smoke            scenario a, 1 round, 5 s, output to bench/results/smoke.md.tmp
  --no-pin           let servers and memcaslap use every core (LMDB's commit thread then
                     runs beside Mnemo's event loop instead of sharing its core)
  --verbose          print memcaslap's raw output
  -h, --help
Timings never make the run fail: the summary prints issue 15's targets with pass/miss marks.`;

const { values: opt } = parseArgs({
  options: {
    scenarios: { type: 'string' },
    rounds: { type: 'string' },
    seconds: { type: 'string' },
    memory: { type: 'string', default: '1024' },
    keys: { type: 'string', default: '100000' },
    'mem-items': { type: 'string', default: '1000000' },
    out: { type: 'string' },
    'cpu-prof': { type: 'string' },
    smoke: { type: 'boolean', default: false },
    'no-pin': { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  console.log(HELP);
  process.exit(0);
}

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(benchDir, '..');
const naivePath = path.resolve(repoRoot, '../shared/bench/naive-node-server.mjs');
const smoke = opt.smoke;
const scenarios = new Set((opt.scenarios ?? (smoke ? 'a' : 'a,b,c,d,e,f,g')).split(',').map((s) => s.trim()).filter(Boolean));
for (const s of scenarios) if (!'abcdefg'.includes(s) || s.length !== 1) usage(`unknown scenario '${s}'`);
const rounds = int(opt.rounds ?? (smoke ? '1' : '3'), 'rounds');
const seconds = int(opt.seconds ?? (smoke ? '5' : '8'), 'seconds');
const mb = int(opt.memory, 'memory');
const keys = int(opt.keys, 'keys');
const memItems = int(opt['mem-items'], 'mem-items');
const outFile = path.resolve(opt.out ?? path.join(benchDir, 'results', smoke ? 'smoke.md.tmp' : 'latest.md'));
const CONNS = 50;
// memcaslap's window is per connection and takes only k/m/g suffixes (k = 1024): 2k x 50 = 102,400 keys.
const msWindow = `${Math.max(1, Math.round(keys / CONNS / 1024))}k`;

function usage(msg) {
  console.error(`bench: ${msg}\n${HELP}`);
  process.exit(2);
}
function int(s, name) {
  const n = Number(s);
  if (!Number.isInteger(n) || n <= 0) usage(`--${name} must be a positive integer`);
  return n;
}
const log = (msg) => process.stderr.write(`${msg}\n`);

// Pinning: servers on core 0; memcaslap, this harness, its loader and its probe on core 1.
const pin = cpuCount() >= 2 && !opt['no-pin'];
const SERVER_CPU = pin ? 0 : null;
const GEN_CPU = pin ? 1 : null;

for (const tool of ['memcached', 'memcaslap', ...(pin ? ['taskset'] : []), ...(scenarios.has('g') ? ['stdbuf'] : [])]) {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
  } catch {
    console.error(`bench: ${tool} is not installed (apt-get install -y memcached libmemcached-tools util-linux coreutils)`);
    process.exit(1);
  }
}
if (pin) execFileSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
if (!existsSync(path.join(repoRoot, 'dist', 'main.js'))) {
  console.error('bench: dist/main.js is missing: run `npm run build` first (npm run bench does)');
  process.exit(1);
}
const naiveNote = scenarios.has('e') && !existsSync(naivePath) ? `scenario e skipped: ${naivePath} is absent` : null;
const floorPath = path.join(path.dirname(naivePath), 'node-floor.mjs');
const floorNote = ['a', 'b'].some((w) => scenarios.has(w)) && !existsSync(floorPath)
  ? `the floor was not run: ${floorPath} is absent, so the ratios to it are not measured` : null;
if (floorNote) log(`bench: ${floorNote}`);
if (naiveNote) {
  scenarios.delete('e');
  log(`bench: ${naiveNote}`);
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'mnemo-bench-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
function memaslapConfig(valueSize, setShare) {
  const file = path.join(tmp, `memaslap-${valueSize}-${setShare}.cnf`);
  // 64-byte keys (memaslap's default), fixed value size, setShare sets (cmd 0), the rest gets (cmd 1).
  writeFileSync(file, `key\n64 64 1\nvalue\n${valueSize} ${valueSize} 1\ncmd\n0 ${setShare}\n1 ${1 - setShare}\n`);
  return file;
}
const prefillKey = (i) => `prefill:${String(i).padStart(56, '0')}`; // 64 bytes, like memaslap's keys
const memKey = (i) => `bench:${String(i).padStart(10, '0')}`; // 16 bytes

const WORKLOADS = {
  a: { title: 'a: 32 B values, single gets', valueSize: 32, division: 1 },
  b: { title: 'b: 32 B values, multi-get of 16', valueSize: 32, division: 16 },
  c: { title: 'c: 4 KiB values, single gets', valueSize: 4096, division: 1 },
  f: { title: 'f: 100% set, 256 B values', valueSize: 256, division: 1, setShare: 1 },
};
const G_TITLE = `g: workload a with ${memItems.toLocaleString('en-US')} items stored, --trace-gc`;
const LABEL = {
  memcached: 'memcached',
  mnemo: 'Mnemo',
  naive: 'naive-node-server (e)',
  floor: 'node-floor (fixed replies)',
  'mnemo-interval': 'Mnemo --sync interval=1000',
  'mnemo-always': 'Mnemo --sync always',
};
/** Mnemo with a data dir: the flags after the common ones. */
const PERSISTENT = { 'mnemo-interval': ['--sync', 'interval=1000'], 'mnemo-always': ['--sync', 'always'] };

/** The servers run under workload w. The floor runs in a and b, whose targets are ratios to it. */
function serversFor(w) {
  const list = [];
  if (w === 'f') return scenarios.has('f') ? ['memcached', 'mnemo', 'mnemo-interval', 'mnemo-always'] : list;
  if (scenarios.has(w)) list.push('memcached', 'mnemo');
  if ((w === 'a' || w === 'b') && scenarios.has(w) && !floorNote) list.push('floor');
  if (w === 'a' && scenarios.has('e')) {
    if (!list.includes('memcached')) list.push('memcached', ...(floorNote ? [] : ['floor']));
    list.push('naive');
  }
  return list;
}

const results = {}; // results[w][server] = per-round measurements
const failures = [];
const versions = {};
const commands = new Set();

async function runWorkload(w, kind, round) {
  const { valueSize } = WORKLOADS[w];
  const persistent = PERSISTENT[kind];
  const srv = await startServer(persistent ? 'mnemo' : kind, {
    mb,
    cpu: SERVER_CPU,
    repoRoot,
    naivePath,
    cpuProfDir: kind === 'mnemo' ? opt['cpu-prof'] : undefined,
    extraArgs: persistent ? ['-H', mkdtempSync(path.join(tmp, 'data-')), ...persistent] : [],
  });
  versions[kind] = srv.version;
  try {
    // The floor stores nothing and answers only get and set: nothing to prefill.
    const pre = kind === 'floor' ? { errors: 0 } : await load(srv.port, { count: keys, keyOf: prefillKey, valueSize, conns: 4 });
    if (pre.errors) log(`  warning: ${kind} answered ${pre.errors} error lines to the prefill: ${pre.sample}`);
    await sleep(200);
    return await measureLoad(srv, w, kind, round, prefillKey(0));
  } finally {
    await srv.stop();
  }
}

/**
 * Runs memcaslap with workload w against a started server, with the latency probe getting
 * probeKey meanwhile, and reads the server's CPU time around it.
 * loadStart/loadEnd: performance.now() when memcaslap was started and when it had exited.
 */
async function measureLoad(srv, w, kind, round, probeKey) {
  const { valueSize, division, setShare = 0.1 } = WORKLOADS[w];
  const args = ['-s', `127.0.0.1:${srv.port}`, '-T', '1', '-c', String(CONNS), '-w', msWindow,
    '-t', `${seconds}s`, '-X', String(valueSize), '-F', memaslapConfig(valueSize, setShare)];
  if (division > 1) args.push('-d', String(division));
  commands.add(`${pin ? `taskset -c ${GEN_CPU} ` : ''}memcaslap ${args.join(' ').replace(/127\.0\.0\.1:\d+/, '127.0.0.1:PORT').replace(/-F \S+/, '-F <cfg>')}`);
  const cpu0 = cpuSeconds(srv.pid);
  const sys0 = systemBusySeconds();
  const self0 = process.cpuUsage();
  const loadStart = performance.now();
  const ms = runMemaslap(args, { cpu: GEN_CPU });
  ms.catch(() => {});
  // The probe covers the middle of the run: from 0.3 s in to 0.2 s before the end.
  await sleep(300);
  const probe = await startProbe(srv.port, probeKey, 2);
  const stopAt = sleep(Math.max(100, seconds * 1000 - 500)).then(() => 'timer');
  await Promise.race([stopAt, ms.then(() => 'done', () => 'done')]);
  const pr = probe.stop();
  const r = await ms;
  const loadEnd = performance.now();
  const cpu1 = cpuSeconds(srv.pid);
  const self1 = process.cpuUsage(self0);
  // CPU that neither the server, memcaslap nor this harness used: other processes on the machine.
  const other = systemBusySeconds() - sys0 - (cpu1 - cpu0) - r.genCpu - (self1.user + self1.system) / 1e6;
  if (opt.verbose) log(r.raw);
  const sorted = pr.samples.sort((x, y) => x - y);
  const serverOps = r.ops + sorted.length;
  const m = {
    round,
    tps: r.tps,
    ops: r.ops,
    p50: percentile(sorted, 50) / 1000,
    p99: percentile(sorted, 99) / 1000,
    probes: sorted.length,
    probeErrors: pr.errors,
    cpuPerMop: ((cpu1 - cpu0) / serverOps) * 1e6,
    genPct: (r.genCpu / r.wall) * 100,
    otherPct: Math.max(0, (other / r.wall) * 100),
    getMisses: r.getMisses,
    loadStart,
    loadEnd,
  };
  log(`  ${LABEL[kind].padEnd(26)} ${fmtOps(m.tps).padStart(7)} ops/s  p50 ${fmtMs(m.p50)}  p99 ${fmtMs(m.p99)} ms` +
    `  CPU ${m.cpuPerMop.toFixed(2)} s/Mop  generator ${m.genPct.toFixed(0)}%` +
    (m.otherPct >= 10 ? `  other processes ${m.otherPct.toFixed(0)}% of a core` : '') +
    (m.getMisses ? `  get_misses ${m.getMisses}` : '') + (m.probeErrors ? `  probe misses/errors ${m.probeErrors}` : ''));
  return m;
}

/**
 * g: Mnemo under `node --trace-gc` holding memItems items, then workload a. The GCs counted are
 * those V8 finished between memcaslap's start and exit. Each trace line carries the isolate's
 * clock (ms since it started); it is mapped onto this process's clock by the smallest observed
 * (arrival − isolate time), since a line can arrive late (pipe, busy harness) but never early.
 */
async function runGcPauses(round) {
  const gcs = [];
  const srv = await startServer('mnemo', {
    mb,
    cpu: SERVER_CPU,
    repoRoot,
    naivePath,
    nodeArgs: ['--trace-gc'],
    onStdoutLine(line, at) {
      const gc = parseTraceGc(line);
      if (gc) gcs.push({ ...gc, arrived: at, line: line.replace(/^\[[^\]]*\]\s*/, '').replace(/\s*\(average mu.*$/, '') });
    },
  });
  versions.mnemo = srv.version;
  try {
    const fillStart = performance.now();
    const res = await load(srv.port, { count: memItems, keyOf: memKey, valueSize: 100, conns: 4 });
    if (res.errors) log(`  warning: Mnemo answered ${res.errors} error lines to the fill: ${res.sample}`);
    const fillEnd = performance.now();
    await sleep(1000);
    const stored = Number((await stats(srv.port)).curr_items);
    const m = await measureLoad(srv, 'a', 'mnemo', round, memKey(0));
    await sleep(200); // the last lines of the run
    const offset = Math.min(...gcs.map((g) => g.arrived - g.atMs));
    const within = (from, to) => gcs.filter((g) => g.atMs + offset >= from && g.atMs + offset <= to);
    const pauseOf = (g) => Math.max(g.pauseMs, g.biggestStepMs);
    const during = within(m.loadStart, m.loadEnd);
    const filling = within(fillStart, fillEnd);
    const worst = during.reduce((a, g) => (a && pauseOf(a) >= pauseOf(g) ? a : g), null);
    Object.assign(m, {
      stored,
      gcCount: during.length,
      scavenges: during.filter((g) => g.kind === 'Scavenge').length,
      maxPauseMs: Math.max(0, ...during.map(pauseOf)),
      maxPauseKind: worst?.kind ?? '',
      maxPauseLine: worst?.line ?? '',
      totalPauseMs: during.reduce((t, g) => t + g.pauseMs, 0),
      fillMaxPauseMs: Math.max(0, ...filling.map(pauseOf)),
      fillGcCount: filling.length,
    });
    log(`  ${"GC".padEnd(26)} ${stored} items stored; during the load ${m.gcCount} GCs (${m.scavenges} scavenges), ` +
      `longest pause ${m.maxPauseMs.toFixed(2)} ms (${m.maxPauseKind || 'none'}), total ${m.totalPauseMs.toFixed(1)} ms; ` +
      `while loading the items ${m.fillGcCount} GCs, longest ${m.fillMaxPauseMs.toFixed(2)} ms`);
    return m;
  } finally {
    await srv.stop();
  }
}

async function runMemory(kind, round) {
  const srv = await startServer(kind, { mb, cpu: SERVER_CPU, repoRoot, naivePath });
  versions[kind] = srv.version;
  try {
    await sleep(300);
    const before = rssBytes(srv.pid);
    const t0 = Date.now();
    const res = await load(srv.port, { count: memItems, keyOf: memKey, valueSize: 100, conns: 4 });
    const loadSec = (Date.now() - t0) / 1000;
    await sleep(1000);
    const after = rssBytes(srv.pid);
    const st = await stats(srv.port);
    const stored = Number(st.curr_items);
    const m = { round, before, after, stored, perItem: (after - before) / memItems, loadSec, errors: res.errors };
    log(`  ${LABEL[kind].padEnd(26)} RSS ${mib(before)} -> ${mib(after)} MiB, ${stored} items stored, ` +
      `${m.perItem.toFixed(0)} B/item, loaded in ${loadSec.toFixed(1)} s` + (res.errors ? `, ${res.errors} error lines: ${res.sample}` : ''));
    return m;
  } finally {
    await srv.stop();
  }
}

const fmtOps = (x) => (Number.isFinite(x) ? (x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : `${(x / 1e3).toFixed(1)}k`) : '—');
const fmtMs = (x) => (Number.isFinite(x) ? x.toFixed(3) : '—');
const fmtX = (x) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '—');
const mib = (b) => (b / 1048576).toFixed(1);

function record(w, kind, m) {
  ((results[w] ??= {})[kind] ??= []).push(m);
}

const loadAtStart = os.loadavg()[0];
if (loadAtStart >= 1.5) log(`bench: note: 1-minute load average is ${loadAtStart.toFixed(2)}; if other work is running, the numbers will be skewed`);
const started = Date.now();
const order = (list, round) => (round % 2 === 0 ? list : [...list].reverse());
let startFailure = null;
outer: for (let round = 0; round < rounds; round++) {
  log(`round ${round + 1}/${rounds}`);
  for (const w of ['a', 'b', 'c', 'f']) {
    const servers = serversFor(w);
    if (servers.length === 0) continue;
    log(` ${WORKLOADS[w].title}`);
    for (const kind of order(servers, round)) {
      try {
        record(w, kind, await runWorkload(w, kind, round));
      } catch (e) {
        const msg = `round ${round + 1}, ${w}, ${kind}: ${e.message}`;
        log(`  FAILED ${msg}`);
        failures.push(msg);
        if (/before it was ready|did not (print|answer)|ECONNREFUSED|is absent/.test(e.message)) {
          startFailure = msg;
          break outer;
        }
      }
    }
  }
  if (scenarios.has('d')) {
    log(` d: memory, ${memItems} items of 100 B`);
    for (const kind of order(['memcached', 'mnemo'], round)) {
      try {
        record('d', kind, await runMemory(kind, round));
      } catch (e) {
        const msg = `round ${round + 1}, d, ${kind}: ${e.message}`;
        log(`  FAILED ${msg}`);
        failures.push(msg);
        if (/before it was ready|did not (print|answer)/.test(e.message)) {
          startFailure = msg;
          break outer;
        }
      }
    }
  }
  if (scenarios.has('g')) {
    log(` ${G_TITLE}`);
    try {
      record('g', 'mnemo', await runGcPauses(round));
    } catch (e) {
      const msg = `round ${round + 1}, g, mnemo: ${e.message}`;
      log(`  FAILED ${msg}`);
      failures.push(msg);
      if (/before it was ready|did not (print|answer)/.test(e.message)) {
        startFailure = msg;
        break outer;
      }
    }
  }
}
const elapsed = (Date.now() - started) / 1000;

// ---- report ----
/** Median over rounds of a per-round ratio num[k]/den[k], pairing runs of the same round. */
function ratio(numRuns, denRuns, key) {
  if (!numRuns || !denRuns) return NaN;
  const xs = [];
  for (const n of numRuns) {
    const d = denRuns.find((x) => x.round === n.round);
    if (d) xs.push(n[key] / d[key]);
  }
  return median(xs);
}
const med = (runs, key) => (runs ? median(runs.map((r) => r[key])) : NaN);

function gitDescribe() {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty ? `${head} + uncommitted changes in src/` : head;
  } catch {
    return 'unknown';
  }
}

const lines = [];
const L = (s = '') => lines.push(s);
L(`# Mnemo vs memcached${smoke ? ' (smoke run: one round, timings not meaningful)' : ''}`);
L();
const versionText = Object.entries(versions).map(([k, v]) => `${LABEL[k]} ${v}${k === 'mnemo' ? ` at ${gitDescribe()}` : ''}`).join(' · ');
L(`${new Date().toISOString()} · ${versionText} · Node ${process.version} · ` +
  `${os.cpus().length} cores, ${pin ? 'servers pinned to core 0, memcaslap + harness to core 1' : `no pinning (${opt['no-pin'] ? '--no-pin' : 'fewer than 2 cores'})`} · ` +
  `${rounds} round(s), ${seconds} s per run, -m ${mb} · load average ${loadAtStart.toFixed(2)} at start · took ${elapsed.toFixed(0)} s`);
L();
const allRuns = ['a', 'b', 'c', 'f', 'g'].flatMap((w) => Object.values(results[w] ?? {}).flat());
const busiest = Math.max(0, ...allRuns.map((m) => m.otherPct));
if (busiest >= 10) {
  L(`**Warning: the machine was not quiet**: other processes used up to ${busiest.toFixed(0)}% of a core during a run ` +
    '(see the per-round table); treat these numbers as noise and run again.');
  L();
}

// Issue 15's targets, beside the measurements they judge. Printed, never asserted.
const maxOf = (runs, key) => (runs ? Math.max(...runs.map((r) => r[key])) : NaN);
const verdict = (x, ok) => (Number.isFinite(x) ? (ok ? '✓ pass' : '✗ miss') : 'not measured');
const targets = [];
const target = (scenario, measure, mnemo, vsFloor, vsMemcached, goal = '', result = '') =>
  targets.push(`| ${scenario} | ${measure} | ${mnemo} | ${vsFloor} | ${vsMemcached} | ${goal} | ${result} |`);
for (const [w, opsGoal, cpuGoal] of [['a', null, 1.15], ['b', 0.8, 1.25]]) {
  const r = results[w];
  if (!r?.mnemo) continue;
  const ops = ratio(r.mnemo, r.floor, 'tps');
  const cpu = ratio(r.mnemo, r.floor, 'cpuPerMop');
  const scenario = WORKLOADS[w].title;
  target(scenario, 'ops/s', fmtOps(med(r.mnemo, 'tps')), fmtX(ops), fmtX(ratio(r.mnemo, r.memcached, 'tps')),
    opsGoal ? `≥ ${opsGoal}× floor` : '', opsGoal ? verdict(ops, ops >= opsGoal) : '');
  target(scenario, 'server CPU per op', `${med(r.mnemo, 'cpuPerMop').toFixed(2)} µs`, fmtX(cpu),
    fmtX(ratio(r.mnemo, r.memcached, 'cpuPerMop')), `≤ ${cpuGoal}× floor`, verdict(cpu, cpu <= cpuGoal));
}
if (results.c?.mnemo) {
  const p99 = ratio(results.c.mnemo, results.c.memcached, 'p99');
  target(WORKLOADS.c.title, 'p99 (probe)', `${fmtMs(med(results.c.mnemo, 'p99'))} ms`, '', fmtX(p99), '≤ 1.5× memcached', verdict(p99, p99 <= 1.5));
}
if (results.d?.mnemo) {
  const rss = ratio(results.d.mnemo, results.d.memcached, 'perItem');
  target('d: memory, 100 B items', 'RSS per item', `${med(results.d.mnemo, 'perItem').toFixed(0)} B`, '', fmtX(rss), '≤ 1.1× memcached', verdict(rss, rss <= 1.1));
}
if (results.g?.mnemo) {
  const g = results.g.mnemo;
  const pause = maxOf(g, 'maxPauseMs');
  target(`g: workload a, ${memItems.toLocaleString('en-US')} items stored`, 'longest GC pause during the load',
    `${pause.toFixed(2)} ms (${med(g, 'gcCount')} GCs)`, '', '', '< 5 ms', verdict(pause, pause < 5));
}
if (targets.length) {
  L("**Issue 15's targets** (printed, never asserted; a quiet machine and the full run are what count):");
  L();
  L('| scenario | measure | Mnemo | Mnemo / floor | Mnemo / memcached | target | |');
  L('|---|---|---|---|---|---|---|');
  for (const t of targets) L(t);
  L();
  L('The floor is `node-floor.mjs` (../shared/bench): a Node server that parses each request and writes a fixed ' +
    'reply, storing nothing. Ratios are medians of the per-round ratios (ops/s: higher is better for Mnemo; ' +
    `the rest: lower is better)${results.g?.mnemo ? '; the GC pause is the largest over rounds, measured as the g table below says' : ''}.`);
  L();
}

const ws = ['a', 'b', 'c'].filter((w) => results[w]);
if (ws.length || results.f?.mnemo || results.g?.mnemo) {
  L('| scenario | server | ops/s | p50 ms | p99 ms | server CPU s per M ops | generator CPU |');
  L('|---|---|---|---|---|---|---|');
  const row = (title, kind, runs) =>
    L(`| ${title} | ${LABEL[kind]} | ${fmtOps(med(runs, 'tps'))} | ${fmtMs(med(runs, 'p50'))} | ${fmtMs(med(runs, 'p99'))} | ` +
      `${med(runs, 'cpuPerMop').toFixed(2)} | ${med(runs, 'genPct').toFixed(0)}%${med(runs, 'genPct') >= 95 ? ' ⚠ saturated' : ''} |`);
  const ratioRow = (title, label, num, den) =>
    num && den &&
    L(`| ${title} | **${label}** | **${fmtX(ratio(num, den, 'tps'))}** | ${fmtX(ratio(num, den, 'p50'))} | ` +
      `${fmtX(ratio(num, den, 'p99'))} | **${fmtX(ratio(num, den, 'cpuPerMop'))}** | |`);
  for (const w of ws) {
    const r = results[w];
    const t = WORKLOADS[w].title;
    for (const kind of ['memcached', 'mnemo', 'floor', 'naive']) if (r[kind]) row(t, kind, r[kind]);
    ratioRow(t, 'Mnemo / memcached', r.mnemo, r.memcached);
    ratioRow(t, 'Mnemo / floor', r.mnemo, r.floor);
    ratioRow(t, 'floor / memcached', r.floor, r.memcached);
    ratioRow(t, 'naive / memcached', r.naive, r.memcached);
    ratioRow(t, 'Mnemo / naive', r.mnemo, r.naive);
  }
  if (results.f?.mnemo) {
    const t = WORKLOADS.f.title;
    const f = results.f;
    if (f.memcached) row(t, 'memcached', f.memcached);
    for (const kind of ['mnemo', 'mnemo-interval', 'mnemo-always']) if (f[kind]) row(t, kind, f[kind]);
    ratioRow(t, 'Mnemo / memcached', f.mnemo, f.memcached);
    ratioRow(t, 'interval / Mnemo in memory', f['mnemo-interval'], f.mnemo);
    ratioRow(t, 'always / Mnemo in memory', f['mnemo-always'], f.mnemo);
  }
  if (results.g?.mnemo) {
    row(G_TITLE, 'mnemo', results.g.mnemo);
    ratioRow(G_TITLE, 'g / a (Mnemo)', results.g.mnemo, results.a?.mnemo);
  }
  L();
  L('Values are medians over rounds; ratios are medians of the per-round ratios (runs of the same round). ' +
    'ops/s: memcaslap TPS (a multi-get of 16 counts 16). p50/p99: a separate probe connection sending one `get` ' +
    'at a time, at most every 2 ms, during the load. Server CPU: utime+stime of the server process over the run ' +
    'divided by operations (memcaslap + probe) — seconds per million ops, i.e. µs per op. Generator CPU: memcaslap ' +
    'CPU time over wall time; near 100% means the load generator, not the server, set the pace.' +
    (results.b?.floor ? " The floor's fixed reply names another key, so memcaslap counts its multi-get hits in b as get_misses." : ''));
  L();
}
if (results.d) {
  const d = results.d;
  L(`| d: memory, ${memItems.toLocaleString('en-US')} items of 100 B, 16 B keys | RSS idle, before loading | RSS after | items stored | RSS per item |`);
  L('|---|---|---|---|---|');
  for (const kind of ['memcached', 'mnemo']) {
    if (!d[kind]) continue;
    L(`| ${LABEL[kind]} | ${mib(med(d[kind], 'before'))} MiB | ${mib(med(d[kind], 'after'))} MiB | ` +
      `${med(d[kind], 'stored')} | ${med(d[kind], 'perItem').toFixed(0)} B |`);
  }
  if (d.mnemo && d.memcached) L(`| **Mnemo / memcached** | | | | **${fmtX(ratio(d.mnemo, d.memcached, 'perItem'))}** |`);
  L();
  L('RSS per item = (VmRSS after loading − VmRSS before) / items loaded, 1 s after the last set was acknowledged; ' +
    'loaded with pipelined `set … noreply` over 4 connections.');
  L();
}
if (results.g?.mnemo) {
  const g = results.g.mnemo;
  L(`| g: GC in Mnemo (\`node --trace-gc\`), ${memItems.toLocaleString('en-US')} items of 100 B stored, then workload a | ` +
    'items stored | GCs during the load (scavenges) | longest pause | total pause | while loading the items: GCs, longest pause |');
  L('|---|---|---|---|---|---|');
  const worst = g.reduce((a, m) => (m.maxPauseMs > a.maxPauseMs ? m : a));
  L(`| Mnemo | ${med(g, 'stored')} | ${med(g, 'gcCount')} (${med(g, 'scavenges')}) | ` +
    `**${worst.maxPauseMs.toFixed(2)} ms** (${worst.maxPauseKind || 'no GC'}) | ${med(g, 'totalPauseMs').toFixed(1)} ms | ` +
    `${med(g, 'fillGcCount')}, ${maxOf(g, 'fillMaxPauseMs').toFixed(2)} ms |`);
  L();
  L('A pause is the main-thread stop of one GC as `--trace-gc` prints it (a scavenge, or a mark-compact\'s final ' +
    'pause), or the biggest incremental-marking step before a mark-compact, whichever is longer. Counted: the GCs ' +
    'that ended between memcaslap\'s start and exit (V8\'s clock in each line is matched to the harness\'s). ' +
    'Longest pause: the largest over rounds; counts and total: medians.');
  L();
}
if (naiveNote) L(`Note: ${naiveNote}.`), L();
if (floorNote) L(`Note: ${floorNote}.`), L();
if (failures.length) {
  L('## Failures');
  for (const f of failures) L(`- ${f.split('\n')[0]}`);
  L();
}
L('<details><summary>Per-round measurements</summary>');
L();
L('| round | scenario | server | ops/s | p50 ms | p99 ms | CPU s/Mop | generator | other processes | get_misses |');
L('|---|---|---|---|---|---|---|---|---|---|');
for (const w of ['a', 'b', 'c', 'f']) {
  for (const [kind, runs] of Object.entries(results[w] ?? {})) {
    for (const m of runs) {
      L(`| ${m.round + 1} | ${w} | ${LABEL[kind]} | ${fmtOps(m.tps)} | ${fmtMs(m.p50)} | ${fmtMs(m.p99)} | ` +
        `${m.cpuPerMop.toFixed(2)} | ${m.genPct.toFixed(0)}% | ${m.otherPct.toFixed(0)}% | ${m.getMisses} |`);
    }
  }
}
for (const [kind, runs] of Object.entries(results.d ?? {})) {
  for (const m of runs) L(`| ${m.round + 1} | d | ${LABEL[kind]} | RSS ${mib(m.before)} → ${mib(m.after)} MiB | | | ${m.perItem.toFixed(0)} B/item | | | |`);
}
for (const m of results.g?.mnemo ?? []) {
  L(`| ${m.round + 1} | g | Mnemo | ${fmtOps(m.tps)} | ${fmtMs(m.p50)} | ${fmtMs(m.p99)} | ${m.cpuPerMop.toFixed(2)} | ` +
    `${m.genPct.toFixed(0)}% | ${m.otherPct.toFixed(0)}% | ${m.getMisses} |`);
  L(`| ${m.round + 1} | g | Mnemo GC | ${m.gcCount} GCs (${m.scavenges} scavenges) during the load, longest ` +
    `${m.maxPauseMs.toFixed(2)} ms (${m.maxPauseKind || 'none'}), total ${m.totalPauseMs.toFixed(1)} ms; ` +
    `${m.fillGcCount} while loading ${m.stored} items, longest ${m.fillMaxPauseMs.toFixed(2)} ms` +
    `${m.maxPauseLine ? `; the longest: \`${m.maxPauseLine}\`` : ''} | | | | | | | |`);
}
L();
L('Load commands (PORT and the config file vary; the config sets 64-byte keys, the value size, and 10% set / 90% get, or 100% set in f):');
L();
for (const c of commands) L(`    ${c}`);
L();
L('</details>');

const md = lines.join('\n') + '\n';
mkdirSync(path.dirname(outFile), { recursive: true });
writeFileSync(outFile, md);
console.log(md);
log(`bench: wrote ${path.relative(process.cwd(), outFile)} (${elapsed.toFixed(0)} s)`);
if (startFailure) {
  log(`bench: a server failed to start: ${startFailure}`);
  process.exit(1);
}
process.exit(failures.length ? 1 : 0);
