/**
 * A mutation fuzzer for the text, meta and binary protocols over real sockets.
 *
 * The corpus is recorded valid traffic: the differential sessions in
 * test/corpus/*.json split into commands, plus a request of every binary opcode.
 * Each batch takes 1..24 commands, mutates most of them (bit flips, interesting
 * bytes, numbers and tokens, splices, truncation, header fields) and sends the
 * batch in one write, followed by what a framing oracle (framing.ts) says the
 * server needs to be back at a command boundary, and a marker command with a
 * fresh nonce. The properties checked:
 *  - the marker is answered, and its reply is the last thing the server sends
 *    (no desynchronisation), unless the server closed the connection where
 *    memcached closes it (over-long or HTTP lines, quit, bad binary magic,
 *    binary protocol errors) — and a binary connection memcached closes must close;
 *  - binary replies frame exactly (every response a whole, well-formed one);
 *  - a fresh connection answers `version` and `mn` (and a binary noop) every
 *    couple of seconds, and the server process stays alive;
 *  - sentinel items stored under keys the fuzzer cannot name stay intact.
 */
import { readFileSync } from 'node:fs';
import { deltaExtras, request, storeExtras, u32 } from './binary.js';
import { AutoFraming, BinaryFraming, TextFraming, splitTextCommands, type Framing } from './framing.js';
import { Random } from './random.js';
import { Wire } from './wire.js';

export interface FuzzOptions {
  port: number;
  /** Stop after this many generated inputs (commands)... */
  maxInputs?: number;
  /** ...or after this long, whichever comes first. */
  durationMs?: number;
  /** Concurrent fuzzing connections. */
  workers?: number;
  seed?: number;
  /** Checked on every liveness probe: false when the server process died. */
  alive?: () => boolean;
  /** Progress lines (long runs). */
  log?: (line: string) => void;
  /** How long a marker may take to come back. */
  replyTimeoutMs?: number;
  /** Stop at this many failures. */
  maxFailures?: number;
  /** Prefix of the version reply, e.g. "VERSION 1.6.18". */
  versionPrefix?: string;
  /** The target does not trim unknown binary opcodes as Mnemo does (plain memcached): skip checks after them. */
  knownOpcodesOnly?: boolean;
}

export interface FuzzReport {
  inputs: number;
  batches: number;
  bytesSent: number;
  /** Connections the server closed where memcached would. */
  expectedCloses: number;
  /** Batches whose pending data was too large to complete (same-connection check skipped). */
  abandoned: number;
  liveness: number;
  elapsedMs: number;
  failures: string[];
}

// ---------------------------------------------------------------- corpus

const corpusFile = (name: string): Array<{ send: string; setup?: string }> =>
  JSON.parse(readFileSync(new URL(`../corpus/${name}`, import.meta.url), 'utf8')) as Array<{ send: string; setup?: string }>;

/** Extra valid commands the recorded sessions lack or hold only a few of. */
const EXTRA_TEXT = [
  'get a b c d\r\n', 'gets a\r\n', 'gat 100 a b\r\n', 'gats 0 a\r\n', 'touch a 10\r\n', 'touch a 10 noreply\r\n',
  'incr n 1\r\n', 'decr n 18446744073709551615\r\n', 'incr n 5 noreply\r\n', 'delete a\r\n', 'delete a 0 noreply\r\n',
  'set n 0 0 2\r\n10\r\n', 'add a 1 100 3\r\nabc\r\n', 'replace a 2 -1 1\r\nx\r\n', 'append a 0 0 2\r\nyz\r\n',
  'prepend a 0 0 2\r\n\r\n\r\n', 'cas a 0 0 1 1\r\nq\r\n', 'cas a 0 0 1 999 noreply\r\nq\r\n', 'version\r\n', 'mn\r\n',
  'verbosity 0\r\n', 'stats\r\n', 'stats settings\r\n', 'stats items\r\n', 'stats slabs\r\n', 'stats sizes\r\n',
  'stats conns\r\n', 'stats detail dump\r\n', 'stats cachedump 1 1\r\n', 'lru_crawler metadump all\r\n',
  'lru_crawler crawl all\r\n', 'cache_memlimit 64\r\n', 'flush_all 0\r\n', 'shutdown\r\n',
  'mg a v k f s t c h l O1 q\r\n', 'mg a T30 N30 R10 v\r\n', 'mg YQ== b k v\r\n', 'ms a 2 T0 F5 c k O9 I\r\nhi\r\n',
  'ms a 1 MA q\r\nz\r\n', 'ms a 1 MP C1\r\nz\r\n', 'ms a 1 ME\r\nz\r\n', 'ms a 1 MR\r\nz\r\n', 'ms YQ== 1 b\r\nz\r\n',
  'md a q\r\n', 'md a I T30\r\n', 'md a C1 k O5\r\n', 'ma n\r\n', 'ma n MD D5 v t c\r\n', 'ma n N0 J13 q\r\n',
  'ma n M+ D18446744073709551615 v\r\n', 'me a\r\n', 'me YQ== b\r\n', 'bget a\r\n',
];

