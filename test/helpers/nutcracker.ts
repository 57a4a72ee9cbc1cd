import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './memcached.js';

/** Debian installs it under sbin, which a non-root PATH may lack. */
export const NUTCRACKER_BIN = existsSync('/usr/sbin/nutcracker') ? '/usr/sbin/nutcracker' : 'nutcracker';

export interface NutcrackerPool {
  name: string;
  /** twemproxy server lines: "127.0.0.1:port:weight [name]". */
  servers: string[];
  autoEject?: boolean;
  failureLimit?: number;
  retryTimeoutMs?: number;
  /** twemproxy's timeout for a backend's reply; none (wait forever) when left out. */
  timeoutMs?: number;
}

export interface RunningNutcracker {
  /** Each pool's listening port, by pool name. */
  ports: Record<string, number>;
  statsPort: number;
  process: ChildProcess;
  /** The stats JSON (twemproxy aggregates it every 100 ms here). */
  stats(): Promise<Record<string, unknown>>;
  /** Everything nutcracker logged so far. */
  log(): string;
  stop(): Promise<void>;
}

async function canConnect(port: number): Promise<boolean> {
  const socket = connect({ host: '127.0.0.1', port });
  try {
    await once(socket, 'connect');
    return true;
  } catch {
    return false;
  } finally {
    socket.destroy();
  }
}

export function nutcrackerConfig(pools: NutcrackerPool[], ports: Record<string, number>): string {
  return pools
    .map((pool) =>
      [
        `${pool.name}:`,
        `  listen: 127.0.0.1:${ports[pool.name]}`,
        '  hash: md5',
        '  distribution: ketama',
        `  auto_eject_hosts: ${pool.autoEject ?? false}`,
        `  server_failure_limit: ${pool.failureLimit ?? 2}`,
        `  server_retry_timeout: ${pool.retryTimeoutMs ?? 30000}`,
        ...(pool.timeoutMs === undefined ? [] : [`  timeout: ${pool.timeoutMs}`]),
        '  servers:',
        ...pool.servers.map((server) => `   - ${server}`),
      ].join('\n'),
    )
    .join('\n');
}

/**
 * Starts nutcracker in the foreground (so the test owns its PID) with the given pools
 * on free ports, its stats on a free 127.0.0.1 port, and resolves once every pool
 * accepts connections.
 */
export async function startNutcracker(pools: NutcrackerPool[]): Promise<RunningNutcracker> {
  const dir = await mkdtemp(join(tmpdir(), 'mnemo-nutcracker-'));
  const ports: Record<string, number> = {};
  for (const pool of pools) ports[pool.name] = await freePort();
  const statsPort = await freePort();
  const configFile = join(dir, 'nutcracker.yml');
  await writeFile(configFile, nutcrackerConfig(pools, ports));
  const child = spawn(NUTCRACKER_BIN, ['-c', configFile, '-s', String(statsPort), '-a', '127.0.0.1', '-i', '100'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-64 * 1024);
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 5000;
  for (const pool of pools) {
    while (!(await canConnect(ports[pool.name]!))) {
      if (child.exitCode !== null || Date.now() > deadline) {
        await stop();
        throw new Error(`nutcracker did not start: ${log}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  return {
    ports,
    statsPort,
    process: child,
    log: () => log,
    async stats() {
      const socket = connect({ host: '127.0.0.1', port: statsPort });
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      await once(socket, 'end');
      socket.destroy();
      return JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>;
    },
    stop,
  };
}
