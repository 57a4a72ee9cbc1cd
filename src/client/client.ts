/**
 * A memcached client for Mnemo (and any memcached): promises for every text and
 * meta command, keys spread over servers by libmemcached's weighted ketama, a small
 * pipelined connection pool per server, and twemproxy's auto_eject_hosts.
 *
 *   const client = new Client({ servers: ['10.0.0.1:11211', '10.0.0.2:11211:2'] });
 *   await client.set('user:1', JSON.stringify(user), { ttl: 300 });
 *   const item = await client.get('user:1');   // { value: Buffer, flags: 0 } or undefined
 */
import {
  checkFlags,
  checkTtl,
  checkUnsigned64,
  keyBytes,
  keyCommand,
  plainCommand,
  retrievalCommands,
  storageCommand,
  valueBytes,
  type Key,
  type RetrievalVerb,
  type StorageVerb,
  type Value,
} from './commands.js';
import { Cluster } from './cluster.js';
import { isServerFailure, NoServerError, RequestError, ServerError } from './errors.js';
import { ketamaLabel } from './ketama.js';
import { isQuiet, metaCommand, metaReply, metaTokens, metaWireKey, type MetaFlags, type MetaReply, type MetaVerb } from './meta.js';
import type { ReplyKind, ReplyState, ValueBlock } from './reply-reader.js';
import { resolveServer, type ServerSpec } from './server-list.js';
import { ServerNode } from './server-node.js';

export interface ClientOptions {
  /** "host:port:weight [name]" strings (twemproxy's format) or ServerSpec objects. */
  servers: ReadonlyArray<string | ServerSpec>;
  /**
   * What the ring hashes for each server: 'name' (default) hashes a server's name when
   * it has one and its address otherwise, as twemproxy does; 'address' always hashes
   * "host:port", as libmemcached does (it has no names).
   */
  hashBy?: 'name' | 'address';
  /** Connections per server (default 2). */
  poolSize?: number;
  /** Per-request timeout in ms (default 1000); a request can override it. */
  timeout?: number;
  /** Connect timeout in ms (default 1000). */
  connectTimeout?: number;
  /** Take failing servers out of the ring (default true), as twemproxy's auto_eject_hosts. */
  autoEject?: boolean;
  /** Consecutive failures that eject a server (default 2, twemproxy's server_failure_limit). */
  failureLimit?: number;
  /** Ms an ejected server stays out before it is tried again (default 30000, server_retry_timeout). */
  retryTimeout?: number;
}

export interface RequestOptions {
  /** Overrides the client's timeout for this request, in ms. */
  timeout?: number;
}

export interface StoreOptions extends RequestOptions {
  /** Expiry in seconds: relative up to 30 days, a unix time above, 0 (default) never. */
  ttl?: number;
  /** The 32-bit client flags stored with the value (default 0). */
  flags?: number;
}

export interface Item {
  value: Buffer;
  flags: number;
  /** The CAS unique, from gets, gats and their multi forms. */
  cas?: bigint;
}

export type CasResult = 'STORED' | 'EXISTS' | 'NOT_FOUND';

export interface ServerStatus {
  address: string;
  /** What the ring hashes for it. */
  label: string;
  weight: number;
  live: boolean;
  /** Consecutive failures counted towards ejection. */
  failures: number;
  ejections: number;
}

const READ = true;
const WRITE = false;

export class Client {
  private readonly cluster: Cluster;
  private readonly timeoutMs: number;
  private closed = false;

  constructor(options: ClientOptions) {
    if (options.servers.length === 0) throw new RequestError('servers must name at least one server');
    this.timeoutMs = positive('timeout', options.timeout ?? 1000);
    const poolOptions = { poolSize: positive('poolSize', options.poolSize ?? 2), connectTimeoutMs: positive('connectTimeout', options.connectTimeout ?? 1000) };
    const policy = {
      autoEject: options.autoEject ?? true,
      failureLimit: positive('failureLimit', options.failureLimit ?? 2),
      retryTimeoutMs: positive('retryTimeout', options.retryTimeout ?? 30_000),
    };
    const hashByName = (options.hashBy ?? 'name') === 'name';
    const nodes = options.servers.map((spec) => {
      const server = resolveServer(spec);
      const label = ketamaLabel(server.host, server.port, hashByName ? server.name : undefined);
      return new ServerNode(server, label, poolOptions, policy, () => this.cluster.invalidate());
    });
    this.cluster = new Cluster(nodes);
  }

  // ---- retrieval ---------------------------------------------------------------

  get(key: Key, options?: RequestOptions): Promise<Item | undefined> {
    return this.retrieveOne('get', key, undefined, options);
  }

