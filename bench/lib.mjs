// Helpers for bench/run.mjs: servers, /proc readings, a pipelined loader, a latency probe,
// and a memcaslap runner. Plain Node, no dependencies.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { once } from 'node:events';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

export function cpuCount() {
  try {
    return Number(execFileSync('nproc', { encoding: 'utf8' }).trim());
  } catch {
    return 1;
  }
}

/** Fields of /proc/PID/stat after the command name, so fields[0] is field 3 (state). */
function statFields(text) {
  return text.slice(text.lastIndexOf(')') + 2).trim().split(/\s+/);
}

/** utime+stime of a live process, in seconds. */
export function cpuSeconds(pid) {
  const f = statFields(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  return (Number(f[11]) + Number(f[12])) / CLK_TCK; // fields 14, 15
}

/** VmRSS of a live process, in bytes. */
export function rssBytes(pid) {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** CPU seconds all cores spent busy (user, nice, system, irq, softirq) since boot, from /proc/stat. */
export function systemBusySeconds() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return (f[0] + f[1] + f[2] + f[5] + f[6]) / CLK_TCK;
}

export async function freePort() {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

/** Every child we start, so an interrupted run leaves nothing behind. */
const children = new Set();
function killChildren() {
  for (const c of children) {
    try {
      process.kill(c.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}
process.on('exit', killChildren);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    killChildren();
    process.exit(130);
  });
}

function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

async function connectOnce(port) {
  const sock = net.connect({ port, host: '127.0.0.1', noDelay: true });
  await Promise.race([
    once(sock, 'connect'),
    once(sock, 'error').then(([e]) => Promise.reject(e)),
  ]);
  return sock;
}

export async function connect(port, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await connectOnce(port);
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await sleep(50);
    }
  }
}

/** Sends one request, resolves with the reply once `done(text)` says it is complete. */
export async function request(port, text, done = (s) => s.endsWith('\r\n')) {
  const sock = await connect(port);
  try {
    sock.write(text);
    let buf = '';
    for await (const chunk of sock) {
      buf += chunk.toString('latin1');
      if (done(buf)) return buf;
    }
    return buf;
  } finally {
    sock.destroy();
  }
}

export async function stats(port) {
  const reply = await request(port, 'stats\r\n', (s) => s.endsWith('END\r\n'));
  const out = {};
  for (const m of reply.matchAll(/^STAT (\S+) (.*)\r$/gm)) out[m[1]] = m[2];
  return out;
}

/**
 * Starts a server pinned to `cpu` (or unpinned when cpu is null).
 * kind: 'memcached' | 'mnemo' | 'naive' | 'floor'. Resolves when it accepts connections.
 * For Mnemo, `nodeArgs` go to node before bin/mnemo, and `onStdoutLine(line, atMs)` sees each
 * line it prints with its arrival time (performance.now()); stdout is then made line-buffered
 * with stdbuf, because V8's --trace-gc lines go through C stdio, which would otherwise hold
 * them in a 4 KiB buffer until exit.
 */
