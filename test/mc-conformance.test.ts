/**
 * What memcached's own test files (t/*.t at 1.6.18, run by ../shared/conformance/
 * mc-suite.sh) check beyond the core protocols, restated as our tests so that
 * `npm test` keeps them without memcached's source: binary `stats detail dump`,
 * listeners in `stats conns`, the binary protocol over UDP, -p 0 and the port
 * file, `slabs automove`, -o read_buf_mem_limit, and the `watch` log stream.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseResponses, request, storeExtras } from './helpers/binary.js';
import { connectClient, type RawClient, statLines } from './helpers/client.js';
import { startMnemo } from './helpers/mnemo.js';
import { udpRequest } from './helpers/udp.js';

/** The client's own connection number: the last entry `stats conns` lists (as watcher_connid.t reads it). */
async function ownId(client: RawClient): Promise<string> {
  const conns = [...(await statLines(client, 'conns')).keys()];
  return conns[conns.length - 1]!.split(':')[0]!;
}

/** Reads lines from a watcher until one matches, or fails after timeoutMs. */
async function nextLine(watcher: RawClient, pending: string[], timeoutMs = 5000): Promise<string> {
  while (pending.length === 0) {
    const chunk = (await watcher.readUntil((got) => got.includes(0x0a), timeoutMs)).toString('latin1');
    pending.push(...chunk.split('\n').filter((line) => line !== ''));
  }
  return pending.shift()!;
}

