import { accessSync, constants } from 'node:fs';
import { readFileSync as readSecretFile } from 'node:fs';
import { parseArgs } from 'node:util';
import { dirname, resolve } from 'node:path';
import type { ReplicationPeer } from './config.js';
import { isLoopback } from '../base/loopback.js';
import { ConfigError, DEFAULTS, type Config, type TlsConfig } from './config.js';
import { applyExtendedOption, checkExtendedOptions, settleSlabSettings } from './extended-options.js';
import { lookupUser } from '../server/privileges.js';
import { checkTlsFiles } from '../server/tls.js';

/**
 * memcached's command line, parsed by node:util parseArgs. Short and long names
 * are memcached's own (memcached -h), so existing start scripts work unchanged.
 */
const OPTIONS = {
  port: { type: 'string', short: 'p' },
  'udp-port': { type: 'string', short: 'U' },
  'unix-socket': { type: 'string', short: 's' },
  'unix-mask': { type: 'string', short: 'a' },
  'enable-shutdown': { type: 'boolean', short: 'A' },
  listen: { type: 'string', short: 'l' },
  daemon: { type: 'boolean', short: 'd' },
  'enable-coredumps': { type: 'boolean', short: 'r' },
  user: { type: 'string', short: 'u' },
  'memory-limit': { type: 'string', short: 'm' },
  'disable-evictions': { type: 'boolean', short: 'M' },
  'conn-limit': { type: 'string', short: 'c' },
  'lock-memory': { type: 'boolean', short: 'k' },
  verbose: { type: 'boolean', short: 'v', multiple: true },
  help: { type: 'boolean', short: 'h' },
  license: { type: 'boolean', short: 'i' },
  version: { type: 'boolean', short: 'V' },
  pidfile: { type: 'string', short: 'P' },
  'slab-growth-factor': { type: 'string', short: 'f' },
  'slab-min-size': { type: 'string', short: 'n' },
  'enable-largepages': { type: 'boolean', short: 'L' },
  'prefix-delimiter': { type: 'string', short: 'D' },
  threads: { type: 'string', short: 't' },
  'max-reqs-per-event': { type: 'string', short: 'R' },
  'disable-cas': { type: 'boolean', short: 'C' },
  'listen-backlog': { type: 'string', short: 'b' },
  protocol: { type: 'string', short: 'B' },
  'max-item-size': { type: 'string', short: 'I' },
  'enable-sasl': { type: 'boolean', short: 'S' },
  'disable-flush-all': { type: 'boolean', short: 'F' },
  'disable-dumping': { type: 'boolean', short: 'X' },
  'disable-watch': { type: 'boolean', short: 'W' },
  'auth-file': { type: 'string', short: 'Y' },
  'memory-file': { type: 'string', short: 'e' },
  'enable-ssl': { type: 'boolean', short: 'Z' },
  extended: { type: 'string', short: 'o', multiple: true },
  napi_ids: { type: 'string', short: 'N' },
  // Mnemo's own, long names only.
  'log-file': { type: 'string' },
  'sasl-pwdb': { type: 'string' },
  'test-clock': { type: 'boolean' },
  'metrics-port': { type: 'string' },
  'log-format': { type: 'string' },
  'data-dir': { type: 'string', short: 'H' },
  peer: { type: 'string', multiple: true },
  'replication-port': { type: 'string' },
  'node-id': { type: 'string' },
  'replication-secret-file': { type: 'string' },
  'replication-insecure': { type: 'boolean' },
  'peer-wait': { type: 'string' },
  'anti-entropy-interval': { type: 'string' },
  'sync-wait-timeout': { type: 'string' },
  'test-drop-changes': { type: 'string' },
  sync: { type: 'string' },
  'disk-limit': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-ca': { type: 'string' },
  'tls-port': { type: 'string' },
} as const;

type OptionName = keyof typeof OPTIONS;

