import { HELP, parseCommandLine } from './cli.js';
import { ConfigError } from './config.js';
import { createLogger } from './log.js';
import { MnemoServer } from './server.js';
import { MNEMO_VERSION } from './version.js';

/** Exit code for a bad command line, as the issue tracker and operators expect. */
const EXIT_USAGE = 2;

async function main(argv: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseCommandLine(argv);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`mnemo: ${error.message}\n`);
    process.exit(EXIT_USAGE);
  }
  if (parsed.kind === 'help') {
    process.stdout.write(HELP);
    return;
  }
  if (parsed.kind === 'version') {
    process.stdout.write(`mnemo ${MNEMO_VERSION}\n`);
    return;
  }
  const { config } = parsed;
  const log = createLogger(config.verbosity);
  if (config.udpPort !== 0) log.warn({ udpPort: config.udpPort }, 'UDP is not served yet; -U is ignored');
  if (config.user !== null) log.info({ user: config.user }, '-u accepted; privileges are not dropped yet');

  const server = new MnemoServer(config, log);
  let address;
  try {
    address = await server.listen();
  } catch (error) {
    process.stderr.write(`mnemo: cannot listen on ${config.listen}:${config.port}: ${(error as Error).message}\n`);
    process.exit(EXIT_USAGE);
  }
  process.stderr.write(`mnemo ${MNEMO_VERSION} listening on tcp ${address.address}:${address.port}\n`);

  const stop = (signal: string): void => {
    log.info({ signal }, 'shutting down');
    void server.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

await main(process.argv.slice(2));
