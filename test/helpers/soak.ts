/**
 * Soak against a model: many connections issue a random mix of text and meta
 * commands on a small key space, pipelined in batches, and every reply is
 * checked against CacheModel (model.ts).
 *
 * Exactness under concurrency: a batch locks the keys it names (in sorted
 * order, so no deadlock) from the moment it is generated until its replies are
 * checked, so no other connection changes those keys in between, while batches
 * on other keys run concurrently on the server. flush_all and clock moves
 * (`debugtime`, with --test-clock) touch every key: they take a global lock
 * exclusively, batches take it shared.
 */
import { CacheModel, EPOCH, MAX_RELATIVE, type ApplyContext, type Expected } from './model.js';
import { Random } from './random.js';
import { Wire } from './wire.js';

export interface SoakOptions {
  port: number;
  durationMs: number;
  connections?: number;
  seed?: number;
  keys?: number;
  /**
   * The target is memcached itself (checking the model): avoid what memcached leaves to
   * chance. Its incr/decr rewrite an item in place only when no reply holds a reference to
   * it (replies hold theirs until a while after they are sent), else they make a new item
   * (exact digits, fresh flags, and ma's T then lands on the old one); so no counter command
   * follows a read of its key in the same or the previous batch (and run one connection);
   * and numbers stay below 2^63, where
   * its safe_strtoull looks for a minus sign past the value's end.
   */
  memcached?: boolean;
  /** The server takes `debugtime` (Mnemo with --test-clock): expiry is driven through epochs. */
  testClock?: boolean;
  log?: (line: string) => void;
  alive?: () => boolean;
}

export interface SoakReport {
  commands: number;
  batches: number;
  epochs: number;
  flushes: number;
  elapsedMs: number;
  /** Commands by name, and outcomes worth knowing were exercised (hits, misses, wins). */
  counts: Record<string, number>;
  failures: string[];
}

// ---------------------------------------------------------------- locks

class Mutex {
  private tail: Promise<void> = Promise.resolve();

  async lock(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((resolve) => (release = resolve));
    const previous = this.tail;
    this.tail = previous.then(() => next);
    await previous;
    return release;
  }
}

/** Shared for batches, exclusive for commands that touch every key. */
class SharedLock {
  private readers = 0;
  private writer = false;
  private queue: Array<{ exclusive: boolean; resolve: () => void }> = [];

  async acquire(exclusive: boolean): Promise<() => void> {
    if (this.queue.length === 0 && (exclusive ? !this.writer && this.readers === 0 : !this.writer)) this.grant(exclusive);
    else await new Promise<void>((resolve) => this.queue.push({ exclusive, resolve }));
    return () => this.release(exclusive);
  }

  private grant(exclusive: boolean): void {
    if (exclusive) this.writer = true;
    else this.readers++;
  }

  private release(exclusive: boolean): void {
    if (exclusive) this.writer = false;
    else this.readers--;
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      if (head.exclusive ? this.writer || this.readers > 0 : this.writer) break;
      this.queue.shift();
      this.grant(head.exclusive);
      head.resolve();
    }
  }
}

// ---------------------------------------------------------------- generation

interface Command {
  name: string;
  keys: string[];
  bytes: Buffer;
  apply(model: CacheModel, ctx: ApplyContext): Expected[];
}

const NUMBERS = ['0', '1', '9', '10', '99', '100', '007', ' 5', '5 ', '18446744073709551615', '18446744073709551614', '9223372036854775808', '12abc', '-3', '1\0x', '00000000000000000000042', '\t8'];

const SMALL_NUMBERS = NUMBERS.filter((n) => !/^\d{19}/.test(n));

function randomValue(rng: Random, small: boolean): Buffer {
  const value = anyValue(rng, small);
  // Never only C whitespace: memcached's strtoull would skip the \r\n after it and read on past the item.
  return value.length > 0 && value.every((b) => b === 0x20 || (b >= 0x09 && b <= 0x0d)) ? Buffer.concat([Buffer.from('x'), value]) : value;
}