export const HELP = `Usage: mnemo [options]
A memcached-compatible cache server. Flags use memcached's names and meanings.

  -p, --port=<num>            TCP port to listen on (default: 11211, or the -U port when
                              only -U is given; -1 picks a free port; 0: no TCP listener)
  -U, --udp-port=<num>        UDP port to listen on (default: 0, off; -1 picks a free port)
  -s, --unix-socket=<file>    UNIX socket to listen on (disables network support)
  -a, --unix-mask=<mask>      access mask for the UNIX socket, in octal (default: 700)
  -l, --listen=<addr>         interface to listen on (default: 127.0.0.1)
  -b, --listen-backlog=<num>  backlog queue limit (default: 1024)
  -c, --conn-limit=<num>      max simultaneous connections (default: 1024)
  -m, --memory-limit=<num>    item memory in megabytes, in 1 MB slab pages as memcached
                              (default: 64); values still arriving may hold as much again
  -M, --disable-evictions     return an error when memory is full instead of evicting
  -I, --max-item-size=<num>   largest item, with k/m units (default: 1m, min: 1k; at most half of -m)
  -t, --threads=<num>         accepted and shown in stats (default: 4); one event loop serves all
  -R, --max-reqs-per-event=<num> commands run per connection before others get a turn (default: 20)
  -C, --disable-cas           disable use of CAS
  -F, --disable-flush-all     disable the flush_all command
  -A, --enable-shutdown       enable the "shutdown" command
  -X, --disable-dumping       disable stats cachedump and lru_crawler metadump
  -B, --protocol=<name>       ascii, binary or auto (default: auto-negotiate per connection)
  -S, --enable-sasl           require SASL PLAIN authentication (binary protocol only)
      --sasl-pwdb=<file>      SASL passwords, "user:password" lines (or MEMCACHED_SASL_PWDB)
  -Y, --auth-file=<file>      require ASCII authentication: "user:pass" lines
  -Z, --enable-ssl            speak TLS on the -p listener; needs -o ssl_chain_cert=<file>,
                              ssl_key=<file> (or --tls-cert, --tls-key); optional
                              -o ssl_ca_cert=<file>, ssl_verify_mode=<n> (client
                              certificates: 0 none, 1 request, 2 require, 3 once),
                              ssl_ciphers=<list>, ssl_min_version=<n> (2: TLSv1.2)
      --tls-cert=<file>       the server certificate chain, PEM (= -o ssl_chain_cert)
      --tls-key=<file>        its private key, PEM (= -o ssl_key)
      --tls-ca=<file>         CA for client certificates (= -o ssl_ca_cert); given this
                              way, clients must present one (ssl_verify_mode=2) unless
                              -o ssl_verify_mode says otherwise
      --tls-port=<num>        a separate TLS listener on the -l address, next to the
                              plain -p one (-1 picks a free port); -Z is then optional
  -D <char>                   key prefix delimiter for "stats detail" (turns it on)
  -H, --data-dir=<dir>        keep items on disk (LMDB) in <dir>: they survive restarts and
                              crashes; memory serves as a cache over the disk
      --sync=<policy>         with --data-dir: always (reply after the write is on disk),
                              interval=<ms> (default interval=1000) or none
      --disk-limit=<size>     with --data-dir: tiered mode, the disk a bounded tier below
                              memory that drops its least recent items past <size> (k/m/g/t)
      --peer=<host:port>      replicate with the peer whose --replication-port that is
                              (repeat for each peer; every node lists every other)
      --replication-port=<num>  replication listener on the -l address (default: 11212 when
                              --peer is given; -1 or 0 picks a free port)
      --node-id=<id>          this node's name in versions (default: made up, kept in the
                              data dir when there is one)
      --replication-secret-file=<file>  shared secret peers must prove (HMAC) before any
                              data flows; without it only loopback peers are accepted
      --replication-insecure  accept peers from any address without a secret
      --peer-wait=<seconds>   how long a starting node looks for a serving peer to sync
                              from before it serves empty (default: 5)
      --sync-wait-timeout=<seconds>  client connections made while the node syncs from a
                              peer wait; after this long they get "SERVER_ERROR not ready"
                              and are closed (default: 0, wait until the sync is done)
      --anti-entropy-interval=<seconds>  how often each peer link compares digests of the
                              keys and versions and repairs differences (default: 5; 0: off)
  -d, --daemon                run in the background
  -P, --pidfile=<file>        write the process id to <file> (with or without -d)
      --log-file=<file>       append logs to <file> (where they go when detached)
      --log-format=<fmt>      auto (default: pretty lines when logging to a terminal,
                              JSON lines otherwise), json or pretty
      --metrics-port=<num>    HTTP: /metrics (Prometheus), /healthz, /readyz and a live
                              dashboard at /, on the -l address; 0 picks a free port
  -u, --user=<user>           switch to <user> after opening listeners (when run as root)
  -e, --memory-file=<file>    warm restart: a graceful stop (SIGUSR1, SIGTERM or
                              "shutdown graceful") saves the cache to <file> and
                              <file>.meta; the next start with the same -m, -I, -f, -n
                              and -C loads it (not with -H or --peer)
  -v, --verbose               log more: -v debug, -vv trace (default: lifecycle and warnings)
  -o, --extended=<opts>       comma-separated memcached suboptions; applied here:
                              idle_timeout=<s>, track_sizes, ssl_*, read_buf_mem_limit=<MB>
                              (replies a batch may stack, as memcached counts them),
                              watcher_logbuf_size=<KB> (each watcher's bound), the segmented
                              LRU's lru_maintainer, no_lru_maintainer, hot_lru_pct=<n>,
                              warm_lru_pct=<n>, hot_max_factor=<f>, warm_max_factor=<f>,
                              temporary_ttl=<s>, no_modern (flat LRU, whole-page chunks),
                              slab_reassign / no_slab_reassign (the "slabs reassign" page
                              mover, on by default), slab_automove=<0|1|2> (default 1:
                              pages move from classes with free memory to ones that evict;
                              2: every eviction pulls a page), slab_automove_ratio=<r>,
                              slab_automove_window=<runs>, slab_chunk_max=<bytes> (largest
                              chunk; larger items are chunked), no_chunked_items,
                              hashpower=<12..28> (starting hash table), lru_crawler,
                              no_lru_crawler, lru_crawler_sleep=<us>, lru_crawler_tocrawl=<n>
                              (the LRU crawler: on by default, off with no_modern)
  -W, --disable-watch         refuse the "watch" command (memcached's log stream)
  -L, --enable-largepages     give each slab class its first page at start (memcached's
                              preallocation: -m must hold them; cache_memlimit is refused)
  -f, -n                      slab classes: growth factor (1.25) and minimum item (48 bytes)
  -k, -r, -N                  memcached process tuning: accepted, no effect
      --test-clock            for tests: the command "debugtime <seconds>" moves the clock on
      --test-drop-changes=<fraction>  for tests: drop that fraction (0..1) of the changes
                              sent to peers, so that nodes diverge
  -h, --help                  print this help and exit
  -i, --license               print the license and exit
  -V, --version               print the version and exit

A listener on an address other than loopback without -S, -Y or TLS logs a warning.
`;

