/**
 * Crash runs against a model of acknowledged operations: writer connections
 * pipeline 1-6 set/append/incr/delete/get commands per write over a key space,
 * Mnemo is killed with SIGKILL at a random moment, restarted on the same data
 * dir, and every key is read back and checked against what the `--sync`
 * policy promises.
 *
 * Exactness: each writer owns its own keys (key i belongs to writer i mod W) and
 * has one batch in flight, so the server applies the operations on a key in the
 * order they were sent, and the model (CacheModel, model.ts) predicts every
 * reply exactly: a reply that differs is one memcached's semantics forbid.
 *
 * What a restart may show, per key: its history is the state at the round's
 * start (read back after the previous restart) followed by the state after each
 * write sent on it. Writes are acknowledged in order, so the acknowledged ones
 * are a prefix; the disk holds a prefix of the commits, so the key reads back as
 * one state of its history, no earlier than:
 * - `always`: the last acknowledged write (a reply is sent only once its write
 *   is committed and fsynced; a reply parsed after the kill was still sent
 *   before it, so it counts too);
 * - `interval=<ms>`: the last write acknowledged at least windowMs before the
 *   kill (ack times are taken when the reply is parsed here, after the server
 *   sent it, so this errs on the lenient side);
 * - `none`: the round's start (only whole values the key held are allowed).
 * A value the key never held (torn, mixed, resurrected) is always a failure.
 * After each check the model restarts from what was read back.
 */
import { once } from 'node:events';
import { stderrProblems } from './fuzz.js';
import { CacheModel, type ApplyContext, type Expected } from './model.js';
import { startMnemo } from './mnemo.js';
import { Random } from './random.js';
import { Wire } from './wire.js';

export interface CrashOptions {
  /** The `--sync` argument: `always`, `interval=<ms>` or `none`. */
  sync: string;
  /** How long before the kill an acknowledged write must have been to be kept: 0, the interval, or Infinity. */
  windowMs: number;
  dataDir: string;
  rounds: number;
  /**
   * The kill comes a random time in [min, max] ms after the writers start, and not
   * before a random number in [min, max] of replies were read this round (so that a
   * slow machine still does some work each round), then 0-20 ms more.
   */
  loadMs: [number, number];
  replies: [number, number];
  seed: number;
  writers?: number;
  keys?: number;
  /** More server arguments. */
  args?: string[];
  log?: (line: string) => void;
}

export interface CrashReport {
  /** Write and get commands sent, and how many of them were acknowledged (a reply was read). */
  sent: number;
  acknowledged: number;
  /** Commands by name and outcome (`set`, `incr:NOT_FOUND`, `get:hit`, ...). */
  counts: Record<string, number>;
  /** Keys checked after restarts where the check could fail (acknowledged writes that had to be kept). */
  keysWithKeptWrites: number;
  /** Acknowledged writes a restart did not bring back (allowed inside the window), and the oldest one's age. */
  lostWrites: number;
  oldestLostMs: number;
  /** Failures by kind: forbidden replies, states after a restart that the policy does not allow. */
  forbiddenReplies: number;
  badRestarts: number;
  failures: string[];
  stderr: string[];
}

type Snapshot = { value: Buffer; flags: number } | null;

/** One key's round: its states, and for each write (index i >= 1) when it was acknowledged. */
interface History {
  states: Snapshot[];
  ackAt: number[];
  ops: string[];
  lastAcked: number;
  /** A reply on this key was already wrong this round: the model no longer knows it. */
  tainted: boolean;
}

interface Command {
  name: string;
  key: string;
  bytes: Buffer;
  expected: Buffer;
  /** For a write: its index in the key's history. 0 for a get. */
  index: number;
}

const MAX_DETAILS = 25;
const CTX: ApplyContext = { sendFloor: 0n };