  /** get with the CAS unique. */
  gets(key: Key, options?: RequestOptions): Promise<Item | undefined> {
    return this.retrieveOne('gets', key, undefined, options);
  }

  /** Get and touch: returns the item and sets its expiry to ttl. */
  gat(key: Key, ttl: number, options?: RequestOptions): Promise<Item | undefined> {
    return this.retrieveOne('gat', key, ttl, options);
  }

  gats(key: Key, ttl: number, options?: RequestOptions): Promise<Item | undefined> {
    return this.retrieveOne('gats', key, ttl, options);
  }

  /**
   * The hits among keys, fetched with one pipelined request per server. Map keys are
   * the keys as given (a Buffer key appears as its latin1 string). Rejects if a server
   * holding some of the keys cannot be reached (and has no replica that can).
   */
  getMulti(keys: readonly Key[], options?: RequestOptions): Promise<Map<string, Item>> {
    return this.retrieveMany('get', keys, undefined, options);
  }

  getsMulti(keys: readonly Key[], options?: RequestOptions): Promise<Map<string, Item>> {
    return this.retrieveMany('gets', keys, undefined, options);
  }

  gatMulti(keys: readonly Key[], ttl: number, options?: RequestOptions): Promise<Map<string, Item>> {
    return this.retrieveMany('gat', keys, ttl, options);
  }

  gatsMulti(keys: readonly Key[], ttl: number, options?: RequestOptions): Promise<Map<string, Item>> {
    return this.retrieveMany('gats', keys, ttl, options);
  }

  // ---- storage -----------------------------------------------------------------

  /** True once stored. */
  async set(key: Key, value: Value, options?: StoreOptions): Promise<boolean> {
    return (await this.store('set', key, value, options)) === 'STORED';
  }

  /** True if stored; false if the key exists. */
  async add(key: Key, value: Value, options?: StoreOptions): Promise<boolean> {
    return (await this.store('add', key, value, options)) === 'STORED';
  }

  /** True if stored; false if the key does not exist. */
  async replace(key: Key, value: Value, options?: StoreOptions): Promise<boolean> {
    return (await this.store('replace', key, value, options)) === 'STORED';
  }

  /** True if appended; false if the key does not exist. ttl and flags are ignored by the server. */
  async append(key: Key, value: Value, options?: RequestOptions): Promise<boolean> {
    return (await this.store('append', key, value, options)) === 'STORED';
  }

  async prepend(key: Key, value: Value, options?: RequestOptions): Promise<boolean> {
    return (await this.store('prepend', key, value, options)) === 'STORED';
  }

  /** Stores only if the item's CAS unique is still cas (from gets). */
  async cas(key: Key, value: Value, cas: bigint, options?: StoreOptions): Promise<CasResult> {
    return (await this.store('cas', key, value, options, checkUnsigned64('cas', cas))) as CasResult;
  }

  // ---- other keyed commands -----------------------------------------------------

  /** The new value, or undefined if the key does not exist. Counters are unsigned 64-bit. */
  incr(key: Key, delta: number | bigint = 1, options?: RequestOptions): Promise<bigint | undefined> {
    return this.arithmetic('incr', key, delta, options);
  }

  /** As incr; memcached stops at 0. */
  decr(key: Key, delta: number | bigint = 1, options?: RequestOptions): Promise<bigint | undefined> {
    return this.arithmetic('decr', key, delta, options);
  }

  /** True if deleted; false if the key did not exist. */
  async delete(key: Key, options?: RequestOptions): Promise<boolean> {
    const line = await this.keyed(key, (wire) => keyCommand('delete', wire), ['DELETED', 'NOT_FOUND'], options);
    return line === 'DELETED';
  }

  /** True if the expiry was updated; false if the key does not exist. */
  async touch(key: Key, ttl: number, options?: RequestOptions): Promise<boolean> {
    const line = await this.keyed(key, (wire) => keyCommand('touch', wire, checkTtl(ttl)), ['TOUCHED', 'NOT_FOUND'], options);
    return line === 'TOUCHED';
  }

  // ---- meta ----------------------------------------------------------------------

  /** Meta get, e.g. `mg(key, 'v f t c')`. A miss has status EN (or 'quiet' with q). */
  async mg(key: Key, flags?: MetaFlags, options?: RequestOptions): Promise<MetaReply> {
    const tokens = metaTokens(flags);
    // mg that touches (T) or creates (N) an item is a write; a plain one may be retried on a replica.
    const read = !tokens.some((token) => token.startsWith('T') || token.startsWith('N'));
    return this.meta('mg', key, tokens, undefined, read, options);
  }

