import { once } from 'node:events';
import { connect, type Socket } from 'node:net';

/**
 * A socket for long-running tests: received bytes are kept as a list of chunks
 * (no quadratic concatenation on large replies), waits are bounded, and a close
 * by the server is observed rather than thrown.
 */
export class Wire {
  private chunks: Buffer[] = [];
  private length = 0;
  private waiter: (() => void) | null = null;
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.length += chunk.length;
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    socket.on('error', () => {});
  }

  static async open(port: number, host = '127.0.0.1'): Promise<Wire> {
    const socket = connect({ port, host });
    await Promise.race([
      once(socket, 'connect'),
      once(socket, 'error').then(([error]) => {
        throw error;
      }),
    ]);
    socket.setNoDelay(true);
    return new Wire(socket);
  }

  /** Bytes received and not taken yet. */
  get available(): number {
    return this.length;
  }

  write(data: Buffer | string): void {
    if (this.closed) return;
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** The last n received bytes (fewer when fewer arrived). */
  tail(n: number): Buffer {
    const out: Buffer[] = [];
    let need = n;
    for (let i = this.chunks.length - 1; i >= 0 && need > 0; i--) {
      const chunk = this.chunks[i]!;
      if (chunk.length <= need) {
        out.unshift(chunk);
        need -= chunk.length;
      } else {
        out.unshift(chunk.subarray(chunk.length - need));
        need = 0;
      }
    }
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }

  /** Everything received so far, cleared. */
  take(): Buffer {
    const out = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.length);
    this.chunks = [];
    this.length = 0;
    return out;
  }

  /** Takes exactly n bytes from the front. */
  private takeFront(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.length -= n;
      return out;
    }
    const all = Buffer.concat(this.chunks, this.length);
    this.chunks = all.length > n ? [all.subarray(n)] : [];
    this.length -= n;
    return all.subarray(0, n);
  }

  /** Waits until done() holds, the socket closes, or timeoutMs passes. */
  async waitFor(done: () => boolean, timeoutMs: number): Promise<'ok' | 'closed' | 'timeout'> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (done()) return 'ok';
      if (this.closed) return 'closed';
      const left = deadline - Date.now();
      if (left <= 0) return 'timeout';
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = null;
    }
  }

  /** Index of the first LF in the received bytes, or -1. */
  private newlineIndex(): number {
    let offset = 0;
    for (const chunk of this.chunks) {
      const i = chunk.indexOf(0x0a);
      if (i !== -1) return offset + i;
      offset += chunk.length;
    }
    return -1;
  }

  /** The next line without its \r\n; throws on timeout or close. */
  async line(timeoutMs = 10_000): Promise<string> {
    let at = -1;
    const state = await this.waitFor(() => (at = this.newlineIndex()) !== -1, timeoutMs);
    if (state !== 'ok') throw new Error(`${state} waiting for a line; have ${JSON.stringify(this.peek(200))}`);
    const bytes = this.takeFront(at + 1);
    const end = bytes.length >= 2 && bytes[bytes.length - 2] === 0x0d ? bytes.length - 2 : bytes.length - 1;
    return bytes.toString('latin1', 0, end);
  }

  /** Exactly n bytes; throws on timeout or close. */
  async bytes(n: number, timeoutMs = 10_000): Promise<Buffer> {
    if (n === 0) return Buffer.alloc(0);
    const state = await this.waitFor(() => this.length >= n, timeoutMs);
    if (state !== 'ok') throw new Error(`${state} waiting for ${n} bytes; have ${this.length}`);
    return this.takeFront(n);
  }

  /** The first n received bytes as text, for error messages. */
  peek(n: number): string {
    return (this.chunks.length === 0 ? '' : Buffer.concat(this.chunks).subarray(0, n).toString('latin1'));
  }

  close(): void {
    this.closed = true;
    this.socket.destroy();
  }
}