describe('memcached test files restated', () => {
  it('binary stats "detail dump" answers one "detailed" statistic with the dump (binary.t)', async () => {
    const server = await startMnemo();
    try {
      const client = await connectClient(server.port);
      client.send(Buffer.concat([
        request({ opcode: 0x10, key: 'detail on' }),
        request({ opcode: 0x01, key: 'user:1', extras: storeExtras(0, 0), value: 'x' }),
        request({ opcode: 0x10, key: 'detail dump' }),
        request({ opcode: 0x10, key: 'detail nonsense' }),
      ]));
      const got = await client.readUntil((data) => parseResponses(data)[0].length >= 5);
      const [responses] = parseResponses(got);
      assert.deepEqual(responses.map((r) => [r.opcode, r.status, r.key]), [
        [0x10, 0, ''], [0x01, 0, ''], [0x10, 0, 'detailed'], [0x10, 0, ''], [0x10, 1, ''],
      ]);
      assert.equal(responses[2]!.value.toString('latin1'), 'PREFIX user get 0 hit 0 set 1 del 0\r\nEND\r\n');
      client.close();
    } finally {
      await server.stop();
    }
  });

  it('stats conns lists the TCP listener and the UDP socket (stats-conns.t); binary over UDP (udp.t)', async () => {
    const server = await startMnemo(['-U', '-1']);
    try {
      const client = await connectClient(server.port);
      const conns = await statLines(client, 'conns');
      const byId = new Map<string, Map<string, string>>();
      for (const [key, value] of conns) {
        const [id, field] = key.split(':') as [string, string];
        if (!byId.has(id)) byId.set(id, new Map());
        byId.get(id)!.set(field, value);
      }
      const entries = [...byId.values()];
      assert.equal(entries[0]!.get('addr'), `tcp:127.0.0.1:${server.port}`);
      assert.equal(entries[0]!.get('state'), 'conn_listening');
      assert.equal(entries[0]!.has('listen_addr'), false);
      assert.equal(entries[1]!.get('UDP'), 'UDP');
      assert.equal(entries[1]!.get('addr'), `udp:127.0.0.1:${server.udpPort}`);
      assert.equal(entries[1]!.get('state'), 'conn_read');
      assert.equal(entries[2]!.get('listen_addr'), `tcp:127.0.0.1:${server.port}`);

      const set = await udpRequest(server.udpPort, request({ opcode: 0x01, key: 'k', extras: storeExtras(5, 0), value: 'hello', opaque: 9 }));
      assert.equal(set.length, 1);
      const [[stored]] = parseResponses(set[0]!.subarray(8));
      assert.equal(stored!.status, 0);
      assert.equal(stored!.opaque, 9);
      const get = await udpRequest(server.udpPort, request({ opcode: 0x00, key: 'k' }), 11);
      assert.equal(get[0]!.readUInt16BE(0), 11);
      const [[item]] = parseResponses(get[0]!.subarray(8));
      assert.equal(item!.status, 0);
      assert.equal(item!.value.toString(), 'hello');
      assert.equal(item!.extras.readUInt32BE(0), 5);
      client.close();
    } finally {
      await server.stop();
    }
  });

  it('-p 0 opens no TCP listener; the port file names the UDP port (issue_67.t)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mnemo-ports-'));
    const portFile = join(dir, 'ports');
    const server = await startMnemo(['-p', '0', '-U', '-1'], { MEMCACHED_PORT_FILENAME: portFile });
    try {
      assert.equal(server.port, 0);
      assert.notEqual(server.udpPort, 0);
      assert.equal(readFileSync(portFile, 'utf8'), `UDP INET: ${server.udpPort}\n`);
      const reply = await udpRequest(server.udpPort, 'version\r\n');
      assert.match(reply[0]!.subarray(8).toString(), /^VERSION /);
    } finally {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('slabs automove: a bad level is a bad command line (strtol-testing.t); a good one shows in stats settings', async () => {
    const server = await startMnemo();
    try {
      const client = await connectClient(server.port);
      assert.equal(await client.request('slabs automove invalid\r\n'), 'CLIENT_ERROR bad command line format\r\n');
      assert.equal(await client.request('slabs automove 3\r\n'), 'ERROR\r\n');
      assert.equal(await client.request('slabs automove 2\r\n'), 'OK\r\n');
      assert.equal((await statLines(client, 'settings')).get('slab_automove'), '2');
      assert.equal(await client.request('slabs reassign x 2\r\n'), 'CLIENT_ERROR bad command line format\r\n');
      assert.equal(await client.request('verbosity invalid\r\n'), 'CLIENT_ERROR bad command line format\r\n');
      client.close();
    } finally {
      await server.stop();
    }
  });

  it('-o read_buf_mem_limit: replies past the share refuse a multi-get and close a pipeliner (conn-limits.t)', async () => {
    // 1 MB over 32 workers: two 16 KB buffers, one for the request, one for 13 response objects.
    const server = await startMnemo(['-o', 'read_buf_mem_limit=1', '-t', '32', '-R', '500']);
    try {
      const client = await connectClient(server.port);
      await client.request('set foo 0 0 1\r\nx\r\n');
      const keys = (n: number): string => Array.from({ length: n }, () => 'foo').join(' ');
      // 13 keys take the 13 objects; a 14th has none.
      assert.equal(await client.request(`get ${keys(13)}\r\n`, 'END\r\n'), 'VALUE foo 0 1\r\nx\r\n'.repeat(13) + 'END\r\n');
      assert.equal(await client.request(`get ${keys(14)}\r\n`), 'SERVER_ERROR out of memory writing get response\r\n');
      assert.equal((await statLines(client)).get('response_obj_oom'), '1');

      const pipeliner = await connectClient(server.port);
      pipeliner.send('mg foo v\r\n'.repeat(500));
      const { data, closed } = await pipeliner.readToClose(5000);
      assert.equal(data, '');
      assert.equal(closed, true);
      const stats = await statLines(client);
      assert.equal(stats.get('response_obj_oom'), '2');
      assert.equal((await statLines(client, 'settings')).get('read_buf_mem_limit'), String(1024 * 1024));
      client.close();
    } finally {
      await server.stop();
    }
  });

  it('watch: fetchers and mutations lines with the connection id (watcher.t, watcher_connid.t)', async () => {
    const server = await startMnemo(['-o', 'watcher_logbuf_size=8']);
    try {
      const client = await connectClient(server.port);
      const id = await ownId(client);
      const watcher = await connectClient(server.port);
      assert.equal(await watcher.request('watch fetchers mutations\r\n'), 'OK\r\n');
      assert.equal((await statLines(client)).get('log_watchers'), '1');
      const lines: string[] = [];
      await client.request('set foo 0 0 5\r\nhello\r\nget foo\r\n', 'END\r\n');
      assert.match(await nextLine(watcher, lines), new RegExp(`^ts=\\d+\\.\\d+ gid=\\d+ type=item_get key=foo status=not_found clsid=0 cfd=${id} size=0$`));
      assert.match(await nextLine(watcher, lines), new RegExp(`^ts=\\d+\\.\\d+ gid=\\d+ type=item_store key=foo status=stored cmd=set ttl=0 clsid=\\d+ cfd=${id} size=5$`));
      assert.match(await nextLine(watcher, lines), new RegExp(`^ts=\\d+\\.\\d+ gid=\\d+ type=item_get key=foo status=found clsid=\\d+ cfd=${id} size=5$`));
      // Keys are URI-encoded as memcached encodes them.
      await client.request('get a#b\r\n', 'END\r\n');
      assert.match(await nextLine(watcher, lines), / type=item_get key=a%23b status=not_found /);
      assert.equal(await watcher.request('get foo\r\n', '\n', 300).catch(() => 'no reply'), 'no reply');
      watcher.close();
      client.close();
    } finally {
      await server.stop();
    }
  });

  it('watch: a watcher that does not read skips lines and is told how many; -W refuses watch', async () => {
    const server = await startMnemo(['-o', 'watcher_logbuf_size=8']);
    const refusing = await startMnemo(['-W']);
    try {
      const client = await connectClient(server.port);
      const watcher = await connectClient(server.port);
      assert.equal(await watcher.request('watch\r\n'), 'OK\r\n');
      watcher.socket.pause();
      // Long keys make long lines: about 24 MB of log lines for 3 MB of requests,
      // more than the kernel's socket buffers and the watcher's 8 KB hold.
      const key = '#'.repeat(250);
      const line = `get ${Array.from({ length: 400 }, () => key).join(' ')}\r\n`;
      for (let i = 0; i < 30; i++) await client.request(line, 'END\r\n', 20_000);
      const skipped = Number((await statLines(client)).get('log_watcher_skipped'));
      assert.ok(skipped > 0, `log_watcher_skipped ${skipped}`);
      watcher.socket.resume();
      // Reading frees room; the next line that fits is preceded by skipped=N. Every
      // skipped line is counted in some skipped=N line (there may be several runs).
      let partial = '';
      let toldSkipped = 0;
      let stillUntold = skipped;
      for (let round = 0; round < 5000 && stillUntold > 0; round++) {
        await client.request('get foo\r\n', 'END\r\n');
        const lines = (partial + (await watcher.readUntil((got) => got.length > 0, 5000)).toString('latin1')).split('\n');
        partial = lines.pop()!;
        for (let i = 0; i < lines.length; i++) {
          const told = /^skipped=(\d+)$/.exec(lines[i]!);
          if (told === null) continue;
          toldSkipped += Number(told[1]);
          const after = lines[i + 1];
          if (after !== undefined) assert.match(after, /^ts=\d+\.\d+ gid=\d+ type=item_get key=/);
        }
        stillUntold = Number((await statLines(client)).get('log_watcher_skipped')) - toldSkipped;
      }
      assert.equal(stillUntold, 0);
      assert.ok(toldSkipped >= skipped);

      const other = await connectClient(refusing.port);
      assert.equal(await other.request('watch mutations\r\n'), 'CLIENT_ERROR watch commands not allowed\r\n');
      other.close();
      watcher.close();
      client.close();
    } finally {
      await Promise.all([server.stop(), refusing.stop()]);
    }
  });

  it('watch connevents: new connections, and closes with their reason (watcher.t)', async () => {
    const server = await startMnemo();
    try {
      const watcher = await connectClient(server.port);
      assert.equal(await watcher.request('watch connevents\r\n'), 'OK\r\n');
      const lines: string[] = [];
      const quitter = await connectClient(server.port);
      await quitter.request('version\r\n');
      quitter.send('quit\r\n');
      assert.match(await nextLine(watcher, lines), /^ts=\d+\.\d+ gid=\d+ type=conn_new rip=127\.0\.0\.1 rport=\d+ transport=tcp cfd=\d+$/);
      assert.match(await nextLine(watcher, lines), / type=conn_close rip=127\.0\.0\.1 rport=\d+ transport=tcp reason=normal cfd=\d+$/);
      const browser = await connectClient(server.port);
      browser.send('GET / HTTP/1.1\r\n');
      assert.match(await nextLine(watcher, lines), / type=conn_new /);
      assert.match(await nextLine(watcher, lines), / type=conn_close .* reason=error /);
      watcher.close();
    } finally {
      await server.stop();
    }
  });
});