export async function startServer(kind, { mb, cpu, repoRoot, naivePath, cpuProfDir, extraArgs = [], nodeArgs = [], onStdoutLine }) {
  let cmd;
  let args;
  let port = kind === 'mnemo' ? -1 : await freePort();
  if (kind === 'memcached') {
    cmd = 'memcached';
    args = ['-t', '1', '-u', 'root', '-U', '0', '-l', '127.0.0.1', '-p', String(port), '-m', String(mb)];
  } else if (kind === 'mnemo') {
    cmd = process.execPath;
    args = [];
    if (cpuProfDir) args.push('--cpu-prof', '--cpu-prof-dir', cpuProfDir);
    args.push(...nodeArgs, `${repoRoot}/bin/mnemo`, '-p', '-1', '-m', String(mb), '-l', '127.0.0.1', ...extraArgs);
    if (onStdoutLine) {
      args = ['-oL', cmd, ...args];
      cmd = 'stdbuf';
    }
  } else if (kind === 'naive') {
    if (!existsSync(naivePath)) throw new Error(`${naivePath} is absent`);
    cmd = process.execPath;
    args = [naivePath, String(port), '127.0.0.1'];
  } else if (kind === 'floor') {
    // The least work a Node server can do per request (../shared/bench/node-floor.mjs), next to the naive server.
    const floorPath = path.join(path.dirname(naivePath), 'node-floor.mjs');
    if (!existsSync(floorPath)) throw new Error(`${floorPath} is absent`);
    cmd = process.execPath;
    args = [floorPath, String(port)];
  } else {
    throw new Error(`unknown server ${kind}`);
  }
  if (cpu !== null) {
    args = ['-c', String(cpu), cmd, ...args];
    cmd = 'taskset';
  }
  const child = track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  let output = '';
  const collect = (d) => {
    output += d.toString();
    if (output.length > 64 * 1024) output = output.slice(-32 * 1024);
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  if (onStdoutLine) {
    let partial = '';
    child.stdout.on('data', (d) => {
      const at = performance.now();
      const parts = (partial + d.toString()).split('\n');
      partial = parts.pop();
      for (const line of parts) onStdoutLine(line, at);
    });
  }
  const exited = once(child, 'exit').then(([code, sig]) => {
    throw new Error(`${kind} exited (${code ?? sig}) before it was ready: ${output.trim().slice(-500)}`);
  });
  exited.catch(() => {});
  if (kind === 'mnemo') {
    const ready = new Promise((resolve) => {
      const check = () => {
        const m = / listening on tcp [^\s]+:(\d+)/.exec(output);
        if (m) resolve(Number(m[1]));
      };
      child.stderr.on('data', check);
      child.stdout.on('data', check);
    });
    const timeout = sleep(15000).then(() => {
      throw new Error(`mnemo did not print its listening line in 15 s: ${output.trim().slice(-500)}`);
    });
    port = await Promise.race([ready, exited, timeout]);
  }
  // Ready means it answers `version` (the floor answers only get and set).
  const reply = await Promise.race([
    request(port, kind === 'floor' ? 'get k\r\n' : 'version\r\n'),
    exited,
    sleep(15000).then(() => {
      throw new Error(`${kind} did not answer 'version' in 15 s`);
    }),
  ]);
  if (kind === 'floor' ? !reply.startsWith('VALUE ') : !reply.startsWith('VERSION ')) {
    throw new Error(`${kind}: unexpected reply to version: ${reply}`);
  }
  const version = kind === 'floor' ? 'n/a' : reply.slice(8).trim();
  return {
    kind,
    pid: child.pid,
    port,
    version,
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const gone = await Promise.race([once(child, 'exit').then(() => true), sleep(5000).then(() => false)]);
      if (!gone) {
        child.kill('SIGKILL');
        await once(child, 'exit');
      }
    },
  };
}

/**
 * Loads `count` items with pipelined `set ... noreply` over `conns` connections. Each batch of
 * about `batchBytes` ends with a `version`, and at most `inflight` batches per connection are
 * unacknowledged, so the server never holds more than ~inflight*batchBytes of unread input per
 * connection and every set has been processed when load() resolves.
 * Returns the number of error lines the server sent back (noreply hides successes only).
 */
export async function load(port, { count, keyOf, valueSize, conns = 4, batchBytes = 64 * 1024, inflight = 4 }) {
  const value = 'x'.repeat(valueSize);
  const per = Math.ceil(count / conns);
  let errors = 0;
  let sample = '';
  await Promise.all(
    Array.from({ length: conns }, async (_, c) => {
      const from = c * per;
      const to = Math.min(count, from + per);
      if (from >= to) return;
      const sock = await connect(port);
      let acked = 0;
      let sent = 0;
      let pending = '';
      let wake = null;
      let closed = null;
      sock.on('data', (d) => {
        pending += d.toString('latin1');
        let nl;
        while ((nl = pending.indexOf('\r\n')) !== -1) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 2);
          if (line.startsWith('VERSION ')) acked++;
          else {
            errors++;
            if (!sample) sample = line.slice(0, 200);
          }
        }
        if (wake) wake();
      });
      sock.on('close', () => {
        closed = new Error(`loader connection closed by the server after ${acked} of ${sent} batches`);
        if (wake) wake();
      });
      sock.on('error', () => {});
      const waitFor = async (n) => {
        while (acked < n) {
          if (closed) throw closed;
          await new Promise((r) => (wake = r));
          wake = null;
        }
      };
      let i = from;
      while (i < to) {
        let chunk = '';
        while (i < to && chunk.length < batchBytes) {
          chunk += `set ${keyOf(i)} 0 0 ${valueSize} noreply\r\n${value}\r\n`;
          i++;
        }
        chunk += 'version\r\n';
        sent++;
        if (closed) throw closed;
        sock.write(chunk, 'latin1');
        await waitFor(sent - inflight);
      }
      await waitFor(sent);
      sock.destroy();
    }),
  );
  return { errors, sample };
}

/**
 * A low-rate latency probe: one `get key` at a time on its own connection, at most one
 * every `intervalMs`, each timed with process.hrtime from write to the end of the reply.
 */