export function textCorpus(): Buffer[] {
  const units: Buffer[] = [];
  for (const session of [...corpusFile('text-sessions.json'), ...corpusFile('meta-sessions.json')]) {
    for (const part of [session.setup, session.send]) {
      if (part !== undefined) units.push(...splitTextCommands(Buffer.from(part, 'latin1')));
    }
  }
  for (const text of EXTRA_TEXT) units.push(Buffer.from(text, 'latin1'));
  return units.filter((u) => u.length > 0);
}

export function binaryCorpus(): Buffer[] {
  const key = 'bk';
  const units: Buffer[] = [
    request({ opcode: 0x00, key }), request({ opcode: 0x09, key }), request({ opcode: 0x0c, key }), request({ opcode: 0x0d, key }),
    request({ opcode: 0x01, key, extras: storeExtras(5, 0), value: 'hello' }),
    request({ opcode: 0x11, key, extras: storeExtras(0, 100), value: 'q' }),
    request({ opcode: 0x02, key: 'bn', extras: storeExtras(0, 0), value: '10' }),
    request({ opcode: 0x12, key, extras: storeExtras(1, 0), value: '' }),
    request({ opcode: 0x03, key, extras: storeExtras(0, 0xffffffff), value: 'r' }),
    request({ opcode: 0x13, key, extras: storeExtras(0, 0), value: 'rr' }),
    request({ opcode: 0x01, key, extras: storeExtras(0, 0), value: 'c', cas: 1n }),
    request({ opcode: 0x0e, key, value: '+a' }), request({ opcode: 0x19, key, value: '+aq' }),
    request({ opcode: 0x0f, key, value: 'p-' }), request({ opcode: 0x1a, key, value: 'pq-' }),
    request({ opcode: 0x04, key }), request({ opcode: 0x14, key }), request({ opcode: 0x04, key, cas: 7n }),
    request({ opcode: 0x05, key: 'bn', extras: deltaExtras(1n, 0n, 0) }),
    request({ opcode: 0x06, key: 'bn', extras: deltaExtras(3n, 5n, 0xffffffff) }),
    request({ opcode: 0x15, key: 'bn', extras: deltaExtras(18446744073709551615n, 1n, 10) }),
    request({ opcode: 0x16, key: 'bn', extras: deltaExtras(1n, 0n, 0) }),
    request({ opcode: 0x08 }), request({ opcode: 0x18, extras: u32(10) }),
    request({ opcode: 0x0a }), request({ opcode: 0x0b }), request({ opcode: 0x07 }), request({ opcode: 0x17 }),
    request({ opcode: 0x10 }), request({ opcode: 0x10, key: 'settings' }), request({ opcode: 0x10, key: 'items' }),
    request({ opcode: 0x10, key: 'slabs' }), request({ opcode: 0x10, key: 'nope' }),
    request({ opcode: 0x1c, key, extras: u32(10) }), request({ opcode: 0x1d, key, extras: u32(0) }),
    request({ opcode: 0x1e, key, extras: u32(5) }), request({ opcode: 0x23, key, extras: u32(1) }),
    request({ opcode: 0x24, key, extras: u32(1) }), request({ opcode: 0x20 }),
    request({ opcode: 0x21, key: 'PLAIN', value: '\0user\0pass' }), request({ opcode: 0x22, key: 'PLAIN', value: 'x' }),
    request({ opcode: 0x1b, extras: u32(1) }), request({ opcode: 0x30, key, value: 'unknown' }),
  ];
  return units;
}

// ---------------------------------------------------------------- mutation

