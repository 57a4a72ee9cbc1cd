/** Memory and connection limits behave as memcached's do. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { connectClient, type RawClient } from './helpers/client.js';
import { startMnemo } from './helpers/mnemo.js';

async function stat(client: RawClient, name: string): Promise<number> {
  const text = await client.request('stats\r\n', 'END\r\n');
  const match = new RegExp(`^STAT ${name} (\\d+)\\r$`, 'm').exec(text);
  assert.ok(match, `no stat ${name}`);
  return Number(match[1]);
}

function fill(count: number, size: number, prefix: string): { commands: string; replies: string } {
  const value = 'v'.repeat(size);
  let commands = '';
  for (let i = 0; i < count; i++) commands += `set ${prefix}${i} 0 0 ${size}\r\n${value}\r\n`;
  return { commands, replies: 'STORED\r\n'.repeat(count) };
}

describe('memory limit', () => {
  it('evicts least recently used items to stay within -m', async () => {
    const server = await startMnemo(['-m', '2']);
    const client = await connectClient(server.port);
    try {
      const first = fill(100, 10_000, 'early');
      await client.request(first.commands, first.replies);
      // Touch early0 so it is recently used, then push far past the limit.
      assert.match(await client.request('get early0\r\n', 'END\r\n'), /^VALUE early0/);
      const second = fill(300, 10_000, 'late');
      await client.request(second.commands, second.replies);
      assert.ok((await stat(client, 'evictions')) > 0);
      assert.ok((await stat(client, 'bytes')) <= 2 * 1024 * 1024);
      assert.equal(await client.request('get early1\r\n', 'END\r\n'), 'END\r\n');
      assert.match(await client.request('get late299\r\n', 'END\r\n'), /^VALUE late299 0 10000\r\n/);
    } finally {
      client.close();
      await server.stop();
    }
  });

  it('keeps the process within -m plus 192 MiB of anonymous memory under churn of every item size', async (t) => {
    const server = await startMnemo(['-m', '32', '-I', '1m']);
    const client = await connectClient(server.port);
    const rssAnonMiB = (): number => Number(/RssAnon:\s+(\d+) kB/.exec(readFileSync(`/proc/${server.process.pid}/status`, 'latin1'))![1]) / 1024;
    try {
      // Each phase writes several times -m, so most of what it writes is evicted again.
      for (const [count, size] of [[300, 500_000], [1500, 100_000], [30_000, 4000], [150_000, 1000], [600_000, 10], [400_000, 100]] as const) {
        const value = 'v'.repeat(size);
        const perBatch = Math.max(1, Math.floor(256_000 / (size + 40)));
        for (let start = 0; start < count; start += perBatch) {
          let batch = '';
          for (let i = start; i < Math.min(count, start + perBatch); i++) batch += `set s${size}:${i} 0 0 ${size} noreply\r\n${value}\r\n`;
          await client.request(`${batch}mn\r\n`, 'MN\r\n', 30_000);
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 3000));
      const used = rssAnonMiB();
      t.diagnostic(`RssAnon after the churn: ${used.toFixed(0)} MiB with -m 32`);
      assert.ok(used <= 32 + 192, `RssAnon ${used.toFixed(0)} MiB`);
      assert.ok((await stat(client, 'evictions')) > 1_000_000);
    } finally {
      client.close();
      await server.stop();
    }
  });

  it('refuses writes when full under -M', async () => {
    const server = await startMnemo(['-m', '2', '-M']);
    const client = await connectClient(server.port);
    try {
      const value = 'v'.repeat(100_000);
      let reply = '';
      for (let i = 0; i < 40 && !reply.startsWith('SERVER_ERROR'); i++) {
        reply = await client.request(`set full${i} 0 0 ${value.length}\r\n${value}\r\n`);
      }
      assert.equal(reply, 'SERVER_ERROR out of memory storing object\r\n');
      assert.equal(await stat(client, 'evictions'), 0);
      // Nothing was lost and the connection is still in sync.
      assert.match(await client.request('get full0\r\n', 'END\r\n'), /^VALUE full0 0 100000\r\n/);
      assert.equal(await client.request('delete full0\r\n'), 'DELETED\r\n');
      assert.equal(await client.request(`set again 0 0 ${value.length}\r\n${value}\r\n`), 'STORED\r\n');
    } finally {
      client.close();
      await server.stop();
    }
  });

  it('swallows the data of a value over -I and stays in sync', async () => {
    const server = await startMnemo(['-I', '1k', '-m', '2']);
    const client = await connectClient(server.port);
    try {
      const value = 'x'.repeat(5000);
      assert.equal(
        await client.request(`set big 0 0 ${value.length}\r\n${value}\r\nget big\r\n`, 'END\r\n'),
        'SERVER_ERROR object too large for cache\r\nEND\r\n',
      );
      assert.equal(await stat(client, 'store_too_large'), 1);
    } finally {
      client.close();
      await server.stop();
    }
  });
});

describe('connection limit', () => {
  it('answers connections over -c with an error and counts them', async () => {
    const server = await startMnemo(['-c', '2']);
    const first = await connectClient(server.port);
    const second = await connectClient(server.port);
    try {
      assert.equal(await first.request('version\r\n').then((r) => r.startsWith('VERSION ')), true);
      const third = await connectClient(server.port);
      const { data, closed } = await third.readToClose();
      assert.equal(data, 'ERROR Too many open connections\r\n');
      assert.ok(closed);
      assert.equal(await stat(first, 'rejected_connections'), 1);
      second.close();
      await new Promise((resolve) => setTimeout(resolve, 100));
      const fourth = await connectClient(server.port);
      assert.match(await fourth.request('version\r\n'), /^VERSION /);
      fourth.close();
    } finally {
      first.close();
      second.close();
      await server.stop();
    }
  });
});