export type CliResult =
  | { kind: 'run'; config: Config }
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'license' };

/**
 * parseArgs reads "-p -1" as a flag followed by another flag; memcached's getopt
 * takes the negative number as the value. Glue such values to their flag.
 */
function normalise(argv: string[]): string[] {
  const valueFlags = new Set<string>();
  for (const [name, option] of Object.entries(OPTIONS)) {
    if (option.type !== 'string') continue;
    valueFlags.add(`--${name}`);
    if ('short' in option) valueFlags.add(`-${option.short}`);
  }
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    if (valueFlags.has(arg) && next !== undefined && /^-\d/.test(next)) {
      out.push(arg.startsWith('--') ? `${arg}=${next}` : `${arg}${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

export function flagName(name: OptionName): string {
  const option = OPTIONS[name];
  return 'short' in option ? `-${option.short}/--${name}` : `--${name}`;
}

function integer(name: OptionName, text: string, min: number, max: number): number {
  if (!/^[+-]?\d+$/.test(text)) throw new ConfigError(`${flagName(name)}: '${text}' is not a number`);
  const value = Number(text);
  if (value < min || value > max) throw new ConfigError(`${flagName(name)}: ${text} is out of range (${min}..${max})`);
  return value;
}

function decimal(name: OptionName, text: string, min: number): number {
  const value = Number(text);
  if (text === '' || !Number.isFinite(value) || value <= min) {
    throw new ConfigError(`${flagName(name)}: '${text}' must be a number above ${min}`);
  }
  return value;
}

function readable(name: OptionName, path: string): void {
  try {
    accessSync(path, constants.R_OK);
  } catch {
    throw new ConfigError(`${flagName(name)}: cannot read ${path}`);
  }
}

/**
 * -e: the file a graceful stop saves the slab memory to (and <file>.meta beside
 * it), in a directory that exists and can be written, so a stop does not find
 * out too late. Not with a data dir (that is the warm restart there: the two
 * would bring back two different caches) nor with replication (peers know the
 * items by versions a memory file does not keep).
 */
function memoryFile(path: string, config: Config): string {
  if (path === '') throw new ConfigError(`${flagName('memory-file')}: empty path`);
  if (config.dataDir !== null) {
    throw new ConfigError(`${flagName('memory-file')}: not with -H/--data-dir (the data dir is the warm restart there)`);
  }
  if (config.replicationPort !== null) {
    throw new ConfigError(`${flagName('memory-file')}: not with --peer or --replication-port (a replicating node restarts from its peers)`);
  }
  const directory = dirname(resolve(path));
  try {
    accessSync(directory, constants.W_OK);
  } catch {
    throw new ConfigError(`${flagName('memory-file')}: cannot write to the directory ${directory}`);
  }
  return path;
}

/** memcached's -I: bytes, or a number with a k or m unit. */
function size(name: OptionName, text: string): number {
  const match = /^(\d+)([kKmM]?)$/.exec(text);
  if (match === null) throw new ConfigError(`${flagName(name)}: '${text}' is not a size (e.g. 512k, 1m)`);
  const unit = match[2]!.toLowerCase();
  return Number(match[1]) * (unit === 'k' ? 1024 : unit === 'm' ? 1024 * 1024 : 1);
}

/** --disk-limit: bytes, or a number with a k, m, g or t unit. */
function diskSize(text: string): number {
  const match = /^(\d+)([kmgt]?)$/i.exec(text);
  if (match === null) throw new ConfigError(`${flagName('disk-limit')}: '${text}' is not a size (e.g. 512m, 10g)`);
  const bytes = Number(match[1]) * 1024 ** ' kmgt'.indexOf(match[2]!.toLowerCase() || ' ');
  if (bytes < 1024 * 1024) throw new ConfigError(`${flagName('disk-limit')}: cannot be less than 1m`);
  return bytes;
}

/**
 * memcached's -Z with its -o ssl_* suboptions, or the --tls-* long forms (which win
 * when both are given). Without -Z or --tls-port, ssl_* suboptions are accepted and
 * ignored, as memcached ignores them.
 */
function tlsConfig(
  config: Config,
  values: { enable: boolean; cert?: string | undefined; key?: string | undefined; ca?: string | undefined; port?: string | undefined },
): TlsConfig | null {
  if (!values.enable && values.port === undefined) {
    for (const [name, value] of [['tls-cert', values.cert], ['tls-key', values.key], ['tls-ca', values.ca]] as const) {
      if (value !== undefined) throw new ConfigError(`${flagName(name)}: only with -Z/--enable-ssl or --tls-port`);
    }
    return null;
  }
  const via = values.port !== undefined ? flagName('tls-port') : flagName('enable-ssl');
  if (config.unixSocket !== null) throw new ConfigError(`${via}: TLS needs a TCP listener, and -s/--unix-socket opens none`);
  const extended = config.extended;
  const file = (long: OptionName, value: string | undefined, suboption: string): { path: string; flag: string } | null => {
    if (value !== undefined) return { path: value, flag: flagName(long) };
    const path = extended.get(suboption);
    return path === undefined ? null : { path, flag: `-o ${suboption}` };
  };
  const cert = file('tls-cert', values.cert, 'ssl_chain_cert');
  const key = file('tls-key', values.key, 'ssl_key');
  const ca = file('tls-ca', values.ca, 'ssl_ca_cert');
  if (cert === null || key === null) {
    throw new ConfigError(`${via}: needs a certificate and its key: -o ssl_chain_cert=<file>,ssl_key=<file> or --tls-cert=<file> --tls-key=<file>`);
  }
  const mode = extended.has('ssl_verify_mode') ? Number(extended.get('ssl_verify_mode')) : values.ca !== undefined ? 2 : 0;
  if (mode > 3) {
    throw new ConfigError(`-o ssl_verify_mode: ${mode} is not 0 (none), 1 (request), 2 (require) or 3 (once)`);
  }
  const minVersion = Number(extended.get('ssl_min_version') ?? 2);
  if (minVersion > 3) throw new ConfigError(`-o ssl_min_version: ${minVersion} is not 0 (TLSv1) .. 3 (TLSv1.3)`);
  let port: number | null = null;
  if (values.port !== undefined) {
    port = Math.max(0, integer('tls-port', values.port, -1, 65535));
    if (port !== 0 && port === config.port) throw new ConfigError(`${flagName('tls-port')}: ${port} is the -p/--port listener's port`);
  }
  const tls: TlsConfig = {
    certFile: cert.path,
    keyFile: key.path,
    caFile: ca?.path ?? null,
    verifyMode: mode as TlsConfig['verifyMode'],
    port,
    ciphers: extended.get('ssl_ciphers') ?? null,
    minVersion: minVersion as TlsConfig['minVersion'],
  };
  checkTlsFiles(tls, { cert: cert.flag, key: key.flag, ca: ca?.flag ?? flagName('tls-ca') });
  return tls;
}

type ParsedValues = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; strict: true; allowPositionals: false }>>['values'];

