import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { connectClient, type RawClient } from './client.js';

export const MNEMO_BIN = fileURLToPath(new URL('../../bin/mnemo', import.meta.url));

export interface RunningServer {
  /** The TCP port, or 0 when the server listens on a unix socket only. */
  port: number;
  /** The UDP port from the ready line, or 0. */
  udpPort: number;
  process: ChildProcess;
  /** Everything the server wrote to stderr so far. */
  stderr(): string;
  stop(): Promise<void>;
}

const READY = /listening on (.*)\n/;

/**
 * Starts bin/mnemo on a free port (-p -1) and resolves once its ready line names
 * the listeners. env adds variables to the server's environment.
 */
export async function startMnemo(args: string[] = [], env: Record<string, string> = {}): Promise<RunningServer> {
  const child = spawn(process.execPath, [MNEMO_BIN, '-p', '-1', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stderr = '';
  const listeners = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`mnemo did not start: ${stderr}`)), 10_000);
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const match = READY.exec(stderr);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`mnemo exited with ${code}: ${stderr}`));
    });
  });
  const portOf = (transport: string): number => Number(new RegExp(`${transport} [^\\s,]+:(\\d+)`).exec(listeners)?.[1] ?? 0);
  return {
    port: portOf('tcp'),
    udpPort: portOf('udp'),
    process: child,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

/** Runs bin/mnemo to completion (for flags that exit at once) and returns what it printed. */
export async function runMnemo(args: string[], timeoutMs = 5000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [MNEMO_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** Starts Mnemo with args, runs body with a connected client, and stops both whatever happens. */
export async function withServer(args: string[], body: (client: RawClient, port: number) => Promise<void>): Promise<void> {
  const server = await startMnemo(args);
  const client = await connectClient(server.port);
  try {
    await body(client, server.port);
  } finally {
    client.close();
    await server.stop();
  }
}
