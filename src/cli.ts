import { parseArgs } from 'node:util';
import { ConfigError, DEFAULTS, type Config } from './config.js';

/**
 * memcached's command line, parsed by node:util parseArgs. Short and long names
 * are memcached's own (memcached -h), so existing start scripts work unchanged.
 */
const OPTIONS = {
  port: { type: 'string', short: 'p' },
  'udp-port': { type: 'string', short: 'U' },
  listen: { type: 'string', short: 'l' },
  'memory-limit': { type: 'string', short: 'm' },
  'conn-limit': { type: 'string', short: 'c' },
  'max-item-size': { type: 'string', short: 'I' },
  'disable-evictions': { type: 'boolean', short: 'M' },
  threads: { type: 'string', short: 't' },
  user: { type: 'string', short: 'u' },
  extended: { type: 'string', short: 'o', multiple: true },
  verbose: { type: 'boolean', short: 'v', multiple: true },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
  // memcached flags whose features Mnemo does not have yet: known, so they get a clear message.
  'unix-socket': { type: 'string', short: 's' },
  'unix-mask': { type: 'string', short: 'a' },
  'enable-shutdown': { type: 'boolean', short: 'A' },
  daemon: { type: 'boolean', short: 'd' },
  'enable-coredumps': { type: 'boolean', short: 'r' },
  'lock-memory': { type: 'boolean', short: 'k' },
  license: { type: 'boolean', short: 'i' },
  pidfile: { type: 'string', short: 'P' },
  'slab-growth-factor': { type: 'string', short: 'f' },
  'slab-min-size': { type: 'string', short: 'n' },
  'enable-largepages': { type: 'boolean', short: 'L' },
  'prefix-delimiter': { type: 'string', short: 'D' },
  'max-reqs-per-event': { type: 'string', short: 'R' },
  'disable-cas': { type: 'boolean', short: 'C' },
  'listen-backlog': { type: 'string', short: 'b' },
  protocol: { type: 'string', short: 'B' },
  'enable-sasl': { type: 'boolean', short: 'S' },
  'disable-flush-all': { type: 'boolean', short: 'F' },
  'disable-dumping': { type: 'boolean', short: 'X' },
  'disable-watch': { type: 'boolean', short: 'W' },
  'auth-file': { type: 'string', short: 'Y' },
  'memory-file': { type: 'string', short: 'e' },
  napi_ids: { type: 'string', short: 'N' },
  'enable-ssl': { type: 'boolean', short: 'Z' },
} as const;

type OptionName = keyof typeof OPTIONS;

const NOT_YET: OptionName[] = [
  'unix-socket', 'unix-mask', 'enable-shutdown', 'daemon', 'enable-coredumps', 'lock-memory', 'license',
  'pidfile', 'slab-growth-factor', 'slab-min-size', 'enable-largepages', 'prefix-delimiter',
  'max-reqs-per-event', 'disable-cas', 'listen-backlog', 'protocol', 'enable-sasl', 'disable-flush-all',
  'disable-dumping', 'disable-watch', 'auth-file', 'memory-file', 'napi_ids', 'enable-ssl',
];

/** -o suboptions that are accepted today. */
const EXTENDED_ACCEPTED = new Set(['relaxed_privileges']);

export const HELP = `Usage: mnemo [options]
A memcached-compatible cache server. Flags use memcached's names and meanings.

  -p, --port=<num>            TCP port to listen on (default: 11211; -1 picks a free port)
  -l, --listen=<addr>         interface to listen on (default: 127.0.0.1)
  -m, --memory-limit=<num>    item memory in megabytes (default: 64)
  -c, --conn-limit=<num>      max simultaneous connections (default: 1024)
  -I, --max-item-size=<num>   largest item, with k/m units (default: 1m; at most half of -m)
  -M, --disable-evictions     return an error when memory is full instead of evicting
  -t, --threads=<num>         accepted for compatibility and shown in stats (default: 4)
  -v, --verbose               log more: -v info, -vv debug, -vvv trace
  -U, --udp-port=<num>        accepted; UDP is not served yet
  -u, --user=<user>           accepted; privileges are not dropped yet
  -o, --extended=<opts>       accepted: relaxed_privileges
  -h, --help                  print this help and exit
  -V, --version               print the version and exit

Other memcached flags (-s -a -A -d -P -C -B -F -S -Y -e -R -b -X -Z ...) exit with
"not supported yet" until their feature lands.
`;

export type CliResult =
  | { kind: 'run'; config: Config }
  | { kind: 'help' }
  | { kind: 'version' };

/**
 * parseArgs reads "-p -1" as a flag followed by another flag; memcached's getopt
 * takes the negative number as the value. Glue such values to their flag.
 */
function normalise(argv: string[]): string[] {
  const valueFlags = new Set<string>();
  for (const [name, option] of Object.entries(OPTIONS)) {
    if (option.type === 'string') {
      valueFlags.add(`--${name}`);
      valueFlags.add(`-${option.short}`);
    }
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

function flagName(name: OptionName): string {
  return `-${OPTIONS[name].short}/--${name}`;
}

function integer(name: OptionName, text: string, min: number, max: number): number {
  if (!/^[+-]?\d+$/.test(text)) throw new ConfigError(`${flagName(name)}: '${text}' is not a number`);
  const value = Number(text);
  if (value < min || value > max) throw new ConfigError(`${flagName(name)}: ${text} is out of range (${min}..${max})`);
  return value;
}

/** memcached's -I: bytes, or a number with a k or m unit. */
function size(name: OptionName, text: string): number {
  const match = /^(\d+)([kKmM]?)$/.exec(text);
  if (match === null) throw new ConfigError(`${flagName(name)}: '${text}' is not a size (e.g. 512k, 1m)`);
  const unit = match[2]!.toLowerCase();
  return Number(match[1]) * (unit === 'k' ? 1024 : unit === 'm' ? 1024 * 1024 : 1);
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

  for (const name of NOT_YET) {
    if (values[name] !== undefined) throw new ConfigError(`not supported yet: ${flagName(name)}`);
  }

  const config: Config = { ...DEFAULTS };
  if (values.port !== undefined) {
    const port = integer('port', values.port, -1, 65535);
    if (port === 0) throw new ConfigError(`${flagName('port')}: 0 (no TCP listener) is not supported yet`);
    config.port = port === -1 ? 0 : port;
  }
  if (values['udp-port'] !== undefined) config.udpPort = integer('udp-port', values['udp-port'], 0, 65535);
  if (values.listen !== undefined) {
    if (values.listen === '') throw new ConfigError(`${flagName('listen')}: empty address`);
    config.listen = values.listen;
  }
  if (values['memory-limit'] !== undefined) {
    config.memoryLimit = integer('memory-limit', values['memory-limit'], 1, 1024 * 1024) * 1024 * 1024;
  }
  if (values['conn-limit'] !== undefined) config.connLimit = integer('conn-limit', values['conn-limit'], 1, 1_000_000);
  if (values.threads !== undefined) config.threads = integer('threads', values.threads, 1, 1024);
  if (values['disable-evictions']) config.evictions = false;
  if (values.user !== undefined) config.user = values.user;
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
      const key = suboption.split('=')[0]!;
      if (key === '') continue;
      if (!EXTENDED_ACCEPTED.has(key)) throw new ConfigError(`not supported yet: -o ${suboption}`);
    }
  }
  return { kind: 'run', config };
}
