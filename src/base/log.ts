import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import type { PrettyOptions } from 'pino-pretty';

/**
 * memcached's -v count as a log level. Without -v, lifecycle events (loading a
 * data dir with its progress, shutting down) and warnings; -v debug, -vv trace.
 */
export function levelForVerbosity(verbosity: number): string {
  return ['info', 'debug', 'trace'][Math.max(0, Math.min(verbosity, 2))]!;
}

/**
 * Logs to --log-file, or to stderr so stdout stays free for what a command
 * prints. --log-format auto (the default) writes readable lines when they go to a
 * terminal and JSON lines otherwise (a file, a pipe, journald); json and pretty
 * force one. pino-pretty is loaded only when lines are pretty.
 */
export function createLogger(verbosity: number, logFile: string | null = null, format: 'auto' | 'json' | 'pretty' = 'auto'): Logger {
  const options = { name: 'mnemo', level: levelForVerbosity(verbosity) };
  const terminal = logFile === null && process.stderr.isTTY === true;
  if (format === 'pretty' || (format === 'auto' && terminal)) {
    const pretty = createRequire(import.meta.url)('pino-pretty') as (options: PrettyOptions) => NodeJS.WritableStream;
    return pino(options, pretty({
      destination: logFile ?? 2, sync: true, append: true, mkdir: logFile !== null,
      colorize: terminal, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,name',
    }) as Parameters<typeof pino>[1]);
  }
  return pino(options, pino.destination({ dest: logFile ?? 2, sync: true, append: true, mkdir: logFile !== null }));
}