export async function runCrash(options: CrashOptions): Promise<CrashReport> {
  const writers = options.writers ?? 4;
  const keyCount = options.keys ?? 1000;
  const rng = new Random(options.seed);
  const log = options.log ?? (() => {});
  const report: CrashReport = {
    sent: 0, acknowledged: 0, counts: {}, keysWithKeptWrites: 0, lostWrites: 0, oldestLostMs: 0,
    forbiddenReplies: 0, badRestarts: 0, failures: [], stderr: [],
  };
  const fail = (line: string): void => {
    if (report.failures.length < MAX_DETAILS) report.failures.push(line);
  };
  const count = (name: string): void => {
    report.counts[name] = (report.counts[name] ?? 0) + 1;
  };
  const keysOf = Array.from({ length: writers }, (_, w) => {
    const keys: string[] = [];
    for (let i = w; i < keyCount; i += writers) keys.push(`k${i}`);
    return keys;
  });
  // What every key held at the last check (all missing on an empty data dir).
  let known = new Map<string, Snapshot>();
  const args = ['-H', options.dataDir, '--sync', options.sync, ...(options.args ?? [])];
  let server = await startMnemo(args);

  for (let round = 1; round <= options.rounds; round++) {
    const histories = new Map<string, History>();
    let killed = false;
    let replies = 0;
    // Every draw of the round is made here, before any await, so that a seed replays the same commands.
    const enough = rng.range(options.replies[0], options.replies[1]);
    const loadMs = rng.range(options.loadMs[0], options.loadMs[1]);
    const lastMs = rng.int(21);
    const writerSeeds = keysOf.map(() => rng.u32());
    let enoughReplies: () => void = () => {};
    const repliesReached = new Promise<void>((resolve) => (enoughReplies = resolve));
    const loops = keysOf.map(async (keys, w) => {
      const model = new CacheModel({ serverNow: () => 0, serverStarted: 0 });
      for (const key of keys) {
        const state = known.get(key) ?? null;
        if (state !== null) model.store('set', key, state.flags, 0, state.value, 0n, false, CTX);
      }
      let wire: Wire;
      try {
        wire = await Wire.open(server.port);
      } catch (error) {
        if (!killed) fail(`round ${round}: writer ${w} could not connect: ${(error as Error).message}`);
        return;
      }
      const writerRng = new Random(writerSeeds[w]!);
      let seq = 0;
      try {
        while (!killed) {
          const batch = generateBatch(writerRng, model, keys, histories, `w${w}r${round}o`, () => seq++, known);
          wire.write(Buffer.concat(batch.map((c) => c.bytes)));
          report.sent += batch.length;
          for (const command of batch) {
            let reply: Buffer;
            try {
              reply = await readReply(wire, command.name === 'get');
            } catch (error) {
              if (!killed) {
                report.forbiddenReplies++;
                fail(`round ${round}: no reply to ${commandText(command)} while the server runs: ${(error as Error).message}`);
              }
              return;
            }
            report.acknowledged++;
            if (++replies === enough) enoughReplies();
            const history = histories.get(command.key)!;
            if (command.index > 0) {
              history.ackAt[command.index] = performance.now();
              history.lastAcked = command.index;
            }
            count(outcome(command, reply));
            if (history.tainted || reply.equals(command.expected)) continue;
            history.tainted = true;
            report.forbiddenReplies++;
            fail(
              `round ${round}: ${commandText(command)} answered ${show(reply)}, the model says ${show(command.expected)}; ` +
                `${command.key} so far this round: ${recent(history)}`,
            );
          }
        }
      } finally {
        wire.close();
      }
    });

    const started = performance.now();
    const exited = once(server.process, 'exit');
    await new Promise((resolve) => setTimeout(resolve, loadMs));
    // Writers that all stopped (a failure, reported) or a server that died cannot reach the count.
    await Promise.race([repliesReached, Promise.all(loops), exited]);
    await new Promise((resolve) => setTimeout(resolve, lastMs));
    const delay = Math.round(performance.now() - started);
    if (server.process.exitCode !== null || server.process.signalCode !== null) {
      fail(`round ${round}: the server exited by itself (${server.process.exitCode ?? server.process.signalCode}): ${server.stderr().slice(-500)}`);
      report.badRestarts++;
    }
    const killAt = performance.now();
    killed = true;
    server.process.kill('SIGKILL');
    await exited;
    report.stderr.push(...stderrProblems(server.stderr()));
    await Promise.all(loops);

    server = await startMnemo(args);
    const found = await readAll(server.port, keyCount);
    let kept = 0;
    let lost = 0;
    for (const [key, history] of histories) {
      if (history.tainted) continue;
      const observed = found.get(key) ?? null;
      const from = keptFrom(history, options.windowMs, killAt);
      if (from > 0) kept++;
      let match = -1;
      for (let i = history.states.length - 1; i >= from && match === -1; i--) {
        if (sameState(history.states[i]!, observed)) match = i;
      }
      if (match === -1) {
        report.badRestarts++;
        let earlier = -1;
        for (let i = from - 1; i >= 0 && earlier === -1; i--) if (sameState(history.states[i]!, observed)) earlier = i;
        const what = earlier === -1
          ? 'a state it never held this round'
          : `its state after write ${earlier}${earlier === 0 ? ' (the round start)' : ''}, losing write ${earlier + 1} acknowledged ${ageOf(history, earlier + 1, killAt)} before the kill`;
        fail(
          `round ${round} (${options.sync}, killed after ${delay} ms): ${key} read back ${showState(observed)}, ${what}; ` +
            `it had to be at least its state after write ${from} of ${history.states.length - 1} ` +
            `(${history.lastAcked} acknowledged): ${recent(history)}`,
        );
        continue;
      }
      for (let i = match + 1; i <= history.lastAcked; i++) {
        lost++;
        report.oldestLostMs = Math.max(report.oldestLostMs, killAt - history.ackAt[i]!);
      }
    }
    // Keys no writer touched this round must read back as they were.
    for (const [key, state] of known) {
      if (histories.has(key) || sameState(state, found.get(key) ?? null)) continue;
      report.badRestarts++;
      fail(`round ${round}: untouched ${key} read back ${showState(found.get(key) ?? null)}, was ${showState(state)}`);
    }
    for (const key of found.keys()) {
      if (!known.has(key) && !histories.has(key)) {
        report.badRestarts++;
        fail(`round ${round}: ${key} appeared from nowhere`);
      }
    }
    report.keysWithKeptWrites += kept;
    report.lostWrites += lost;
    log(`round ${round}: killed after ${delay} ms and ${replies} replies, ${histories.size} keys written, ${kept} with writes that had to be kept, ${lost} acknowledged writes lost`);
    known = found;
  }
  await server.stop();
  report.stderr.push(...stderrProblems(server.stderr()));
  return report;
}

