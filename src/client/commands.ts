/**
 * Request bytes for the text protocol. Keys and values are checked here, before
 * anything is sent, because a bad key would make the server answer in a shape the
 * reply reader does not expect for that request.
 */
import { RequestError } from './errors.js';

/** memcached's KEY_MAX_LENGTH. */
export const MAX_KEY_LENGTH = 250;
/**
 * memcached closes a connection whose line grows past 2048 bytes without a newline,
 * except for get and gets; gat lines are kept under it, and get lines too so that
 * any proxy in between sees ordinary lines.
 */
export const MAX_RETRIEVAL_LINE = 2048;

const CRLF = Buffer.from('\r\n', 'latin1');
const SPACE = Buffer.from(' ', 'latin1');

export type Key = string | Buffer;
export type Value = string | Buffer;

/** The key's bytes, refused when memcached's text protocol cannot carry them. */
export function keyBytes(key: Key): Buffer {
  const bytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
  if (bytes.length === 0 || bytes.length > MAX_KEY_LENGTH) {
    throw new RequestError(`key must be 1 to ${MAX_KEY_LENGTH} bytes, got ${bytes.length}`);
  }
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!;
    if (byte <= 0x20 || byte === 0x7f) throw new RequestError(`key has a space or control byte at ${i}; use a meta command with the b flag for binary keys`);
  }
  return bytes;
}

export function valueBytes(value: Value): Buffer {
  return typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
}

/** An unsigned 32-bit client flags word. */
export function checkFlags(flags: number): number {
  if (!Number.isInteger(flags) || flags < 0 || flags > 0xffffffff) throw new RequestError(`flags must be an unsigned 32-bit integer, got ${flags}`);
  return flags;
}

/** Seconds, relative up to 30 days and a unix time above, as memcached reads exptime. */
export function checkTtl(ttl: number): number {
  if (!Number.isInteger(ttl)) throw new RequestError(`ttl must be an integer number of seconds, got ${ttl}`);
  return ttl;
}

export function checkUnsigned64(name: string, value: number | bigint): bigint {
  const big = typeof value === 'bigint' ? value : Number.isInteger(value) ? BigInt(value) : -1n;
  if (big < 0n || big > 0xffffffffffffffffn) throw new RequestError(`${name} must be an unsigned 64-bit integer, got ${value}`);
  return big;
}

export type StorageVerb = 'set' | 'add' | 'replace' | 'append' | 'prepend' | 'cas';

/** `<verb> <key> <flags> <exptime> <bytes> [<cas>]\r\n<data>\r\n`, in one buffer. */
export function storageCommand(verb: StorageVerb, key: Buffer, value: Buffer, flags: number, ttl: number, cas?: bigint): Buffer {
  const tail = ` ${flags} ${ttl} ${value.length}${cas === undefined ? '' : ` ${cas}`}\r\n`;
  const bytes = Buffer.allocUnsafe(verb.length + 1 + key.length + tail.length + value.length + 2);
  let at = bytes.write(verb, 0, 'latin1');
  bytes[at++] = 0x20;
  at += key.copy(bytes, at);
  at += bytes.write(tail, at, 'latin1');
  at += value.copy(bytes, at);
  bytes[at++] = 0x0d;
  bytes[at] = 0x0a;
  return bytes;
}

/** `<verb> <key> <args...>\r\n` for delete, touch, incr, decr. */
export function keyCommand(verb: string, key: Buffer, ...args: Array<string | number | bigint>): Buffer {
  const tail = args.length === 0 ? '\r\n' : ` ${args.join(' ')}\r\n`;
  const bytes = Buffer.allocUnsafe(verb.length + 1 + key.length + tail.length);
  let at = bytes.write(verb, 0, 'latin1');
  bytes[at++] = 0x20;
  at += key.copy(bytes, at);
  bytes.write(tail, at, 'latin1');
  return bytes;
}

export type RetrievalVerb = 'get' | 'gets' | 'gat' | 'gats';

/**
 * One or more `get k1 k2 ...` lines (gat/gats put the exptime first) for the keys,
 * each kept under MAX_RETRIEVAL_LINE.
 */
export function retrievalCommands(verb: RetrievalVerb, keys: readonly Buffer[], ttl?: number): Buffer[] {
  const head = Buffer.from(ttl === undefined ? verb : `${verb} ${ttl}`, 'latin1');
  const lines: Buffer[] = [];
  let parts: Buffer[] = [head];
  let length = head.length + CRLF.length;
  for (const key of keys) {
    if (parts.length > 1 && length + 1 + key.length > MAX_RETRIEVAL_LINE) {
      parts.push(CRLF);
      lines.push(Buffer.concat(parts, length));
      parts = [head];
      length = head.length + CRLF.length;
    }
    parts.push(SPACE, key);
    length += 1 + key.length;
  }
  parts.push(CRLF);
  lines.push(Buffer.concat(parts, length));
  return lines;
}

export function plainCommand(line: string): Buffer {
  return Buffer.from(`${line}\r\n`, 'latin1');
}