const INTERESTING_BYTES = [0x00, 0x0a, 0x0d, 0x20, 0x09, 0x0b, 0x0c, 0x7f, 0x80, 0x81, 0xff, 0x2d, 0x2b, 0x30, 0x39, 0x3d];
const INTERESTING_NUMBERS = [
  '0', '1', '2', '3', '10', '-1', '+1', '-0', '00', '007', '250', '251', '1024', '2048', '65535', '1048576', '1048577',
  '2592000', '2592001', '4294967295', '4294967296', '-4294967296', '2147483645', '2147483646', '2147483647',
  '2147483648', '-2147483648', '-2147483649', '9223372036854775807', '9223372036854775808', '-9223372036854775808',
  '18446744073709551615', '18446744073709551616', '99999999999999999999999', '1x', 'x1', '1\t', '\t1', '1\v', '0x10',
  '1e3', '', ' ',
];
const TOKENS = [
  'get', 'gets', 'gat', 'gats', 'bget', 'touch', 'set', 'add', 'replace', 'append', 'prepend', 'cas', 'incr', 'decr',
  'delete', 'flush_all', 'version', 'verbosity', 'quit', 'stats', 'mg', 'ms', 'md', 'ma', 'mn', 'me', 'noreply',
  'lru_crawler', 'metadump', 'cache_memlimit', 'settings', 'detail', 'reset', 'v', 'k', 's', 'f', 'c', 't', 'h', 'l',
  'u', 'q', 'b', 'I', 'E', 'P', 'L', 'O123', 'Oabc', 'T0', 'T-1', 'T100', 'N0', 'N30', 'R30', 'C0', 'C1', 'C99999',
  'F0', 'F4294967295', 'Fx', 'M', 'ME', 'MA', 'MP', 'MR', 'MS', 'MI', 'MD', 'M+', 'M-', 'Mx', 'MAA', 'D1', 'D0', 'Dx',
  'J5', 'Jx', 'S10', 'HTTP/1.1', 'a', 'foo', 'YQ==', '!!!!', 'Zm9v=',
];

function mutateText(rng: Random, unit: Buffer, others: Buffer[]): Buffer {
  let out = Buffer.from(unit);
  const ops = rng.range(1, 4);
  for (let i = 0; i < ops; i++) {
    const at = rng.int(out.length + 1);
    switch (rng.int(14)) {
      case 0: // bit flip
        if (out.length > 0) out[rng.int(out.length)]! ^= 1 << rng.int(8);
        break;
      case 1: // interesting byte
        if (out.length > 0) out[rng.int(out.length)] = rng.pick(INTERESTING_BYTES);
        break;
      case 2: // insert bytes
        out = Buffer.concat([out.subarray(0, at), rng.chance(0.5) ? rng.bytes(rng.range(1, 8)) : Buffer.from([rng.pick(INTERESTING_BYTES)]), out.subarray(at)]);
        break;
      case 3: { // delete a range
        const n = rng.range(1, 8);
        out = Buffer.concat([out.subarray(0, at), out.subarray(at + n)]);
        break;
      }
      case 4: { // duplicate a range
        const n = rng.range(1, 16);
        out = Buffer.concat([out.subarray(0, at + n), out.subarray(at, at + n), out.subarray(at + n)]);
        break;
      }
      case 5: { // splice from another command
        const other = rng.pick(others);
        const from = rng.int(other.length);
        out = Buffer.concat([out.subarray(0, at), other.subarray(from, from + rng.range(1, 32)), out.subarray(at + rng.int(8))]);
        break;
      }
      case 6: // replace a number
      case 7: // replace a token
      case 8: { // insert a token
        const text = out.toString('latin1');
        const parts = text.split(' ');
        const index = rng.int(parts.length);
        const op = rng.int(3);
        const word = op === 0 || rng.chance(0.4) ? rng.pick(INTERESTING_NUMBERS) : rng.pick(TOKENS);
        if (op === 2) parts.splice(index, 0, word);
        else {
          // Keep what follows the token on its line (\r\n and data) when replacing.
          const tokenEnd = parts[index]!.search(/[\r\n]/);
          parts[index] = tokenEnd === -1 ? word : word + parts[index]!.slice(tokenEnd);
        }
        out = Buffer.from(parts.join(' '), 'latin1');
        break;
      }
      case 9: // truncate
        out = out.subarray(0, rng.int(out.length + 1));
        break;
      case 10: { // line-ending trouble
        const crlf = out.indexOf('\r\n');
        if (crlf === -1) break;
        const replacement = rng.pick(['\n', '\r', '', '\r\r\n', '\n\r\n', ' \r\n', '\0\r\n']);
        out = Buffer.concat([out.subarray(0, crlf), Buffer.from(replacement, 'latin1'), out.subarray(crlf + 2)]);
        break;
      }
      case 11: { // a long token: keys at the 250-byte limit, lines past 2048
        const length = rng.pick([249, 250, 251, 255, 1000, 2047, 2049, 3000]);
        const parts = out.toString('latin1').split(' ');
        const index = Math.min(1, parts.length - 1);
        const tail = parts[index]!.search(/[\r\n]/);
        parts[index] = 'k'.repeat(length) + (tail === -1 ? '' : parts[index]!.slice(tail));
        out = Buffer.from(parts.join(' '), 'latin1');
        break;
      }
      case 12: { // many tokens
        const n = rng.pick([20, 22, 23, 24, 25, 40, 300]);
        const words = Array.from({ length: n }, () => rng.pick(TOKENS));
        const lineEnd = out.indexOf('\r\n');
        const cut = lineEnd === -1 ? out.length : lineEnd;
        out = Buffer.concat([out.subarray(0, cut), Buffer.from(' ' + words.join(' '), 'latin1'), out.subarray(cut)]);
        break;
      }
      default: // random bytes
        out = Buffer.concat([out.subarray(0, at), rng.bytes(rng.range(1, 64)), out.subarray(at)]);
    }
  }
  return out;
}

