import { pino, type Logger } from 'pino';

/** memcached's -v count as a log level: quiet shows warnings, -v info, -vv debug, -vvv trace. */
export function levelForVerbosity(verbosity: number): string {
  return ['warn', 'info', 'debug', 'trace'][Math.max(0, Math.min(verbosity, 3))]!;
}

/** JSON logs to --log-file, or to stderr so stdout stays free for what a command prints. */
export function createLogger(verbosity: number, logFile: string | null = null): Logger {
  const destination = pino.destination({ dest: logFile ?? 2, sync: true, append: true, mkdir: logFile !== null });
  return pino({ name: 'mnemo', level: levelForVerbosity(verbosity) }, destination);
}
