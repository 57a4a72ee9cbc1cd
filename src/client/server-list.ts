/**
 * The server list: twemproxy's "host:port:weight [name]" strings or objects.
 */
import { RequestError } from './errors.js';

export interface ServerAddress {
  host: string;
  port: number;
}

export interface ServerSpec extends ServerAddress {
  /** Share of the ring, as in twemproxy and libmemcached's weighted ketama (default 1). */
  weight?: number;
  /** Hashed for the ring instead of the address when given (twemproxy's server name). */
  name?: string;
  /**
   * A peer that holds the same keys (the other half of a Mnemo replication pair):
   * a read that fails on this server for want of a connection is retried there.
   * "host:port" or an address object.
   */
  replica?: string | ServerAddress;
}

export interface ResolvedServer {
  host: string;
  port: number;
  weight: number;
  name: string | undefined;
  replica: ServerAddress | undefined;
}

const DEFAULT_PORT = 11211;

/**
 * "host", "host:port", "host:port:weight", each optionally followed by a space and a
 * name; IPv6 hosts in brackets ("[::1]:11211:2 cache-a").
 */
export function parseServer(text: string): ResolvedServer {
  const [address, name, extra] = text.trim().split(/\s+/);
  if (address === undefined || address === '' || extra !== undefined) {
    throw new RequestError(`bad server ${JSON.stringify(text)}: expected "host:port:weight [name]"`);
  }
  let host: string;
  let rest: string[];
  if (address.startsWith('[')) {
    const close = address.indexOf(']');
    if (close < 0) throw new RequestError(`bad server ${JSON.stringify(text)}: unclosed [`);
    host = address.slice(1, close);
    const tail = address.slice(close + 1);
    if (tail !== '' && !tail.startsWith(':')) throw new RequestError(`bad server ${JSON.stringify(text)}`);
    rest = tail === '' ? [] : tail.slice(1).split(':');
  } else {
    [host = '', ...rest] = address.split(':');
  }
  if (host === '' || rest.length > 2) throw new RequestError(`bad server ${JSON.stringify(text)}: expected "host:port:weight [name]"`);
  return resolveServer({
    host,
    port: rest[0] === undefined ? DEFAULT_PORT : Number(rest[0]),
    weight: rest[1] === undefined ? 1 : Number(rest[1]),
    ...(name === undefined ? {} : { name }),
  });
}

export function resolveServer(spec: ServerSpec | string): ResolvedServer {
  if (typeof spec === 'string') return parseServer(spec);
  const weight = spec.weight ?? 1;
  if (!Number.isInteger(spec.port) || spec.port < 1 || spec.port > 65535) throw new RequestError(`bad port for ${spec.host}: ${spec.port}`);
  if (!Number.isInteger(weight) || weight < 1) throw new RequestError(`weight for ${spec.host}:${spec.port} must be a positive integer, got ${weight}`);
  let replica: ServerAddress | undefined;
  if (typeof spec.replica === 'string') {
    const parsed = parseServer(spec.replica);
    replica = { host: parsed.host, port: parsed.port };
  } else if (spec.replica !== undefined) {
    replica = { host: spec.replica.host, port: spec.replica.port };
  }
  return { host: spec.host, port: spec.port, weight, name: spec.name === '' ? undefined : spec.name, replica };
}