const HEADER_VALUES_16 = [0, 1, 2, 4, 8, 20, 250, 251, 255, 256, 0x7fff, 0x8000, 0xffff];
const HEADER_VALUES_32 = [0, 1, 4, 8, 20, 24, 250, 251, 1024, 65535, 65536, 1048576, 0x7fffffff, 0x80000000, 0xffffffff];

function mutateBinary(rng: Random, unit: Buffer, others: Buffer[], knownOpcodesOnly: boolean): Buffer {
  let out = Buffer.from(unit);
  const ops = rng.range(1, 3);
  for (let i = 0; i < ops; i++) {
    switch (rng.int(12)) {
      case 0: // opcode
        if (out.length >= 2) out[1] = knownOpcodesOnly ? rng.pick(KNOWN_OPCODES) : rng.chance(0.7) ? rng.pick(KNOWN_OPCODES) : rng.int(256);
        break;
      case 1: { // key length, near the truth or interesting
        if (out.length < 4) break;
        const now = out.readUInt16BE(2);
        out.writeUInt16BE(rng.chance(0.5) ? Math.max(0, Math.min(0xffff, now + rng.range(-2, 2))) : rng.pick(HEADER_VALUES_16), 2);
        break;
      }
      case 2: // extras length
        if (out.length >= 5) out[4] = rng.pick([0, 1, 4, 8, 12, 20, 24, 255]);
        break;
      case 3: { // body length
        if (out.length < 12) break;
        const now = out.readUInt32BE(8);
        out.writeUInt32BE(rng.chance(0.6) ? Math.min(0xffffffff, Math.max(0, now + rng.range(-3, 3))) : rng.pick(HEADER_VALUES_32), 8);
        break;
      }
      case 4: // magic (rare: it closes the connection)
        if (out.length >= 1 && rng.chance(0.3)) out[0] = rng.pick([0x81, 0x00, 0x7f, 0xff, 0x47]);
        break;
      case 5: // cas / opaque / datatype / vbucket bytes
        if (out.length >= 24) out[rng.pick([5, 6, 7, 12, 13, 14, 15, 16, 19, 22, 23])] = rng.u32() & 0xff;
        break;
      case 6: // a byte of the body
        if (out.length > 24) out[24 + rng.int(out.length - 24)] = rng.chance(0.5) ? rng.pick(INTERESTING_BYTES) : rng.u32() & 0xff;
        break;
      case 7: // truncate
        out = out.subarray(0, rng.int(out.length + 1));
        break;
      case 8: // extra bytes at the end
        out = Buffer.concat([out, rng.bytes(rng.range(1, 32))]);
        break;
      case 9: { // splice another request's tail
        const other = rng.pick(others);
        out = Buffer.concat([out.subarray(0, rng.int(out.length + 1)), other.subarray(rng.int(other.length))]);
        break;
      }
      case 10: { // a longer key or value, with lengths fixed up
        if (out.length < 24) break;
        const grow = rng.pick([1, 10, 226, 227, 1000, 70000]);
        out = Buffer.concat([out, Buffer.alloc(grow, 0x6b)]);
        out.writeUInt32BE(out.length - 24, 8);
        if (rng.chance(0.5)) out.writeUInt16BE(Math.min(0xffff, out.readUInt16BE(2) + grow), 2);
        break;
      }
      default: // bit flip
        if (out.length > 0) out[rng.int(out.length)]! ^= 1 << rng.int(8);
    }
  }
  return out;
}

