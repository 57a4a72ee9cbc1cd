import { spawn } from 'node:child_process';
import { openSync } from 'node:fs';

/** Set in the detached child so it does not detach again. */
const CHILD_MARK = 'MNEMO_DAEMON_CHILD';

/** What the daemon child tells its parent over IPC once it knows how start-up went. */
export type DaemonReport = { ready: string } | { error: string };

export function isDaemonChild(): boolean {
  return process.env[CHILD_MARK] === '1';
}

/**
 * -d: Node cannot fork, so the process starts a detached copy of itself and waits
 * until that copy is listening (exit 0) or reports why it is not (exit 2). The
 * child's output goes to --log-file, or nowhere.
 */
export async function detach(logFile: string | null): Promise<number> {
  const output = logFile === null ? 'ignore' : openSync(logFile, 'a');
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...process.argv.slice(2)], {
    detached: true,
    stdio: ['ignore', output, output, 'ipc'],
    env: { ...process.env, [CHILD_MARK]: '1' },
  });
  const report = await new Promise<DaemonReport>((resolve) => {
    child.once('message', (message) => resolve(message as DaemonReport));
    child.once('exit', (code) => resolve({ error: `daemon exited with code ${code} before it was ready` }));
    child.once('error', (error) => resolve({ error: error.message }));
  });
  child.removeAllListeners();
  if (child.connected) child.disconnect();
  child.unref();
  if ('ready' in report) {
    process.stderr.write(`${report.ready} (daemon pid ${child.pid})\n`);
    return 0;
  }
  process.stderr.write(`mnemo: ${report.error}\n`);
  return 2;
}

/** In the daemon child: tells the waiting parent how start-up went, then lets it go. */
export function reportToParent(report: DaemonReport): void {
  if (!process.send) return;
  process.send(report, () => process.disconnect?.());
}