  /** Meta set, e.g. `ms(key, value, 'T60 F5')`, or with `MA` to append. */
  async ms(key: Key, value: Value, flags?: MetaFlags, options?: RequestOptions): Promise<MetaReply> {
    return this.meta('ms', key, metaTokens(flags), valueBytes(value), WRITE, options);
  }

  /** Meta delete. */
  async md(key: Key, flags?: MetaFlags, options?: RequestOptions): Promise<MetaReply> {
    return this.meta('md', key, metaTokens(flags), undefined, WRITE, options);
  }

  /** Meta arithmetic, e.g. `ma(key, 'N0 J1 D5 v')`. */
  async ma(key: Key, flags?: MetaFlags, options?: RequestOptions): Promise<MetaReply> {
    return this.meta('ma', key, metaTokens(flags), undefined, WRITE, options);
  }

  /** Meta no-op on every live server: resolves once each has answered MN. */
  async mn(options?: RequestOptions): Promise<void> {
    await this.everyServer('mn', ['MN'], options);
  }

  // ---- every server -------------------------------------------------------------

  /** flush_all on every live server, optionally delayed by seconds. */
  async flushAll(delay?: number, options?: RequestOptions): Promise<void> {
    await this.everyServer(delay === undefined ? 'flush_all' : `flush_all ${checkTtl(delay)}`, ['OK'], options);
  }

  /** The version of every live server, by address. */
  async version(options?: RequestOptions): Promise<Map<string, string>> {
    const lines = await this.everyServer('version', undefined, options);
    const versions = new Map<string, string>();
    for (const [address, line] of lines) {
      if (!line.startsWith('VERSION ')) throw new ServerError(`unexpected reply to version: ${line}`, address);
      versions.set(address, line.slice('VERSION '.length));
    }
    return versions;
  }

  /** `stats [group]` of every live server, by address. */
  async stats(group?: string, options?: RequestOptions): Promise<Map<string, Record<string, string>>> {
    if (group !== undefined && !/^[\x21-\x7e][\x20-\x7e]*$/.test(group)) throw new RequestError(`bad stats group ${JSON.stringify(group)}`);
    const command = plainCommand(group === undefined ? 'stats' : `stats ${group}`);
    const all = this.cluster.liveNodes().map(async (node) => {
      const state = await this.send(node, command, 'stats', WRITE, options);
      return [node.address, Object.fromEntries(state.stats)] as const;
    });
    return new Map(await Promise.all(all));
  }

  // ---- routing and health -------------------------------------------------------

  /** The address of the server a key goes to now. */
  serverFor(key: Key): string {
    return this.cluster.nodeFor(keyBytes(key)).address;
  }

  /** Each server's place in the ring and its health. */
  servers(): ServerStatus[] {
    const live = new Set(this.cluster.liveNodes());
    return this.cluster.nodes.map((node) => ({
      address: node.address,
      label: node.label,
      weight: node.server.weight,
      live: live.has(node),
      failures: node.failures,
      ejections: node.ejections,
    }));
  }

  /** Ends every connection once the requests on it are answered; later requests are refused. */
  close(): void {
    this.closed = true;
    for (const node of this.cluster.nodes) node.close();
  }

  // ---- internals -----------------------------------------------------------------

  private route(key: Buffer): ServerNode {
    if (this.closed) throw new NoServerError('client closed');
    return this.cluster.nodeFor(key);
  }

  /**
   * Sends on the server's pool; a read that fails for want of a connection (or a
   * reply in time) is sent once more to the server's replica.
   */
  private send(node: ServerNode, bytes: Buffer, kind: ReplyKind, read: boolean, options: RequestOptions | undefined): Promise<ReplyState> {
    const timeout = options?.timeout ?? this.timeoutMs;
    const sent = node.pool.send(bytes, kind, timeout);
    const replica = node.replica;
    if (!read || replica === undefined) return sent;
    return sent.catch((error: unknown) => {
      if (!isServerFailure(error)) throw error;
      return replica.send(bytes, kind, timeout);
    });
  }

  private async retrieveOne(verb: RetrievalVerb, key: Key, ttl: number | undefined, options: RequestOptions | undefined): Promise<Item | undefined> {
    const wire = keyBytes(key);
    const line = retrievalCommands(verb, [wire], ttl === undefined ? undefined : checkTtl(ttl))[0]!;
    const state = await this.send(this.route(wire), line, 'values', READ_FOR[verb], options);
    const block = state.values[0];
    return block === undefined ? undefined : toItem(block);
  }