const KNOWN_OPCODES = [
  0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13,
  0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1c, 0x1d, 0x1e, 0x20, 0x21, 0x22, 0x23, 0x24,
];

// ---------------------------------------------------------------- the run

/** A pending data block larger than this is not completed: the connection is dropped instead. */
const FILLER_BUDGET = 2 * 1024 * 1024;

function describeBytes(data: Buffer, limit = 1500): string {
  const text = JSON.stringify(data.subarray(0, limit).toString('latin1'));
  return data.length > limit ? `${text}... (${data.length} bytes)` : text;
}

/** Every response a whole one with the response magic: the binary stream frames exactly. */
function binaryStreamError(data: Buffer): string | null {
  let pos = 0;
  while (pos < data.length) {
    if (data.length - pos < 24) return `a partial response header at ${pos}`;
    if (data[pos] !== 0x81) return `response magic 0x${data[pos]!.toString(16)} at ${pos}`;
    const bodylen = data.readUInt32BE(pos + 8);
    const keylen = data.readUInt16BE(pos + 2);
    const extlen = data[pos + 4]!;
    if (keylen + extlen > bodylen) return `key and extras longer than the body at ${pos}`;
    pos += 24 + bodylen;
  }
  return pos === data.length ? null : 'a response longer than the stream';
}

type Kind = 'text' | 'binary' | 'auto';

interface Session {
  wire: Wire;
  framing: Framing;
  kind: Kind;
}