/** The first history index the key must read back at or after. */
function keptFrom(history: History, windowMs: number, killAt: number): number {
  if (windowMs === 0) return history.lastAcked;
  if (windowMs === Infinity) return 0;
  for (let i = history.lastAcked; i > 0; i--) if (history.ackAt[i]! <= killAt - windowMs) return i;
  return 0;
}

/** The key's writes this round (the last dozen), with the replies the model expected. */
function recent(history: History): string {
  const ops = history.ops.slice(1).map((op, i) => `${i + 1}:${op}${Number.isNaN(history.ackAt[i + 1]) ? '(unacknowledged)' : ''}`);
  return (ops.length > 12 ? ['…', ...ops.slice(-12)] : ops).join(', ');
}

function ageOf(history: History, index: number, killAt: number): string {
  const at = history.ackAt[index];
  return at === undefined || Number.isNaN(at) ? 'never' : `${(killAt - at).toFixed(1)} ms`;
}

// ---------------------------------------------------------------- generation

function generateBatch(
  rng: Random, model: CacheModel, keys: string[], histories: Map<string, History>,
  tag: string, nextSeq: () => number, known: Map<string, Snapshot>,
): Command[] {
  const size = rng.range(1, 6);
  // Often a whole batch works on one or two keys, so that a read or write follows a delete
  // (or another write) of the same key before it commits.
  // Half the picks go to keys that hold a value, so that deletes, appends and incrs find one.
  const live = [...model.items.keys()];
  const pickKey = (): string => (live.length > 0 && rng.chance(0.5) ? rng.pick(live) : rng.pick(keys));
  const focus = rng.chance(0.6) ? Array.from({ length: rng.range(1, 2) }, pickKey) : null;
  const batch: Command[] = [];
  for (let n = 0; n < size; n++) {
    const key = focus === null ? pickKey() : rng.pick(focus);
    let history = histories.get(key);
    if (history === undefined) {
      history = { states: [known.get(key) ?? null], ackAt: [Number.NaN], ops: ['start'], lastAcked: 0, tainted: false };
      histories.set(key, history);
    }
    const seq = nextSeq();
    const current = model.live(key);
    const roll = rng.int(100);
    let name: string;
    let bytes: Buffer;
    let expected: Expected[];
    if (roll < 30 || (roll < 50 && current !== null && current.value.length > 30_000)) {
      const value = setValue(rng, `${tag}${seq}`);
      const flags = rng.pick([0, 0, 1, 42, 4294967295]);
      name = 'set';
      bytes = withData(`set ${key} ${flags} 0 ${value.length}`, value);
      expected = model.store('set', key, flags, 0, value, 0n, false, CTX);
    } else if (roll < 50) {
      const value = Buffer.from(rng.chance(0.5) ? String(rng.int(100)) : `.${tag}${seq}`, 'latin1');
      name = 'append';
      bytes = withData(`append ${key} 0 0 ${value.length}`, value);
      expected = model.store('append', key, 0, 0, value, 0n, false, CTX);
    } else if (roll < 70) {
      const delta = BigInt(rng.range(1, 1000));
      name = 'incr';
      bytes = Buffer.from(`incr ${key} ${delta}\r\n`, 'latin1');
      expected = model.incrDecr(key, true, delta, false, CTX);
    } else if (roll < 85) {
      name = 'delete';
      bytes = Buffer.from(`delete ${key}\r\n`, 'latin1');
      expected = model.delete(key, false);
    } else {
      name = 'get';
      bytes = Buffer.from(`get ${key}\r\n`, 'latin1');
      expected = model.retrieve([key], false, null);
    }
    let index = 0;
    if (name !== 'get') {
      const item = model.live(key);
      history.states.push(item === null ? null : { value: item.value, flags: item.flags });
      history.ackAt.push(Number.NaN);
      history.ops.push(`${name}->${expectedText(expected)}`);
      index = history.states.length - 1;
    }
    batch.push({ name, key, bytes, expected: render(expected), index });
  }
  return batch;
}