function anyValue(rng: Random, small: boolean): Buffer {
  const roll = rng.int(100);
  if (roll < 35) return Buffer.from(rng.chance(0.5) ? rng.pick(small ? SMALL_NUMBERS : NUMBERS) : String(rng.int(1_000_000)), 'latin1');
  if (roll < 70) {
    const n = rng.int(30);
    let text = '';
    for (let i = 0; i < n; i++) text += String.fromCharCode(0x61 + rng.int(26));
    return Buffer.from(text, 'latin1');
  }
  if (roll < 93) return rng.bytes(rng.int(64));
  return rng.bytes(rng.range(1000, 30_000));
}

function randomFlags(rng: Random): number {
  return rng.pick([0, 0, 0, 1, 5, 65535, 4294967295, rng.u32()]);
}

/** An exptime whose meaning depends only on the epoch (see model.ts). */
function randomExptime(rng: Random, model: CacheModel, testClock: boolean): number {
  const roll = rng.int(100);
  if (roll < 45) return 0;
  if (roll < 70) return rng.range(1, 3) * EPOCH - rng.pick([0, 7]);
  if (roll < 77) return rng.pick([-1, -100]);
  if (roll < 82) return MAX_RELATIVE + 1; // absolute, before the server started: already expired
  if (roll < 87 || !testClock) return MAX_RELATIVE;
  return model.origin + (model.epoch + rng.range(1, 3)) * EPOCH - EPOCH / 4; // absolute, a few epochs ahead
}

function pickKeys(rng: Random, keys: string[], n: number): string[] {
  return Array.from({ length: n }, () => rng.pick(keys));
}

function withData(line: string, value: Buffer): Buffer {
  return Buffer.concat([Buffer.from(line + '\r\n', 'latin1'), value, Buffer.from('\r\n', 'latin1')]);
}

/** A CAS to send: the one the model knows (likely to match) or one certainly wrong. */
function chooseCas(rng: Random, model: CacheModel, key: string): bigint {
  // Always the same draws, whatever the model holds: a batch's keys are chosen by replaying its seeds.
  const useKnown = rng.chance(0.7);
  const pick = rng.int(3);
  const item = model.live(key);
  if (item !== null && item.cas !== null && useKnown) return item.cas;
  return model.wrongCas(item, pick);
}