export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const workers = options.workers ?? 4;
  const seed = options.seed ?? Date.now() % 1_000_000_007;
  const maxInputs = options.maxInputs ?? Infinity;
  const deadline = Date.now() + (options.durationMs ?? Infinity);
  const replyTimeout = options.replyTimeoutMs ?? 15_000;
  const maxFailures = options.maxFailures ?? 5;
  const versionPrefix = options.versionPrefix ?? 'VERSION ';
  const knownOpcodesOnly = options.knownOpcodesOnly ?? false;
  const texts = textCorpus();
  const binaries = binaryCorpus();
  const report: FuzzReport = { inputs: 0, batches: 0, bytesSent: 0, expectedCloses: 0, abandoned: 0, liveness: 0, elapsedMs: 0, failures: [] };
  const started = Date.now();
  const done = (): boolean => report.inputs >= maxInputs || Date.now() >= deadline || report.failures.length >= maxFailures;
  const fail = (message: string): void => {
    if (report.failures.length < maxFailures) report.failures.push(`seed ${seed}: ${message}`);
  };

  const sentinels = await storeSentinels(options.port, new Random(seed ^ 0x5eed));

  let lastLog = Date.now();
  const progress = (): void => {
    if (options.log === undefined || Date.now() - lastLog < 10_000) return;
    lastLog = Date.now();
    const seconds = (Date.now() - started) / 1000;
    options.log(`fuzz: ${report.inputs} inputs in ${seconds.toFixed(0)} s (${Math.round(report.inputs / seconds)}/s), ${report.batches} batches, ${report.expectedCloses} expected closes, ${report.abandoned} abandoned`);
  };

  async function liveness(): Promise<void> {
    report.liveness++;
    if (options.alive !== undefined && !options.alive()) {
      fail('the server process is gone');
      return;
    }
    let wire: Wire;
    try {
      wire = await Wire.open(options.port);
    } catch (error) {
      fail(`a fresh connection failed: ${(error as Error).message}`);
      return;
    }
    try {
      wire.write('version\r\nmn\r\n');
      const version = await wire.line(replyTimeout);
      const mn = await wire.line(replyTimeout);
      if (!version.startsWith(versionPrefix) || mn !== 'MN') fail(`a fresh connection answered ${JSON.stringify(version)} ${JSON.stringify(mn)}`);
    } catch (error) {
      fail(`a fresh connection did not answer version/mn: ${(error as Error).message}`);
    } finally {
      wire.close();
    }
    const binary = await Wire.open(options.port);
    try {
      binary.write(request({ opcode: 0x0a, opaque: 0xfeed }));
      const reply = await binary.bytes(24, replyTimeout);
      if (reply[0] !== 0x81 || reply[1] !== 0x0a || reply.readUInt32BE(12) !== 0xfeed || reply.readUInt16BE(6) !== 0) {
        fail(`a fresh binary connection answered a noop with ${reply.toString('hex')}`);
      }
    } catch (error) {
      fail(`a fresh binary connection did not answer a noop: ${(error as Error).message}`);
    } finally {
      binary.close();
    }
  }

  async function open(rng: Random): Promise<Session> {
    const wire = await Wire.open(options.port);
    const roll = rng.int(10);
    if (roll < 5) {
      wire.write('version\r\n');
      const line = await wire.line(replyTimeout);
      if (!line.startsWith(versionPrefix)) fail(`text handshake answered ${JSON.stringify(line)}`);
      return { wire, framing: new TextFraming(), kind: 'text' };
    }
    if (roll < 9) {
      wire.write(request({ opcode: 0x0b, opaque: 1 }));
      const header = await wire.bytes(24, replyTimeout);
      await wire.bytes(header.readUInt32BE(8), replyTimeout);
      return { wire, framing: new BinaryFraming(), kind: 'binary' };
    }
    return { wire, framing: new AutoFraming(), kind: 'auto' };
  }

  /** Sends a batch with its marker; false when the connection is done (closed as expected, or failed). */
  async function exchange(wire: Wire, framing: Framing, kind: Kind, isBinary: boolean, batch: Buffer, out: Buffer, expected: Buffer): Promise<boolean> {
    report.bytesSent += out.length;
    wire.write(out);
    const state = await wire.waitFor(() => wire.available >= expected.length && wire.tail(expected.length).equals(expected), replyTimeout);
    const received = wire.take();
    const context = (): string =>
      `${kind} connection, batch ${describeBytes(batch)}; received ${describeBytes(received.subarray(Math.max(0, received.length - 600)))}`;
    if (state === 'ok') {
      if (framing.closed) fail(`the server answered after a request memcached closes the connection on: ${context()}`);
      if (isBinary) {
        const error = binaryStreamError(received);
        if (error !== null) fail(`binary replies do not frame: ${error}: ${context()}`);
      }
      return !framing.closed;
    }
    if (state === 'closed') {
      if (framing.closed || framing.closeAllowed) report.expectedCloses++;
      else fail(`the server closed the connection where memcached keeps it: ${context()}`);
      return false;
    }
    if (framing.closed) fail(`the server neither closed the connection nor answered: ${context()}`);
    else fail(`no reply to the marker (desynchronised or stuck): ${context()}`);
    return false;
  }

  async function worker(index: number): Promise<void> {
    const rng = new Random(seed * 31 + index);
    let session: Session | null = null;
    let lastLiveness = Date.now();
    while (!done()) {
      if (session === null || session.wire.closed) {
        session?.wire.close();
        try {
          session = await open(rng);
        } catch (error) {
          fail(`connecting failed: ${(error as Error).message}`);
          return;
        }
      }
      const { wire, framing, kind } = session;
      const binaryFirst = kind === 'binary' || (kind === 'auto' && rng.chance(0.4));
      const count = rng.range(1, 24);
      const units: Buffer[] = [];
      for (let i = 0; i < count; i++) {
        const binary = rng.chance(0.03) ? !binaryFirst : binaryFirst;
        const pool = binary ? binaries : texts;
        let unit = rng.pick(pool);
        if (rng.chance(0.85)) unit = binary ? mutateBinary(rng, unit, pool, knownOpcodesOnly) : mutateText(rng, unit, pool);
        if (rng.chance(0.01)) unit = rng.bytes(rng.range(1, 300));
        units.push(unit);
      }
      const batch = Buffer.concat(units);
      const pieces: Buffer[] = [batch];
      framing.push(batch);
      const isBinary = framing instanceof BinaryFraming || (framing instanceof AutoFraming && framing.binary);
      if (!isBinary && !framing.closed) {
        const crlf = Buffer.from('\r\n');
        pieces.push(crlf);
        framing.push(crlf);
      }
      let filled = 0;
      while (framing.pending > 0 && filled <= FILLER_BUDGET) {
        const filler = framing.filler(Math.min(framing.pending, FILLER_BUDGET + 1 - filled));
        filled += filler.length;
        pieces.push(filler);
        framing.push(filler);
      }
      report.inputs += count;
      report.batches++;
      if (framing.pending > 0 || (knownOpcodesOnly && framing.unknownOpcode === true)) {
        // A data block too large to send (memcached would swallow it too), or an opcode
        // plain memcached mishandles: drop the connection.
        report.abandoned++;
        wire.write(batch);
        report.bytesSent += batch.length;
        wire.close();
        session = null;
        continue;
      }
      const nonce = rng.u32();
      let expected: Buffer;
      if (isBinary) {
        pieces.push(request({ opcode: 0x0a, opaque: nonce }));
        expected = Buffer.alloc(24);
        expected[0] = 0x81;
        expected[1] = 0x0a;
        expected.writeUInt32BE(nonce, 12);
      } else {
        pieces.push(Buffer.from(`mg __fz${nonce} O${nonce}\r\n`, 'latin1'));
        expected = Buffer.from(`EN O${nonce}\r\n`, 'latin1');
      }
      if (!(await exchange(wire, framing, kind, isBinary, batch, Buffer.concat(pieces), expected))) {
        wire.close();
        session = null;
      }
      progress();
      if (Date.now() - lastLiveness > 2000) {
        lastLiveness = Date.now();
        await liveness();
      }
    }
    session?.wire.close();
  }

  await Promise.all(Array.from({ length: workers }, (_, i) => worker(i)));
  await liveness();
  const damaged = await checkSentinels(options.port, sentinels);
  if (damaged !== null) fail(damaged);
  report.elapsedMs = Date.now() - started;
  return report;
}

