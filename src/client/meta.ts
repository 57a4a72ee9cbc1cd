/**
 * Meta commands (mg, ms, md, ma): flags in, a parsed reply out. Flags are passed
 * through as memcached 1.6 defines them ("v f t", ["T30", "N30"], ...), with two
 * things done by the client:
 * - b: the key given is raw bytes; the client base64-encodes it on the wire (and
 *   routes by the raw bytes, so `get` of the same printable key finds the same server);
 * - q: the reply may be suppressed, so the client sends an `mn` after the request
 *   and knows from MN that no reply is coming (status 'quiet').
 */
import { keyBytes, MAX_KEY_LENGTH } from './commands.js';
import { RequestError } from './errors.js';
import type { MetaBlock } from './reply-reader.js';

export type MetaFlags = string | readonly string[];
export type MetaVerb = 'mg' | 'ms' | 'md' | 'ma';

export interface MetaReply {
  /** VA, HD, EN, NF, NS or EX as the server sent it; 'quiet' when q suppressed the reply. */
  status: string;
  /** Return flags by letter, e.g. `{ c: '42', t: '-1', k: 'foo' }`; a bare flag maps to ''. */
  flags: Record<string, string>;
  /** The return flags as sent. */
  tokens: string[];
  /** The data block of a VA reply. */
  value: Buffer | undefined;
}

export function metaTokens(flags: MetaFlags | undefined): string[] {
  if (flags === undefined) return [];
  const tokens = typeof flags === 'string' ? flags.split(' ').filter((token) => token !== '') : [...flags];
  for (const token of tokens) {
    if (token === '' || /[\s\0]/.test(token)) throw new RequestError(`bad meta flag ${JSON.stringify(token)}`);
  }
  return tokens;
}

/** The key as it goes on the wire: as is, or base64 under the b flag. */
export function metaWireKey(key: Buffer, tokens: readonly string[]): Buffer {
  if (!tokens.includes('b')) return keyBytes(key);
  if (key.length === 0) throw new RequestError('key must not be empty');
  const encoded = Buffer.from(key.toString('base64'), 'latin1');
  if (encoded.length > MAX_KEY_LENGTH) throw new RequestError(`base64 key must be at most ${MAX_KEY_LENGTH} bytes, got ${encoded.length}`);
  return encoded;
}

export function isQuiet(tokens: readonly string[]): boolean {
  return tokens.includes('q');
}

/** `<verb> <key> [<datalen>] <flags>*\r\n[<data>\r\n]`, and `mn\r\n` after a quiet one. */
export function metaCommand(verb: MetaVerb, wireKey: Buffer, tokens: readonly string[], value?: Buffer): Buffer {
  const parts: Buffer[] = [Buffer.from(`${verb} `, 'latin1'), wireKey];
  let tail = value === undefined ? '' : ` ${value.length}`;
  if (tokens.length > 0) tail += ` ${tokens.join(' ')}`;
  parts.push(Buffer.from(`${tail}\r\n`, 'latin1'));
  if (value !== undefined) parts.push(value, Buffer.from('\r\n', 'latin1'));
  if (isQuiet(tokens)) parts.push(Buffer.from('mn\r\n', 'latin1'));
  return Buffer.concat(parts);
}

export function metaReply(block: MetaBlock): MetaReply {
  const flags: Record<string, string> = {};
  for (const token of block.tokens) if (token !== '') flags[token[0]!] = token.slice(1);
  return { status: block.status, flags, tokens: block.tokens, value: block.value };
}
