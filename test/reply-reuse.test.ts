/**
 * A reply stays intact when its item's chunk is reused right after the `get`
 * (issue 15's trap): in one write, `get k` then a change that frees k's chunks and
 * writes other bytes into them — an overwrite of k, a delete of k and a set of
 * another key of its size, or sets that evict k. The client reads nothing until the
 * server has run the whole write, so a reply that held a reference to k's memory
 * rather than a copy would still be waiting in the server when the chunk changed
 * and would go out with the new bytes. Small values, values past 8 KiB, and chunked
 * values past 512 KiB (-I 2m) each take their own path through the output buffer.
 *
 * Over a unix socket: its kernel buffers are fixed (net.core.wmem_default, ~208 KiB),
 * where TCP's grow to megabytes on loopback and would take a whole 700 KiB reply
 * before the overwrite, which arrives over several reads, is run.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RawClient } from './helpers/client.js';
import { startMnemo, type RunningServer } from './helpers/mnemo.js';

/** A value of `length` bytes that differs from any other seed's at every position. */
function valueOf(seed: number, length: number): Buffer {
  const value = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) value[i] = 0x21 + ((i * 7 + seed * 13) % 90);
  return value;
}

function setCommand(key: string, value: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`set ${key} 0 0 ${value.length} noreply\r\n`, 'latin1'), value, Buffer.from('\r\n')]);
}

async function connectUnix(path: string): Promise<RawClient> {
  const socket = connect({ path });
  await once(socket, 'connect');
  return new RawClient(socket);
}

/** Waits until the server has run a command: the sentinel key a pipeline sets last is there. */
async function waitForKey(control: RawClient, key: string): Promise<void> {
  for (let tries = 0; tries < 2000; tries++) {
    if ((await control.request(`mg ${key}\r\n`)) === 'HD\r\n') return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`the server never ran the pipeline (no ${key})`);
}

async function stat(control: RawClient, name: string): Promise<number> {
  const stats = await control.request('stats\r\n', 'END\r\n');
  return Number(new RegExp(`STAT ${name} (\\d+)\\r\\n`).exec(stats)?.[1] ?? NaN);
}

type Change = 'overwrite' | 'delete' | 'evict';

/**
 * Stores k, then sends `get k` (k `gets` times) and the change in one write while not reading;
 * once the server has run it all, reads and returns the reply. `others`: how many
 * sets of other keys of the same size evict k.
 */
async function getThenChange(path: string, length: number, change: Change, others: number, gets: number): Promise<{ reply: Buffer; expected: Buffer }> {
  const control = await connectUnix(path);
  const client = await connectUnix(path);
  try {
    const old = valueOf(1, length);
    assert.equal(await control.request(Buffer.concat([Buffer.from(`set k 0 0 ${length}\r\n`), old, Buffer.from('\r\n')])), 'STORED\r\n');
    const parts: Buffer[] = [Buffer.from(`get${' k'.repeat(gets)}\r\n`)];
    if (change === 'overwrite') parts.push(setCommand('k', valueOf(2, length)));
    if (change === 'delete') parts.push(Buffer.from('delete k noreply\r\n'), setCommand('other', valueOf(3, length)));
    if (change === 'evict') for (let i = 0; i < others; i++) parts.push(setCommand(`other:${i}`, valueOf(4 + (i % 50), length)));
    parts.push(Buffer.from(`set sentinel:${change} 0 0 1 noreply\r\nx\r\nmn\r\n`));
    client.socket.pause();
    await new Promise<void>((resolve, reject) => client.socket.write(Buffer.concat(parts), (error) => (error ? reject(error) : resolve())));
    await waitForKey(control, `sentinel:${change}`);
    client.socket.resume();
    const reply = await client.readUntil((got) => got.length >= 4 && got.subarray(got.length - 4).toString() === 'MN\r\n', 30_000);

    // The change did happen to k.
    const now = await control.request('get k\r\n', 'END\r\n');
    if (change === 'overwrite') assert.equal(now, `VALUE k 0 ${length}\r\n${valueOf(2, length).toString('latin1')}\r\nEND\r\n`);
    else assert.equal(now, 'END\r\n', `k is gone after the ${change}`);
    if (change === 'evict') assert.ok((await stat(control, 'evictions')) > 0, 'the sets evicted');
    const block = Buffer.concat([Buffer.from(`VALUE k 0 ${length}\r\n`), old, Buffer.from('\r\n')]);
    const expected = Buffer.concat([...Array.from({ length: gets }, () => block), Buffer.from('END\r\nMN\r\n')]);
    return { reply, expected };
  } finally {
    control.close();
    client.close();
  }
}

describe('a reply stays intact when its item is overwritten, deleted or evicted right after the get', () => {
  // [name, value length, flags, sets of other keys that evict k, times k is asked for in the get].
  // Sets that evict k take several reads; by then a reply of one small value would have
  // gone to the kernel, so the get asks for k until the reply passes the socket's buffer:
  // the first copies fill it, and the rest are still in the server when the sets run.
  // (Checked: with the output queuing references to the item's chunk, all nine fail.)
  const sizes: Array<[string, number, string[], number, number]> = [
    ['100-byte values', 100, ['-m', '2'], 30_000, 2400],
    ['20 KiB values (past 8 KiB: queued as a copy of their own)', 20_000, ['-m', '2'], 300, 16],
    // Under -C items have no CAS, by which the store knows an item it copied is unchanged.
    ['20 KiB values without CAS (-C)', 20_000, ['-m', '2', '-C'], 300, 16],
    ['700 KiB chunked values (-I 2m)', 700_000, ['-m', '8', '-I', '2m'], 24, 1],
  ];
  for (const [name, length, flags, others, gets] of sizes) {
    describe(name, () => {
      const dir = mkdtempSync(join(tmpdir(), 'mnemo-reply-'));
      const path = join(dir, 'mnemo.sock');
      let mnemo: RunningServer;
      before(async () => {
        // A flat LRU: under the segmented one, k (asked for many times) is active and held
        // for its move to WARM, and a held item is not evicted (as memcached's lrutail_reflocked).
        mnemo = await startMnemo(['-s', path, '-o', 'no_lru_maintainer', ...flags]);
      });
      after(async () => {
        await mnemo.stop();
        rmSync(dir, { recursive: true, force: true });
      });
      for (const change of ['overwrite', 'delete', 'evict'] as const) {
        it(change, async () => {
          const { reply, expected } = await getThenChange(path, length, change, others, gets);
          assert.equal(reply.length, expected.length, 'reply length');
          assert.ok(reply.equals(expected), 'the reply holds the value k had at the get');
        });
      }
    });
  }
});