/** --peer host:port, with [v6]:port. */
function peerAddress(text: string): ReplicationPeer {
  const match = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d+)$/.exec(text);
  if (match === null) throw new ConfigError(`${flagName('peer')}: '${text}' is not HOST:PORT`);
  const port = Number(match[3]);
  if (port < 1 || port > 65535) throw new ConfigError(`${flagName('peer')}: port ${match[3]} is out of range (1..65535)`);
  return { host: match[1] ?? match[2]!, port };
}

/** The replication flags (see src/replication/). */
function parseReplication(values: ParsedValues, config: Config): void {
  config.peers = (values.peer ?? []).map(peerAddress);
  if (values['replication-port'] !== undefined) {
    const port = integer('replication-port', values['replication-port'], -1, 65535);
    config.replicationPort = port === -1 ? 0 : port;
  } else if (config.peers.length > 0) {
    config.replicationPort = 11212;
  }
  const on = config.replicationPort !== null;
  const needsReplication = (name: OptionName): void => {
    if (!on) throw new ConfigError(`${flagName(name)}: only with --peer or --replication-port`);
  };
  if (values['node-id'] !== undefined) {
    needsReplication('node-id');
    if (!/^[A-Za-z0-9._:-]{1,64}$/.test(values['node-id'])) {
      throw new ConfigError(`${flagName('node-id')}: '${values['node-id']}' must be 1-64 letters, digits, '.', '_', ':' or '-'`);
    }
    config.nodeId = values['node-id'];
  }
  if (values['replication-secret-file'] !== undefined) {
    needsReplication('replication-secret-file');
    const file = values['replication-secret-file'];
    let secret: string;
    try {
      secret = readSecretFile(file, 'utf8').trim();
    } catch {
      throw new ConfigError(`${flagName('replication-secret-file')}: cannot read ${file}`);
    }
    if (secret.length < 8) throw new ConfigError(`${flagName('replication-secret-file')}: ${file} holds less than 8 characters`);
    config.replicationSecretFile = file;
  }
  if (values['replication-insecure']) {
    needsReplication('replication-insecure');
    config.replicationInsecure = true;
  }
  if (values['peer-wait'] !== undefined) {
    needsReplication('peer-wait');
    const text = values['peer-wait'];
    const seconds = Number(text);
    if (text === '' || !Number.isFinite(seconds) || seconds < 0 || seconds > 3600) {
      throw new ConfigError(`${flagName('peer-wait')}: '${text}' is not a number of seconds (0..3600)`);
    }
    config.peerWait = seconds;
  }
  const seconds = (name: OptionName, max: number): number | null => {
    const text = values[name] as string | undefined;
    if (text === undefined) return null;
    needsReplication(name);
    const value = Number(text);
    if (text === '' || !Number.isFinite(value) || value < 0 || value > max) {
      throw new ConfigError(`${flagName(name)}: '${text}' is not a number of seconds (0..${max})`);
    }
    return value;
  };
  config.antiEntropyInterval = seconds('anti-entropy-interval', 86400) ?? config.antiEntropyInterval;
  config.syncWaitTimeout = seconds('sync-wait-timeout', 86400) ?? config.syncWaitTimeout;
  if (values['test-drop-changes'] !== undefined) {
    needsReplication('test-drop-changes');
    const text = values['test-drop-changes'];
    const fraction = Number(text);
    if (text === '' || !Number.isFinite(fraction) || fraction < 0 || fraction > 1) {
      throw new ConfigError(`${flagName('test-drop-changes')}: '${text}' is not a fraction (0..1)`);
    }
    config.testDropChanges = fraction;
  }
  if (config.replicationSecretFile === null && !config.replicationInsecure) {
    for (const peer of config.peers) {
      if (!isLoopback(peer.host)) {
        throw new ConfigError(`${flagName('peer')}: ${peer.host} is not loopback; give --replication-secret-file (or --replication-insecure)`);
      }
    }
  }
}