function shuffle<T>(rng: Random, items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

interface GenerateOptions {
  testClock: boolean;
  memcached: boolean;
  /** Keys read earlier in this batch. */
  read: Set<string>;
}

function generate(rng: Random, model: CacheModel, keys: string[], options: GenerateOptions): Command {
  const command = generateOne(rng, model, keys, options);
  if (options.memcached && ['incr', 'decr', 'ma'].includes(command.name) && command.keys.some((k) => options.read.has(k))) {
    // memcached would make a new item rather than rewrite one an unsent reply holds: read it instead.
    const key = command.keys[0]!;
    return { name: 'get', keys: [key], bytes: Buffer.from(`get ${key}\r\n`, 'latin1'), apply: (m) => m.retrieve([key], false, null) };
  }
  if (!['set', 'add', 'replace', 'append', 'prepend', 'cas', 'ms', 'delete', 'md', 'incr', 'decr', 'ma'].includes(command.name)) {
    for (const k of command.keys) options.read.add(k);
  }
  return command;
}

function generateOne(rng: Random, model: CacheModel, keys: string[], options: GenerateOptions): Command {
  const { testClock, memcached: small } = options;
  const key = rng.pick(keys);
  const noreply = rng.chance(0.1);
  const nr = noreply ? ' noreply' : '';
  const roll = rng.int(100);
  if (roll < 22) {
    const mode = rng.pick(['set', 'set', 'add', 'replace', 'append', 'prepend', 'cas'] as const);
    const value = randomValue(rng, small);
    const flags = randomFlags(rng);
    const exptime = randomExptime(rng, model, testClock);
    const cas = mode === 'cas' ? chooseCas(rng, model, key) : 0n;
    const line = `${mode} ${key} ${flags} ${exptime} ${value.length}${mode === 'cas' ? ` ${cas}` : ''}${nr}`;
    return { name: mode, keys: [key], bytes: withData(line, value), apply: (m, ctx) => m.store(mode, key, flags, exptime, value, cas, noreply, ctx) };
  }
  if (roll < 34) {
    const verb = rng.pick(['get', 'gets', 'gat', 'gats'] as const);
    const names = pickKeys(rng, keys, rng.range(1, 3));
    const exptime = verb.startsWith('gat') ? randomExptime(rng, model, testClock) : null;
    const line = `${verb}${exptime === null ? '' : ` ${exptime}`} ${names.join(' ')}\r\n`;
    return { name: verb, keys: names, bytes: Buffer.from(line, 'latin1'), apply: (m) => m.retrieve(names, verb.endsWith('s'), exptime) };
  }
  if (roll < 38) {
    const exptime = randomExptime(rng, model, testClock);
    return { name: 'touch', keys: [key], bytes: Buffer.from(`touch ${key} ${exptime}${nr}\r\n`, 'latin1'), apply: (m) => m.touch(key, exptime, noreply) };
  }
  if (roll < 46) {
    const incr = rng.chance(0.5);
    const delta = rng.pick([1n, 1n, 5n, 100n, 18446744073709551615n, 9223372036854775808n, BigInt(rng.int(1000))]);
    const safeDelta = small && incr && delta > 1000n ? 1000n : delta;
    const verb = incr ? 'incr' : 'decr';
    return { name: verb, keys: [key], bytes: Buffer.from(`${verb} ${key} ${safeDelta}${nr}\r\n`, 'latin1'), apply: (m, ctx) => m.incrDecr(key, incr, safeDelta, noreply, ctx) };
  }
  if (roll < 50) {
    const line = rng.chance(0.2) ? `delete ${key} 0${nr}` : `delete ${key}${nr}`;
    return { name: 'delete', keys: [key], bytes: Buffer.from(line + '\r\n', 'latin1'), apply: (m) => m.delete(key, noreply) };
  }
  if (roll < 68) {
    const flags: string[] = [];
    for (const f of ['v', 'f', 's', 'k', 'c', 't', 'h', 'u', 'q']) if (rng.chance(0.3)) flags.push(f);
    if (rng.chance(0.3)) flags.push(`O${rng.int(100000)}`);
    if (rng.chance(0.15)) flags.push(`T${randomExptime(rng, model, testClock)}`);
    if (rng.chance(0.15)) flags.push(`N${randomExptime(rng, model, testClock)}`);
    if (rng.chance(0.15)) flags.push(`R${rng.range(1, 3) * EPOCH - EPOCH / 2}`);
    shuffle(rng, flags);
    return { name: 'mg', keys: [key], bytes: Buffer.from(`mg ${key}${flags.map((f) => ' ' + f).join('')}\r\n`, 'latin1'), apply: (m, ctx) => m.mg(key, flags, ctx) };
  }
  if (roll < 84) {
    const value = randomValue(rng, small);
    const flags: string[] = [];
    if (rng.chance(0.4)) flags.push(`T${randomExptime(rng, model, testClock)}`);
    if (rng.chance(0.3)) flags.push(`F${randomFlags(rng)}`);
    if (rng.chance(0.3)) flags.push(`M${rng.pick(['S', 'E', 'A', 'P', 'R'])}`);
    if (rng.chance(0.25)) flags.push(`C${chooseCas(rng, model, key)}`);
    if (rng.chance(0.15)) flags.push('I');
    for (const f of ['c', 'k', 'q']) if (rng.chance(0.25)) flags.push(f);
    if (rng.chance(0.3)) flags.push(`O${rng.int(100000)}`);
    shuffle(rng, flags);
    const line = `ms ${key} ${value.length}${flags.map((f) => ' ' + f).join('')}`;
    return { name: 'ms', keys: [key], bytes: withData(line, value), apply: (m, ctx) => m.ms(key, value, flags, ctx) };
  }
  if (roll < 90) {
    const flags: string[] = [];
    if (rng.chance(0.25)) flags.push('q');
    if (rng.chance(0.25)) flags.push(`C${chooseCas(rng, model, key)}`);
    if (rng.chance(0.3)) {
      flags.push('I');
      if (rng.chance(0.5)) flags.push(`T${randomExptime(rng, model, testClock)}`);
    }
    if (rng.chance(0.3)) flags.push('k');
    if (rng.chance(0.3)) flags.push(`O${rng.int(100000)}`);
    shuffle(rng, flags);
    return { name: 'md', keys: [key], bytes: Buffer.from(`md ${key}${flags.map((f) => ' ' + f).join('')}\r\n`, 'latin1'), apply: (m, ctx) => m.md(key, flags, ctx) };
  }
  if (roll < 99) {
    const flags: string[] = [];
    if (rng.chance(0.35)) flags.push(`N${randomExptime(rng, model, testClock)}`);
    if (rng.chance(0.3)) flags.push(`J${rng.pick(['0', '13', small ? '99' : '18446744073709551615', String(rng.int(1000))])}`);
    if (rng.chance(0.4)) flags.push(`D${rng.pick(['0', '1', '7', small ? '999' : '18446744073709551615', String(rng.int(1000))])}`);
    if (rng.chance(0.15)) flags.push(`T${randomExptime(rng, model, testClock)}`);
    if (rng.chance(0.4)) flags.push(`M${rng.pick(['I', '+', 'D', '-'])}`);
    if (rng.chance(0.15)) flags.push(`C${chooseCas(rng, model, key)}`);
    for (const f of ['q', 't', 'c', 'v', 'k']) if (rng.chance(0.3)) flags.push(f);
    if (rng.chance(0.3)) flags.push(`O${rng.int(100000)}`);
    shuffle(rng, flags);
    return { name: 'ma', keys: [key], bytes: Buffer.from(`ma ${key}${flags.map((f) => ' ' + f).join('')}\r\n`, 'latin1'), apply: (m, ctx) => m.ma(key, flags, ctx) };
  }
  // Reads with the same key several times in one line.
  const names = [key, key, ...pickKeys(rng, keys, 1)];
  return { name: 'gets', keys: names, bytes: Buffer.from(`gets ${names.join(' ')}\r\n`, 'latin1'), apply: (m) => m.retrieve(names, true, null) };
}

// ---------------------------------------------------------------- checking

function show(bytes: Buffer, limit = 300): string {
  const text = JSON.stringify(bytes.subarray(0, limit).toString('latin1'));
  return bytes.length > limit ? `${text}... (${bytes.length} bytes)` : text;
}

/** Reads one command's reply and compares it with the model's; returns an error or null. */
async function verify(wire: Wire, model: CacheModel, expected: Expected[], transcript: string[]): Promise<string | null> {
  for (const part of expected) {
    if ('data' in part) {
      const got = await wire.bytes(part.data.length + 2);
      transcript.push(show(got, 40));
      if (!got.subarray(0, part.data.length).equals(part.data) || got[part.data.length] !== 0x0d || got[part.data.length + 1] !== 0x0a) {
        return `data ${show(got)}, expected ${show(part.data)}`;
      }
      continue;
    }
    const line = await wire.line();
    transcript.push(line);
    const tokens = line.split(' ');
    const describe = (): string =>
      `reply ${JSON.stringify(line)}, expected ${JSON.stringify(part.line.map((t) => (typeof t === 'string' ? t : 'cas' in t ? `${t.prefix}<cas>` : `${t.prefix}~${t.ttl}`)).join(' '))}`;
    if (tokens.length !== part.line.length) return describe();
    for (const [i, want] of part.line.entries()) {
      const got = tokens[i]!;
      if (typeof want === 'string') {
        if (got !== want) return describe();
        continue;
      }
      if (!got.startsWith(want.prefix)) return describe();
      const digits = got.slice(want.prefix.length);
      if ('cas' in want) {
        if (!/^\d+$/.test(digits)) return describe();
        const error = model.observeCas(want.cas, BigInt(digits));
        if (error !== null) return `${error}: ${describe()}`;
      } else if (!/^-?\d+$/.test(digits) || (want.ttl !== null && Math.abs(Number(digits) - want.ttl) > 3)) {
        return describe();
      }
    }
  }
  return null;
}

// ---------------------------------------------------------------- the run

/** The server's unix time, from `stats`. */
async function serverTime(port: number): Promise<number> {
  const wire = await Wire.open(port);
  try {
    wire.write('stats\r\n');
    let time = NaN;
    for (;;) {
      const line = await wire.line();
      if (line === 'END') break;
      const match = /^STAT time (\d+)$/.exec(line);
      if (match) time = Number(match[1]);
    }
    return time;
  } finally {
    wire.close();
  }
}

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const seed = options.seed ?? Date.now() % 1_000_000_007;
  const connections = options.connections ?? 20;
  const testClock = options.testClock ?? false;
  const memcached = options.memcached ?? false;
  const keys = Array.from({ length: options.keys ?? 12 }, (_, i) => `k${i}`);
  const report: SoakReport = { commands: 0, batches: 0, epochs: 0, flushes: 0, elapsedMs: 0, counts: {}, failures: [] };
  const started = Date.now();
  const deadline = started + options.durationMs;

  // Start from an empty cache at a known time.
  const setup = await Wire.open(options.port);
  setup.write('flush_all\r\n');
  const flushed = await setup.line();
  setup.close();
  if (flushed !== 'OK') throw new Error(`flush_all answered ${flushed}`);
  const origin = await serverTime(options.port);
  const localOrigin = Date.now();
  const model: CacheModel = new CacheModel({
    serverNow: (): number => origin + Math.floor((Date.now() - localOrigin) / 1000) + model.epoch * EPOCH,
    // memcached counts from a little before its start; anything from 1970 is before it either way.
    serverStarted: origin - 60,
  });
  model.origin = origin;
  // Every absolute exptime (origin + epochs) must stay a positive int32, as memcached parses it.
  const maxEpochs = Math.max(0, Math.min(5000, Math.floor((2 ** 31 - 1 - origin - MAX_RELATIVE) / EPOCH) - 50));

  const global = new SharedLock();
  /** The last commands on each key, for failure reports. */
  const history = new Map<string, string[]>();
  const keyLocks = new Map(keys.map((k) => [k, new Mutex()]));
  let stop = false;
  const count = (name: string): void => {
    report.counts[name] = (report.counts[name] ?? 0) + 1;
  };
  let lastLog = Date.now();

  async function worker(index: number): Promise<void> {
    const rng = new Random(seed * 7919 + index);
    let recentReads = new Set<string>();
    let wire = await Wire.open(options.port);
    try {
      while (!stop && Date.now() < deadline) {
        if (rng.chance(0.01)) {
          wire.close();
          wire = await Wire.open(options.port);
        }
        if (rng.chance(testClock ? 0.02 : 0.005)) {
          // Clock moves are spread over the run: exptimes are 32-bit, so the clock may go only so far.
          const moveAllowed = report.epochs < Math.floor(maxEpochs * Math.min(1, (Date.now() - started) / options.durationMs));
          if (testClock && !moveAllowed && rng.chance(2 / 3)) continue;
          const release = await global.acquire(true);
          try {
            await globalCommand(rng, wire, report.epochs < Math.floor(maxEpochs * Math.min(1, (Date.now() - started) / options.durationMs)));
          } finally {
            release();
          }
          continue;
        }
        const releaseGlobal = await global.acquire(false);
        const releases: Array<() => void> = [];
        try {
          // Choose the keys first, lock them, then generate against the model they are safe in.
          const plan = rng.range(1, 6);
          const seeds = Array.from({ length: plan }, () => rng.u32());
          const generated: Command[] = [];
          const batchKeys = new Set<string>();
          // Generation reads the model: lock a superset (all keys a plan may name) would serialise too much,
          // so pick the commands' keys with a throwaway pass, then lock and generate for real with the same seeds.
          const dryRun: GenerateOptions = { testClock, memcached, read: new Set(recentReads) };
          for (const s of seeds) for (const k of generate(new Random(s), model, keys, dryRun).keys) batchKeys.add(k);
          for (const k of [...batchKeys].sort()) releases.push(await keyLocks.get(k)!.lock());
          const real: GenerateOptions = { testClock, memcached, read: new Set(recentReads) };
          for (const s of seeds) generated.push(generate(new Random(s), model, keys, real));
          for (const command of generated) {
            for (const k of command.keys) if (!batchKeys.has(k)) throw new Error(`soak: generation named ${k}, which it did not lock`);
          }
          const ctx: ApplyContext = { sendFloor: model.maxCasSeen };
          wire.write(Buffer.concat([...generated.map((c) => c.bytes), Buffer.from('mn\r\n', 'latin1')]));
          for (const [i, command] of generated.entries()) {
            count(command.name);
            const expected = command.apply(model, ctx);
            const transcript: string[] = [];
            const error = await verify(wire, model, expected, transcript);
            if (error !== null) {
              const past = [...new Set(command.keys)].map((k) => `history of ${k}: ${(history.get(k) ?? []).join(' | ')}`).join('; ');
              throw new Error(
                `${command.name} (${i + 1} of ${generated.length} in a batch): ${show(command.bytes)}: ${error}; batch ${show(Buffer.concat(generated.map((c) => c.bytes)), 2000)}; ${past}`,
              );
            }
            for (const k of new Set(command.keys)) {
              const list = history.get(k) ?? [];
              list.push(`${show(command.bytes, 80)} -> ${JSON.stringify(transcript.join(' / '))}`);
              if (list.length > 12) list.shift();
              history.set(k, list);
            }
            report.commands++;
          }
          const mn = await wire.line();
          if (mn !== 'MN') throw new Error(`expected MN after the batch, got ${JSON.stringify(mn)}`);
          report.batches++;
          // memcached may still hold what this batch read when the next one runs.
          recentReads = new Set(real.read);
        } finally {
          for (const release of releases) release();
          releaseGlobal();
        }
        if (options.log !== undefined && Date.now() - lastLog > 10_000) {
          lastLog = Date.now();
          const seconds = (Date.now() - started) / 1000;
          options.log(`soak: ${report.commands} commands in ${seconds.toFixed(0)} s (${Math.round(report.commands / seconds)}/s), ${report.epochs} epochs, ${report.flushes} flushes`);
        }
      }
    } catch (error) {
      if (!stop) report.failures.push(`seed ${seed}, connection ${index}: ${(error as Error).message}`);
      stop = true;
    } finally {
      wire.close();
    }
  }

  /** flush_all (now or delayed) or a clock move, with every other connection idle. */
  async function globalCommand(rng: Random, wire: Wire, moveAllowed: boolean): Promise<void> {
    const roll = rng.int(testClock ? 3 : 1);
    if (roll === 0 || !moveAllowed) {
      report.flushes++;
      const delayed = testClock && rng.chance(0.4);
      const delay = delayed ? rng.range(1, 2) * EPOCH : rng.pick([0, -1]);
      const noreply = rng.chance(0.2);
      const line = delay === 0 && rng.chance(0.5) ? 'flush_all' : `flush_all ${delay}`;
      wire.write(`${line}${noreply ? ' noreply' : ''}\r\nmn\r\n`);
      model.flushAll(delay);
      for (const list of history.values()) list.push(line);
      count(delayed ? 'flush_all delayed' : 'flush_all');
      if (!noreply) {
        const ok = await wire.line();
        if (ok !== 'OK') throw new Error(`${line} answered ${JSON.stringify(ok)}`);
      }
    } else {
      report.epochs++;
      wire.write(`debugtime ${EPOCH}\r\nmn\r\n`);
      const ok = await wire.line();
      if (ok !== 'OK') throw new Error(`debugtime answered ${JSON.stringify(ok)}`);
      model.advance();
      for (const list of history.values()) list.push('debugtime');
      count('debugtime');
    }
    const mn = await wire.line();
    if (mn !== 'MN') throw new Error(`expected MN, got ${JSON.stringify(mn)}`);
  }

  const liveness = setInterval(() => {
    if (options.alive !== undefined && !options.alive()) {
      if (!stop) report.failures.push('the server process died');
      stop = true;
    }
  }, 500);
  try {
    await Promise.all(Array.from({ length: connections }, (_, i) => worker(i)));
  } finally {
    clearInterval(liveness);
  }
  report.elapsedMs = Date.now() - started;
  return report;
}