/** A number (so incr has something to work on) or a value tagged with its writer, round and sequence (so a torn or stale one is told apart). */
function setValue(rng: Random, tag: string): Buffer {
  if (rng.chance(0.45)) return Buffer.from(String(rng.int(rng.chance(0.5) ? 1000 : 1_000_000_000)), 'latin1');
  const size = rng.chance(0.08) ? rng.range(1000, 20_000) : rng.range(tag.length, 120);
  const out = Buffer.alloc(Math.max(size, tag.length), 0x2e);
  out.write(tag, 0, 'latin1');
  for (let i = tag.length + 1; i < out.length; i += 7) out[i] = 0x61 + rng.int(26);
  return out;
}

function withData(line: string, value: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${line}\r\n`, 'latin1'), value, Buffer.from('\r\n', 'latin1')]);
}

/** The expected reply's bytes (this test's commands expect plain tokens only: no CAS, no TTL). */
function render(expected: Expected[]): Buffer {
  const parts: Buffer[] = [];
  for (const part of expected) {
    if ('data' in part) parts.push(part.data, Buffer.from('\r\n', 'latin1'));
    else parts.push(Buffer.from(`${part.line.map((t) => (typeof t === 'string' ? t : '?')).join(' ')}\r\n`, 'latin1'));
  }
  return Buffer.concat(parts);
}

function expectedText(expected: Expected[]): string {
  const first = expected[0];
  return first === undefined || 'data' in first ? '?' : first.line.join(' ').slice(0, 30);
}

// ---------------------------------------------------------------- replies

/** One reply: a line, or for a get the VALUE blocks up to END. Throws when the connection ends first. */
async function readReply(wire: Wire, retrieval: boolean): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (;;) {
    const line = await wire.line();
    parts.push(Buffer.from(`${line}\r\n`, 'latin1'));
    if (!retrieval || !line.startsWith('VALUE ')) break;
    const length = Number(line.slice(line.lastIndexOf(' ') + 1));
    parts.push(await wire.bytes(length + 2));
  }
  return Buffer.concat(parts);
}

/** Every key's item after a restart (multi-gets of 100 keys). */
async function readAll(port: number, keyCount: number): Promise<Map<string, Snapshot>> {
  const wire = await Wire.open(port);
  const found = new Map<string, Snapshot>();
  try {
    for (let start = 0; start < keyCount; start += 100) {
      const keys: string[] = [];
      for (let i = start; i < Math.min(keyCount, start + 100); i++) keys.push(`k${i}`);
      wire.write(`get ${keys.join(' ')}\r\n`);
      for (;;) {
        const line = await wire.line();
        if (line === 'END') break;
        const match = /^VALUE (\S+) (\d+) (\d+)$/.exec(line);
        if (match === null) throw new Error(`unexpected line reading back keys: ${line}`);
        const data = await wire.bytes(Number(match[3]) + 2);
        found.set(match[1]!, { value: data.subarray(0, data.length - 2), flags: Number(match[2]) });
      }
    }
  } finally {
    wire.close();
  }
  return found;
}

function sameState(a: Snapshot, b: Snapshot): boolean {
  if (a === null || b === null) return a === b;
  return a.flags === b.flags && a.value.equals(b.value);
}

function outcome(command: Command, reply: Buffer): string {
  if (command.name === 'get') return reply.subarray(0, 5).toString('latin1') === 'VALUE' ? 'get:hit' : 'get:miss';
  const line = reply.toString('latin1', 0, Math.min(reply.length, 12)).split(/[\r ]/)[0]!;
  return `${command.name}:${/^\d+$/.test(line) ? 'number' : line}`;
}

function commandText(command: Command): string {
  return show(command.bytes);
}

function show(bytes: Buffer): string {
  const text = bytes.toString('latin1');
  return JSON.stringify(text.length > 70 ? `${text.slice(0, 70)}…(${text.length})` : text);
}

function showState(state: Snapshot): string {
  return state === null ? 'nothing' : `flags ${state.flags} ${show(state.value)}`;
}