export function parseCommandLine(argv: string[]): CliResult {
  let parsed;
  try {
    parsed = parseArgs({ args: normalise(argv), options: OPTIONS, strict: true, allowPositionals: false });
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
  const values = parsed.values;
  if (values.help) return { kind: 'help' };
  if (values.version) return { kind: 'version' };
  if (values.license) return { kind: 'license' };

  const config: Config = { ...DEFAULTS, extended: new Map(), lru: { ...DEFAULTS.lru } };
  if (values.port !== undefined) {
    const port = integer('port', values.port, -1, 65535);
    // -p 0: no TCP listener (memcached runs so, e.g. with only -U); -1: a free port.
    config.port = port === 0 ? null : port === -1 ? 0 : port;
  }
  if (values['disable-watch']) config.watchEnabled = false;
  if (values['udp-port'] !== undefined) {
    config.udpPort = integer('udp-port', values['udp-port'], -1, 65535);
    // As in memcached: -U without -p puts TCP on the UDP port too.
    if (values.port === undefined && config.udpPort !== 0) config.port = config.udpPort === -1 ? 0 : config.udpPort;
  }
  if (values['unix-socket'] !== undefined) {
    if (values['unix-socket'] === '') throw new ConfigError(`${flagName('unix-socket')}: empty path`);
    config.unixSocket = values['unix-socket'];
  }
  if (values['unix-mask'] !== undefined) {
    if (!/^[0-7]{1,4}$/.test(values['unix-mask'])) {
      throw new ConfigError(`${flagName('unix-mask')}: '${values['unix-mask']}' is not an octal mask`);
    }
    config.unixMask = parseInt(values['unix-mask'], 8);
  }
  if (values.listen !== undefined) {
    if (values.listen === '') throw new ConfigError(`${flagName('listen')}: empty address`);
    config.listen = values.listen;
  }
  if (values['listen-backlog'] !== undefined) config.backlog = integer('listen-backlog', values['listen-backlog'], 1, 65535);
  if (values['memory-limit'] !== undefined) {
    config.memoryLimit = integer('memory-limit', values['memory-limit'], 1, 1024 * 1024) * 1024 * 1024;
  }
  if (values['conn-limit'] !== undefined) config.connLimit = integer('conn-limit', values['conn-limit'], 1, 1_000_000);
  if (values.threads !== undefined) config.threads = integer('threads', values.threads, 1, 1024);
  if (values['max-reqs-per-event'] !== undefined) {
    config.reqsPerEvent = integer('max-reqs-per-event', values['max-reqs-per-event'], 1, 1_000_000);
  }
  if (values['disable-evictions']) config.evictions = false;
  if (values['disable-cas']) config.casEnabled = false;
  if (values['disable-flush-all']) config.flushEnabled = false;
  if (values['enable-shutdown']) config.shutdownEnabled = true;
  if (values['disable-dumping']) config.dumpingEnabled = false;
  if (values.protocol !== undefined) {
    const protocol = values.protocol;
    if (protocol !== 'auto' && protocol !== 'ascii' && protocol !== 'binary') {
      throw new ConfigError(`${flagName('protocol')}: '${protocol}' is not one of ascii, binary, auto`);
    }
    config.protocol = protocol;
  }
  if (values['enable-sasl']) {
    // memcached: SASL works over the binary protocol only.
    if (config.protocol === 'ascii') {
      throw new ConfigError(`${flagName('enable-sasl')}: cannot allow the ASCII protocol (-B ascii) while using SASL`);
    }
    config.saslEnabled = true;
    config.protocol = 'binary';
    config.saslPasswordFile = values['sasl-pwdb'] ?? process.env.MEMCACHED_SASL_PWDB ?? null;
    if (config.saslPasswordFile === null) {
      throw new ConfigError(`${flagName('enable-sasl')}: needs --sasl-pwdb=<file> or MEMCACHED_SASL_PWDB`);
    }
    readable('sasl-pwdb', config.saslPasswordFile);
  } else if (values['sasl-pwdb'] !== undefined) {
    throw new ConfigError(`${flagName('sasl-pwdb')}: only with -S/--enable-sasl`);
  }
  if (values['auth-file'] !== undefined) {
    readable('auth-file', values['auth-file']);
    config.authFile = values['auth-file'];
  }
  if (values['prefix-delimiter'] !== undefined) {
    if (values['prefix-delimiter'].length !== 1) {
      throw new ConfigError(`${flagName('prefix-delimiter')}: '${values['prefix-delimiter']}' is not one character`);
    }
    config.prefixDelimiter = values['prefix-delimiter'];
    config.detailEnabled = true;
  }
  if (values['slab-growth-factor'] !== undefined) {
    config.slabGrowthFactor = decimal('slab-growth-factor', values['slab-growth-factor'], 1);
  }
  if (values['slab-min-size'] !== undefined) config.slabMinSize = integer('slab-min-size', values['slab-min-size'], 1, 1 << 20);
  if (values['napi_ids'] !== undefined) config.napiIds = integer('napi_ids', values['napi_ids'], 1, 1024);
  config.daemon = values.daemon === true;
  config.testClock = values['test-clock'] === true;
  if (values['metrics-port'] !== undefined) config.metricsPort = integer('metrics-port', values['metrics-port'], 0, 65535);
  if (values['data-dir'] !== undefined) {
    if (values['data-dir'] === '') throw new ConfigError(`${flagName('data-dir')}: empty path`);
    config.dataDir = values['data-dir'];
  }
  if (values.sync !== undefined) {
    const text = values.sync;
    const interval = /^interval=(\d+)$/.exec(text);
    if (text === 'always' || text === 'none') config.sync = { kind: text };
    else if (interval !== null && Number(interval[1]) > 0) config.sync = { kind: 'interval', ms: Number(interval[1]) };
    else throw new ConfigError(`${flagName('sync')}: '${text}' is not always, interval=<ms> or none`);
    if (config.dataDir === null) throw new ConfigError(`${flagName('sync')}: only with -H/--data-dir`);
  }
  if (values['disk-limit'] !== undefined) {
    if (config.dataDir === null) throw new ConfigError(`${flagName('disk-limit')}: only with -H/--data-dir`);
    config.diskLimit = diskSize(values['disk-limit']);
  }
  parseReplication(values, config);
  if (values['log-format'] !== undefined) {
    const format = values['log-format'];
    if (format !== 'auto' && format !== 'json' && format !== 'pretty') {
      throw new ConfigError(`${flagName('log-format')}: '${format}' is not auto, json or pretty`);
    }
    config.logFormat = format;
  }
  config.pidFile = values.pidfile ?? null;
  config.logFile = values['log-file'] ?? null;
  config.user = values.user ?? null;
  if (config.user !== null) lookupUser(config.user);
  if (values['memory-file'] !== undefined) config.memoryFile = memoryFile(values['memory-file'], config);
  config.verbosity = Math.min(values.verbose?.length ?? 0, 3);

  if (values['max-item-size'] !== undefined) {
    const itemSize = size('max-item-size', values['max-item-size']);
    if (itemSize < 1024) throw new ConfigError(`${flagName('max-item-size')}: cannot be less than 1024 bytes`);
    if (itemSize > 1024 * 1024 * 1024) throw new ConfigError(`${flagName('max-item-size')}: cannot be more than 1 GB`);
    config.maxItemSize = itemSize;
  }
  if (config.maxItemSize > config.memoryLimit / 2) {
    throw new ConfigError(`${flagName('max-item-size')}: cannot be more than half of -m/--memory-limit`);
  }

  for (const list of values.extended ?? []) {
    for (const suboption of list.split(',')) {
      if (suboption === '') continue;
      applyExtendedOption(config, suboption);
    }
  }
  checkExtendedOptions(config);
  settleSlabSettings(config, values['enable-largepages'] === true);
  config.tls = tlsConfig(config, {
    enable: values['enable-ssl'] === true,
    cert: values['tls-cert'],
    key: values['tls-key'],
    ca: values['tls-ca'],
    port: values['tls-port'],
  });
  return { kind: 'run', config };
}