// ---------------------------------------------------------------- sentinels

interface Sentinel {
  key: string;
  flags: number;
  value: Buffer;
}

/** Items under keys no mutation can produce, stored over text and binary. */
async function storeSentinels(port: number, rng: Random): Promise<Sentinel[]> {
  const sizes = [0, 1, 2, 100, 1000, 8191, 8192, 65536, 300_000];
  const sentinels: Sentinel[] = sizes.map((size, i) => ({
    key: `__sentinel:${rng.hex(16)}:${i}`,
    flags: i % 2 === 0 ? rng.u32() : 0,
    value: rng.bytes(size),
  }));
  const text = await Wire.open(port);
  const binary = await Wire.open(port);
  try {
    for (const [i, s] of sentinels.entries()) {
      if (i % 2 === 0) {
        text.write(Buffer.concat([Buffer.from(`set ${s.key} ${s.flags} 0 ${s.value.length}\r\n`, 'latin1'), s.value, Buffer.from('\r\n')]));
        const line = await text.line();
        if (line !== 'STORED') throw new Error(`storing a sentinel: ${line}`);
      } else {
        binary.write(request({ opcode: 0x01, key: s.key, extras: storeExtras(s.flags, 0), value: s.value }));
        const header = await binary.bytes(24);
        await binary.bytes(header.readUInt32BE(8));
        if (header.readUInt16BE(6) !== 0) throw new Error(`storing a sentinel over binary: status ${header.readUInt16BE(6)}`);
      }
    }
  } finally {
    text.close();
    binary.close();
  }
  return sentinels;
}

async function checkSentinels(port: number, sentinels: Sentinel[]): Promise<string | null> {
  const wire = await Wire.open(port);
  try {
    for (const s of sentinels) {
      wire.write(`get ${s.key}\r\n`);
      const line = await wire.line();
      if (line !== `VALUE ${s.key} ${s.flags} ${s.value.length}`) return `sentinel ${s.key} changed: ${JSON.stringify(line)}`;
      const value = await wire.bytes(s.value.length + 2);
      if (!value.subarray(0, s.value.length).equals(s.value)) return `sentinel ${s.key} has different bytes`;
      const end = await wire.line();
      if (end !== 'END') return `sentinel ${s.key}: ${JSON.stringify(end)} after the value`;
    }
    return null;
  } finally {
    wire.close();
  }
}

/** Lines of a server's stderr that report trouble: errors, fatal logs, stack traces (anything but JSON below level 50 and the ready line). */
export function stderrProblems(stderr: string): string[] {
  return stderr.split('\n').filter((line) => {
    if (line.trim() === '' || / listening on /.test(line)) return false;
    try {
      const entry = JSON.parse(line) as { level?: unknown };
      return typeof entry.level !== 'number' || entry.level >= 50;
    } catch {
      return true;
    }
  });
}
