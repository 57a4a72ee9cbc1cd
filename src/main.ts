import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { HELP, parseCommandLine } from './config/cli.js';
import { ConfigError, type Config } from './config/config.js';
import { detach, isDaemonChild, reportToParent } from './server/daemon.js';
import { createLogger } from './base/log.js';
import { dropPrivileges } from './server/privileges.js';
import { MnemoServer, type ListenerAddress } from './server/server.js';
import { isLoopback } from './base/loopback.js';
import { MNEMO_VERSION } from './base/version.js';
import { MemoryFileCorrupt } from './store/slabs/memory-file.js';

/** Exit code for a bad command line or a server that cannot start. */
const EXIT_USAGE = 2;

function fail(message: string): never {
  if (isDaemonChild()) reportToParent({ error: message });
  process.stderr.write(`mnemo: ${message}\n`);
  process.exit(EXIT_USAGE);
}

/** memcached's MEMCACHED_PORT_FILENAME: the real ports, written to a .lck file and renamed into place. */
function writePortFile(path: string, addresses: ListenerAddress[]): void {
  let text = '';
  // -Z alone makes the -p listener speak TLS: tools still look for it as TCP.
  const tlsIsTcp = !addresses.some((a) => a.transport === 'tcp');
  for (const { transport, address, port } of addresses) {
    if (transport === 'unix') continue;
    text += `${transport === 'tls' && tlsIsTcp ? 'TCP' : transport.toUpperCase()} ${address.startsWith('[') || address.split(':').length > 2 ? 'INET6' : 'INET'}: ${port}\n`;
  }
  writeFileSync(`${path}.lck`, text);
  renameSync(`${path}.lck`, path);
}

/**
 * Safe defaults: Mnemo listens on loopback unless -l says otherwise. A plain-text
 * listener others can reach, with neither SASL nor ASCII authentication, gets one
 * warning at start-up.
 */
function warnIfExposed(config: Config, addresses: ListenerAddress[], log: Logger): void {
  if (config.saslEnabled || config.authFile !== null) return;
  const exposed = addresses
    .filter((a) => (a.transport === 'tcp' || a.transport === 'udp') && !isLoopback(a.address.slice(0, a.address.lastIndexOf(':'))))
    .map((a) => `${a.transport} ${a.address}`);
  if (exposed.length === 0) return;
  log.warn(
    { listeners: exposed },
    'listening on a non-loopback address without authentication or TLS: anyone who can reach it can read and change the cache (see -S, -Y, -Z/--tls-port, or -l 127.0.0.1)',
  );
}

/**
 * For every failed commit (a full disk), lmdb also rejects an internal promise
 * that nothing can attach a handler to; the write's own promise reports the
 * failure (store/commit-tracker.ts). That stray rejection must not take the
 * server down; every other unhandled rejection still does.
 */
function ignoreStrayCommitRejections(): void {
  process.on('unhandledRejection', (reason) => {
    if (reason instanceof Error && reason.message.startsWith('Commit failed (see commitError')) return;
    throw reason;
  });
}

async function serve(config: Config): Promise<void> {
  ignoreStrayCommitRejections();
  const log = createLogger(config.verbosity, config.logFile, config.logFormat);
  let server: MnemoServer;
  try {
    server = new MnemoServer(config, log);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    fail(error.message);
  }
  // prom-client and the dashboard are loaded only with --metrics-port (a few MB of a plain start's RSS).
  const observability = config.metricsPort === null ? null : new (await import('./observe/http.js')).ObservabilityServer(server);
  let stopping = false;
  /** save: with -e, the cache goes to the memory file once every connection is closed. */
  const stop = (reason: string, graceful = true, save = false): void => {
    if (stopping) return;
    stopping = true;
    log.info({ reason }, 'shutting down');
    void Promise.all([server.close(graceful), observability?.close()])
      .catch((error: unknown) => log.error({ err: error }, 'error while shutting down'))
      .then(() => {
        if (save) server.saveMemoryFile();
        if (config.pidFile !== null) rmSync(config.pidFile, { force: true });
        if (config.unixSocket !== null) rmSync(config.unixSocket, { force: true });
        process.exit(0);
      });
  };
  // As memcached's: SIGUSR1 and `shutdown graceful` stop gracefully and save the memory file (-e);
  // SIGINT and `shutdown` do not save. SIGTERM saves too (service managers stop with it).
  server.onShutdownRequest = (graceful) => stop(graceful ? 'shutdown graceful command' : 'shutdown command', graceful, graceful);
  process.once('SIGTERM', () => stop('SIGTERM', true, true));
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGUSR1', () => {
    log.info('Gracefully stopping');
    stop('SIGUSR1', true, true);
  });

  if (observability !== null) {
    try {
      const http = await observability.listen(config.listen, config.metricsPort!);
      process.stderr.write(`mnemo metrics on http://${http.address}:${http.port}\n`);
    } catch (error) {
      fail(`cannot listen on ${config.listen}:${config.metricsPort} for --metrics-port: ${(error as Error).message}`);
    }
  }
  // /readyz says not ready until the data dir (or memory file) is loaded and the listeners are open.
  try {
    await server.load();
  } catch (error) {
    if (!(error instanceof MemoryFileCorrupt)) throw error;
    fail(`-e/--memory-file: ${error.message}`);
  }
  // With peers: the replication listener opens and the join (a full sync from a
  // serving peer) starts; listen() opens the client listeners but holds their
  // connections until it is done (--sync-wait-timeout), and resolves after it.
  let replication: string | null = null;
  try {
    replication = await server.replicate();
  } catch (error) {
    fail(`cannot listen on ${config.listen}:${config.replicationPort} for --replication-port: ${(error as Error).message}`);
  }

  let addresses: ListenerAddress[];
  try {
    addresses = await server.listen();
    server.replication?.markServing();
  } catch (error) {
    const where = config.unixSocket ?? `${config.listen}:${config.port}`;
    fail(`cannot listen on ${where}: ${(error as Error).message}`);
  }
  // -p 0 without -U: nothing listens, yet memcached runs on until it is stopped; so does Mnemo.
  if (addresses.length === 0) setInterval(() => {}, 3_600_000);
  warnIfExposed(config, addresses, log);
  const portFile = process.env.MEMCACHED_PORT_FILENAME;
  if (portFile) writePortFile(portFile, addresses);
  if (config.pidFile !== null) writeFileSync(config.pidFile, `${process.pid}\n`);
  if (config.user !== null) {
    try {
      if (dropPrivileges(config.user, config.pidFile === null ? [] : [config.pidFile])) {
        log.info({ user: config.user }, 'switched user');
      }
    } catch (error) {
      fail((error as Error).message);
    }
  }

  const ready = `mnemo ${MNEMO_VERSION} listening on ${addresses.map((a) => `${a.transport} ${a.address}`).join(', ')}`;
  process.stderr.write(`${ready}\n`);
  if (replication !== null) process.stderr.write(`mnemo replication on ${replication}\n`);
  if (isDaemonChild()) reportToParent({ ready });

}

async function main(argv: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseCommandLine(argv);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    fail(error.message);
  }
  switch (parsed.kind) {
    case 'help':
      process.stdout.write(HELP);
      return;
    case 'version':
      process.stdout.write(`mnemo ${MNEMO_VERSION}\n`);
      return;
    case 'license':
      process.stdout.write(readFileSync(new URL('../LICENSE', import.meta.url), 'utf8'));
      return;
    case 'run':
      if (parsed.config.daemon && !isDaemonChild()) process.exit(await detach(parsed.config.logFile));
      await serve(parsed.config);
  }
}

await main(process.argv.slice(2));