export async function startProbe(port, key, intervalMs = 2) {
  const sock = await connect(port);
  const req = Buffer.from(`get ${key}\r\n`, 'latin1');
  const samples = []; // microseconds
  let t0 = 0n;
  let outstanding = false;
  let pending = '';
  let errors = 0;
  sock.on('data', (d) => {
    pending += d.toString('latin1');
    if (pending.endsWith('END\r\n')) {
      samples.push(Number(process.hrtime.bigint() - t0) / 1000);
      if (!pending.startsWith('VALUE ')) errors++; // a miss still times the round trip
      pending = '';
      outstanding = false;
    } else if (/^(ERROR|CLIENT_ERROR|SERVER_ERROR)[^\n]*\n$/.test(pending)) {
      errors++;
      pending = '';
      outstanding = false;
    }
  });
  sock.on('error', () => {});
  const timer = setInterval(() => {
    if (outstanding) return;
    outstanding = true;
    t0 = process.hrtime.bigint();
    sock.write(req);
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      sock.destroy();
      return { samples, errors };
    },
  };
}

/**
 * One line of `node --trace-gc` (V8 11, Node 20), e.g.
 *   [pid:0x…]   2357 ms: Mark-Compact 8.5 (16.7) -> 7.1 (16.7) MB, 4.20 / 0.03 ms  (+ 4.6 ms in 40 steps
 *   since start of marking, biggest step 1.8 ms, walltime since start of marking 14 ms) (average mu = …) …
 * -> { atMs: ms since the isolate started (when the line was printed, at the end of the GC),
 *      kind: 'Scavenge' | 'Mark-Compact' | 'Mark-Compact (reduce)' | …,
 *      pauseMs: the main thread's stop for this GC (the first of "X / Y ms"; Y is the part of X spent in
 *      embedder callbacks), biggestStepMs: the longest incremental-marking step before it (each step
 *      is also a short main-thread stop), or 0 }; null for any other line.
 */
export function parseTraceGc(line) {
  const m = /^\[\d+:0x[0-9a-f]+\]\s+(\d+) ms: (.+?) [\d.]+ \([\d.]+\) -> [\d.]+ \([\d.]+\) MB, ([\d.]+) \/ [\d.]+ ms(.*)$/.exec(line);
  if (!m) return null;
  const step = /biggest step ([\d.]+) ms/.exec(m[4]);
  return { atMs: Number(m[1]), kind: m[2], pauseMs: Number(m[3]), biggestStepMs: step ? Number(step[1]) : 0 };
}

export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** Parses memcaslap's closing block. Throws when there is no "Ops: N TPS: N" line. */
export function parseMemaslap(text) {
  const run = /Run time:\s*([\d.]+)s\s+Ops:\s*(\d+)\s+TPS:\s*(\d+)/.exec(text);
  if (!run) throw new Error(`no 'Run time: ... Ops: ... TPS: ...' line in memcaslap output:\n${text.slice(-800)}`);
  const num = (name) => {
    const m = new RegExp(`^\\s*${name}:\\s*(\\d+)`, 'm').exec(text);
    return m ? Number(m[1]) : NaN;
  };
  return {
    seconds: Number(run[1]),
    ops: Number(run[2]),
    tps: Number(run[3]),
    cmdGet: num('cmd_get'),
    cmdSet: num('cmd_set'),
    getMisses: num('get_misses'),
  };
}

/**
 * Runs memcaslap (pinned to `cpu` when not null) and returns its parsed totals plus its own
 * CPU time: the wrapping shell prints its cutime+cstime (fields 16, 17 of /proc/$$/stat)
 * once memcaslap has been waited for.
 */
export async function runMemaslap(args, { cpu }) {
  const inner = cpu !== null ? `taskset -c ${cpu} memcaslap "$@"` : 'memcaslap "$@"';
  const script = `${inner}; rc=$?; echo "__MS_STAT__ $(cat /proc/$$/stat)"; exit $rc`;
  const started = process.hrtime.bigint();
  const child = track(spawn('sh', ['-c', script, 'sh', ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  child.stdout.on('data', (d) => (out += d.toString()));
  child.stderr.on('data', (d) => (out += d.toString()));
  const [code] = await once(child, 'exit');
  const wall = Number(process.hrtime.bigint() - started) / 1e9;
  const statLine = /__MS_STAT__ (.*)/.exec(out);
  let genCpu = NaN;
  if (statLine) {
    const f = statFields(statLine[1]);
    genCpu = (Number(f[13]) + Number(f[14])) / CLK_TCK; // fields 16, 17
  }
  const text = out.replace(/__MS_STAT__.*\n?/, '');
  if (code !== 0) throw new Error(`memcaslap exited ${code}:\n${text.slice(-800)}`);
  return { ...parseMemaslap(text), genCpu, wall, raw: text };
}