  private async retrieveMany(
    verb: RetrievalVerb,
    keys: readonly Key[],
    ttl: number | undefined,
    options: RequestOptions | undefined,
  ): Promise<Map<string, Item>> {
    // The server echoes each key's bytes; this maps them back to the key as given.
    const givenByWire = new Map<string, string>();
    const byNode = new Map<ServerNode, Buffer[]>();
    for (const key of keys) {
      const wire = keyBytes(key);
      const wireText = wire.toString('latin1');
      if (givenByWire.has(wireText)) continue;
      givenByWire.set(wireText, typeof key === 'string' ? key : wireText);
      const node = this.route(wire);
      const group = byNode.get(node);
      if (group === undefined) byNode.set(node, [wire]);
      else group.push(wire);
    }
    if (ttl !== undefined) checkTtl(ttl);
    const replies: Array<Promise<ReplyState>> = [];
    for (const [node, group] of byNode) {
      for (const line of retrievalCommands(verb, group, ttl)) replies.push(this.send(node, line, 'values', READ_FOR[verb], options));
    }
    const items = new Map<string, Item>();
    for (const state of await Promise.all(replies)) {
      for (const block of state.values) {
        const given = givenByWire.get(block.key.toString('latin1'));
        if (given !== undefined) items.set(given, toItem(block));
      }
    }
    return items;
  }

  private store(verb: StorageVerb, key: Key, value: Value, options: StoreOptions | undefined, cas?: bigint): Promise<string> {
    const expected = verb === 'cas' ? CAS_REPLIES : STORE_REPLIES;
    const encode = (wire: Buffer): Buffer =>
      storageCommand(verb, wire, valueBytes(value), checkFlags(options?.flags ?? 0), checkTtl(options?.ttl ?? 0), cas);
    return this.keyed(key, encode, expected, options);
  }

  private async arithmetic(verb: 'incr' | 'decr', key: Key, delta: number | bigint, options: RequestOptions | undefined): Promise<bigint | undefined> {
    const amount = checkUnsigned64('delta', delta);
    const line = await this.keyed(key, (wire) => keyCommand(verb, wire, amount), ARITHMETIC_REPLY, options);
    return line === 'NOT_FOUND' ? undefined : BigInt(line);
  }

  /** A one-line command (a write: never retried on a replica) on one key; a reply other than the expected ones is an error. */
  private async keyed(key: Key, encode: (wire: Buffer) => Buffer, expected: readonly string[] | RegExp, options: RequestOptions | undefined): Promise<string> {
    const wire = keyBytes(key);
    const node = this.route(wire);
    const { line } = await this.send(node, encode(wire), 'line', WRITE, options);
    if (expected instanceof RegExp ? !expected.test(line) : !expected.includes(line)) throw new ServerError(`unexpected reply: ${line}`, node.address);
    return line;
  }

  private async meta(
    verb: MetaVerb,
    key: Key,
    tokens: string[],
    value: Buffer | undefined,
    read: boolean,
    options: RequestOptions | undefined,
  ): Promise<MetaReply> {
    const raw = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
    const wire = metaWireKey(raw, tokens);
    const node = this.route(raw);
    const state = await this.send(node, metaCommand(verb, wire, tokens, value), isQuiet(tokens) ? 'meta-quiet' : 'meta', read, options);
    return metaReply(state.meta!);
  }

  /** A one-line command on every live server; resolves with each reply by address. */
  private async everyServer(line: string, expected: readonly string[] | undefined, options: RequestOptions | undefined): Promise<Array<[string, string]>> {
    if (this.closed) throw new NoServerError('client closed');
    const command = plainCommand(line);
    const nodes = this.cluster.liveNodes();
    if (nodes.length === 0) throw new NoServerError(`no live server: all ${this.cluster.nodes.length} are ejected`);
    return Promise.all(
      nodes.map(async (node): Promise<[string, string]> => {
        const reply = (await this.send(node, command, 'line', WRITE, options)).line;
        if (expected !== undefined && !expected.includes(reply)) throw new ServerError(`unexpected reply to ${line}: ${reply}`, node.address);
        return [node.address, reply];
      }),
    );
  }
}

const STORE_REPLIES = ['STORED', 'NOT_STORED'];
const ARITHMETIC_REPLY = /^(\d+|NOT_FOUND)$/;
const CAS_REPLIES = ['STORED', 'EXISTS', 'NOT_FOUND'];

/** gat and gats change the expiry, so they are not retried on a replica. */
const READ_FOR: Record<RetrievalVerb, boolean> = { get: READ, gets: READ, gat: WRITE, gats: WRITE };

function toItem(block: ValueBlock): Item {
  return block.cas === undefined ? { value: block.value, flags: block.flags } : { value: block.value, flags: block.flags, cas: block.cas };
}

function positive(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new RequestError(`${name} must be a positive integer, got ${value}`);
  return value;
}
