import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

/**
 * memcached's -v count as a log level. Without -v, lifecycle events (loading a
 * data dir with its progress, shutting down) and warnings; -v debug, -vv trace.
 */
export function levelForVerbosity(verbosity: number): string {
  return ['info', 'debug', 'trace'][Math.max(0, Math.min(verbosity, 2))]!;
}

/**
 * Logs to --log-file, or to stderr so stdout stays free for what a command
 * prints. JSON lines by default; --log-format pretty for people reading along.
 */
export function createLogger(verbosity: number, logFile: string | null = null, format: 'json' | 'pretty' = 'json'): Logger {
  const options = { name: 'mnemo', level: levelForVerbosity(verbosity) };
  if (format === 'pretty') {
    return pino(options, pretty({ destination: logFile ?? 2, sync: true, append: true, mkdir: logFile !== null }));
  }
  return pino(options, pino.destination({ dest: logFile ?? 2, sync: true, append: true, mkdir: logFile !== null }));
}
