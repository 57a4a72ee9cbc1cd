import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { connectClient } from './client.js';

/*
 * Ports for servers whose port must be known before they start (memcached, peers that
 * name each other). They come from below Linux's ephemeral range (32768-60999), so no
 * connection's source port and no listen(0) elsewhere in the suite can take one between
 * the check here and the server's bind; a process never hands out the same port twice.
 */
const FIXED_PORT_LOW = 20000;
const FIXED_PORT_HIGH = 32767;
const handedOut = new Set<number>();

/** A port that is free now, outside the ephemeral range, not given out before by this process. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = FIXED_PORT_LOW + Math.floor(Math.random() * (FIXED_PORT_HIGH - FIXED_PORT_LOW + 1));
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port between ${FIXED_PORT_LOW} and ${FIXED_PORT_HIGH} in 100 tries`);
}

async function canListen(port: number): Promise<boolean> {
  const server = createServer();
  try {
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
  } catch {
    return false; // once() rejects with the 'error' event: taken
  }
  server.close();
  await once(server, 'close');
  return true;
}

/** Starts Debian's memcached, the reference implementation, on a free loopback port. */
export async function startMemcached(args: string[] = []): Promise<{ port: number; stop(): Promise<void> }> {
  const port = await freePort();
  const child = spawn('memcached', ['-u', 'root', '-l', '127.0.0.1', '-p', String(port), '-U', '0', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const deadline = Date.now() + 5000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`memcached exited: ${stderr}`);
    try {
      const client = await connectClient(port);
      client.close();
      break;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  return {
    port,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}
