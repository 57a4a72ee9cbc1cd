import { pino, type Logger } from 'pino';

/** memcached's -v count as a log level: quiet shows warnings, -v info, -vv debug, -vvv trace. */
export function levelForVerbosity(verbosity: number): string {
  return ['warn', 'info', 'debug', 'trace'][Math.max(0, Math.min(verbosity, 3))]!;
}

/** JSON logs on stderr, so stdout stays free for what a command prints (help, version). */
export function createLogger(verbosity: number): Logger {
  return pino({ name: 'mnemo', level: levelForVerbosity(verbosity) }, pino.destination({ dest: 2, sync: true }));
}
