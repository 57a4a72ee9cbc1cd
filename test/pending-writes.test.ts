/**
 * --data-dir: a change reads as made from the moment it is acknowledged, whatever
 * LMDB has not committed yet. A deleted, flushed or overwritten key must never come
 * back from the disk's last committed state (issue 13, defect 1).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { connectClient, type RawClient } from './helpers/client.js';
import { startMnemo } from './helpers/mnemo.js';
import { dataDirs } from './helpers/data-dirs.js';

const dataDir = dataDirs('pending');

const POLICIES = ['always', 'interval=1000', 'none'];
const KEYS = Array.from({ length: 200 }, (_, i) => `key${i}`);

async function stat(client: RawClient, name: string): Promise<number> {
  const stats = await client.request('stats\r\n', 'END\r\n');
  return Number(new RegExp(`STAT ${name} (\\S+)\\r\\n`).exec(stats)?.[1]);
}

/** Sets every key to "old" and waits until LMDB has committed them all (the disk holds what would come back). */
async function setCommitted(client: RawClient, keys: string[]): Promise<void> {
  await client.request(`${keys.map((key) => `set ${key} 0 0 3 noreply\r\nold\r\n`).join('')}mn\r\n`, 'MN\r\n');
  const deadline = Date.now() + 5000;
  while ((await stat(client, 'disk_items')) !== keys.length) {
    assert.ok(Date.now() < deadline, 'the sets were never committed');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('pending writes with --data-dir', () => {
  for (const policy of POLICIES) {
    it(`--sync ${policy}: pipelined delete, get, incr, delete answer as memcached does, on 200 keys`, async () => {
      const server = await startMnemo(['-H', dataDir(), '--sync', policy]);
      const client = await connectClient(server.port);
      try {
        await setCommitted(client, KEYS);
        const expected = 'DELETED\r\nEND\r\nNOT_FOUND\r\nNOT_FOUND\r\n'.repeat(KEYS.length);
        const reply = await client.request(
          `${KEYS.map((key) => `delete ${key}\r\nget ${key}\r\nincr ${key} 1\r\ndelete ${key}\r\n`).join('')}mn\r\n`,
          'MN\r\n',
        );
        const resurrected = reply.split('VALUE ').length - 1;
        assert.equal(reply, `${expected}MN\r\n`, `${resurrected} of ${KEYS.length} deleted keys came back`);
        // And after the commits: still gone, once and for all.
        assert.equal(await client.request(`get ${KEYS.join(' ')}\r\n`, 'END\r\n'), 'END\r\n');
      } finally {
        client.close();
        await server.stop();
      }
    });

    it(`--sync ${policy}: a get from a second connection right after each delete misses`, async () => {
      const server = await startMnemo(['-H', dataDir(), '--sync', policy]);
      const writer = await connectClient(server.port);
      const reader = await connectClient(server.port);
      try {
        await setCommitted(writer, KEYS);
        const back: string[] = [];
        for (const key of KEYS) {
          assert.equal(await writer.request(`delete ${key}\r\n`), 'DELETED\r\n');
          if ((await reader.request(`get ${key}\r\n`, 'END\r\n')) !== 'END\r\n') back.push(key);
        }
        assert.deepEqual(back, [], `${back.length} of ${KEYS.length} deleted keys came back on another connection`);
      } finally {
        writer.close();
        reader.close();
        await server.stop();
      }
    });

    it(`--sync ${policy}: flush_all then get finds nothing, on this connection and another`, async () => {
      const server = await startMnemo(['-H', dataDir(), '--sync', policy]);
      const client = await connectClient(server.port);
      const other = await connectClient(server.port);
      try {
        await setCommitted(client, KEYS);
        assert.equal(await client.request(`flush_all\r\nget ${KEYS.join(' ')}\r\n`, 'END\r\n'), 'OK\r\nEND\r\n');
        assert.equal(await other.request(`get ${KEYS.join(' ')}\r\n`, 'END\r\n'), 'END\r\n');
        // A key written after the flush is served, and the others stay gone.
        assert.equal(await client.request(`set key7 0 0 3\r\nnew\r\nget key6 key7 key8\r\n`, 'END\r\n'), 'STORED\r\nVALUE key7 0 3\r\nnew\r\nEND\r\n');
      } finally {
        client.close();
        other.close();
        await server.stop();
      }
    });
  }

  it('an expired key stays missing for get, incr, append and a second get, while its removal is pending', async () => {
    const server = await startMnemo(['-H', dataDir(), '--sync', 'interval=1000', '--test-clock']);
    const client = await connectClient(server.port);
    try {
      await client.request(`${KEYS.map((key) => `set ${key} 0 100 1 noreply\r\n5\r\n`).join('')}mn\r\n`, 'MN\r\n');
      const deadline = Date.now() + 5000;
      while ((await stat(client, 'disk_items')) !== KEYS.length) {
        assert.ok(Date.now() < deadline, 'the sets were never committed');
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      assert.equal(await client.request('debugtime 200\r\n'), 'OK\r\n');
      const reply = await client.request(
        `${KEYS.map((key) => `get ${key}\r\nincr ${key} 1\r\nappend ${key} 0 0 1\r\nx\r\nget ${key}\r\n`).join('')}mn\r\n`,
        'MN\r\n',
      );
      assert.equal(reply, `${'END\r\nNOT_FOUND\r\nNOT_STORED\r\nEND\r\n'.repeat(KEYS.length)}MN\r\n`);
    } finally {
      client.close();
      await server.stop();
    }
  });

  it('a newer value not yet committed is served, never the older one on disk, when memory has let the key go', async () => {
    // -m 2 with 64 KB values: memory holds about two dozen, so the key is evicted within the same pipeline.
    const server = await startMnemo(['-H', dataDir(), '--sync', 'interval=1000', '-m', '2', '-I', '128k']);
    const client = await connectClient(server.port);
    try {
      const filler = 'x'.repeat(65536);
      let wrong = 0;
      for (let round = 0; round < 10; round++) {
        await setCommitted(client, ['a']);
        const evict = Array.from({ length: 40 }, (_, i) => `set f${round}_${i} 0 0 ${filler.length} noreply\r\n${filler}\r\n`).join('');
        const reply = await client.request(`set a 0 0 3 noreply\r\nnew\r\n${evict}get a\r\n`, 'END\r\n');
        if (reply !== 'VALUE a 0 3\r\nnew\r\nEND\r\n') wrong++;
        await client.request(`delete a\r\nflush_all\r\n`, 'OK\r\n');
      }
      assert.equal(wrong, 0, `${wrong} of 10 gets served the older value from disk`);
    } finally {
      client.close();
      await server.stop();
    }
  });
});
