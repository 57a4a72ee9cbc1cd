import { once } from 'node:events';
import { connect, type Socket } from 'node:net';

/**
 * A raw protocol client: sends exact bytes and reads exact bytes, so tests see
 * what a memcached client library would see on the wire.
 */
export class RawClient {
  private received = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  closed = false;

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    socket.on('error', () => {});
  }

  send(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Waits until the bytes received so far satisfy done, or the socket closes; returns and clears them. */
  async readUntil(done: (received: Buffer) => boolean, timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (!done(this.received) && !this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; got ${JSON.stringify(this.received.toString('latin1'))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = null;
    }
    const out = this.received;
    this.received = Buffer.alloc(0);
    return out;
  }

  /** Reads until the reply ends with the given text. */
  async readUntilEnds(suffix: string, timeoutMs?: number): Promise<string> {
    const tail = Buffer.from(suffix, 'latin1');
    const bytes = await this.readUntil((got) => got.length >= tail.length && got.subarray(got.length - tail.length).equals(tail), timeoutMs);
    return bytes.toString('latin1');
  }

  /** Sends a request and reads until its reply ends with the given text. */
  async request(data: string | Buffer, until = '\r\n', timeoutMs?: number): Promise<string> {
    this.send(data);
    return this.readUntilEnds(until, timeoutMs);
  }

  /** Waits up to timeoutMs for the server to close the connection; returns what arrived and whether it closed. */
  async readToClose(timeoutMs = 5000): Promise<{ data: string; closed: boolean }> {
    let data: Buffer;
    try {
      data = await this.readUntil(() => false, timeoutMs);
    } catch {
      data = this.received; // still open: reported below
      this.received = Buffer.alloc(0);
    }
    return { data: data.toString('latin1'), closed: this.closed };
  }

  close(): void {
    this.socket.destroy();
  }
}

export async function connectClient(port: number): Promise<RawClient> {
  const socket = connect({ port, host: '127.0.0.1' });
  await once(socket, 'connect');
  socket.setNoDelay(true);
  return new RawClient(socket);
}

/** `stats [group]` as a map of name to value (a value may hold spaces, as `stats settings` ones do). */
export async function statLines(client: RawClient, group = ''): Promise<Map<string, string>> {
  const text = await client.request(`stats${group ? ` ${group}` : ''}\r\n`, 'END\r\n');
  const map = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    const match = /^STAT (\S+) (.*)$/.exec(line);
    if (match) map.set(match[1]!, match[2]!);
  }
  return map;
}
