/** --data-dir: items survive restarts and crashes; bad data dirs are refused without harm. */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it, type TestContext } from 'node:test';
import { open } from 'lmdb';
import { connectClient } from './helpers/client.js';
import { MNEMO_BIN, runMnemo, startMnemo, type RunningServer } from './helpers/mnemo.js';

const root = mkdtempSync(join(tmpdir(), 'mnemo-persist-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
function dataDir(): string {
  const dir = join(root, `data${dirs++}`);
  mkdirSync(dir);
  return dir;
}

/** A value that names its key and version, so a torn or mixed value cannot pass for a good one. */
function valueOf(key: string, version: number, size: number): string {
  const stamp = `${key}#${version}|`;
  return stamp.repeat(Math.ceil(size / stamp.length)).slice(0, size);
}

/** A 3 MB tmpfs to fill, unmounted after the test; null (and the test skipped) where mounting needs root. */
function smallDisk(t: TestContext): string | null {
  const mountPoint = dataDir();
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mountPoint], { stdio: 'ignore' });
  } catch {
    t.skip('cannot mount a small tmpfs here (needs root)');
    return null;
  }
  t.after(() => execFileSync('umount', ['-l', mountPoint], { stdio: 'ignore' }));
  return mountPoint;
}

/** The numeric lines of a `stats` reply. */
function statsOf(reply: string): Record<string, number> {
  const stats: Record<string, number> = {};
  for (const [, name, value] of reply.matchAll(/^STAT (\S+) (\S+)\r$/gm)) stats[name!] = Number(value);
  return stats;
}

async function kill9(server: RunningServer): Promise<void> {
  server.process.kill('SIGKILL');
  await once(server.process, 'exit');
}

describe('persistence', () => {
  it('brings back 100k items of mixed sizes with their flags and TTLs after a restart', async () => {
    const dir = dataDir();
    let server = await startMnemo(['-H', dir, '-m', '256']);
    const count = 100_000;
    const sizeOf = (i: number) => [10, 100, 1000, 5000][i % 4]!;
    const writers = await Promise.all(Array.from({ length: 4 }, () => connectClient(server.port)));
    await Promise.all(writers.map(async (client, w) => {
      let batch = '';
      let pending = 0;
      for (let i = w; i < count; i += writers.length) {
        const value = valueOf(`k${i}`, 1, sizeOf(i));
        const ttl = i % 10 === 0 ? 3600 : 0;
        batch += `set k${i} ${i % 1000} ${ttl} ${value.length} noreply\r\n${value}\r\n`;
        if (++pending === 500) {
          await client.request(`${batch}mn\r\n`, 'MN\r\n');
          batch = '';
          pending = 0;
        }
      }
      await client.request(`${batch}mn\r\n`, 'MN\r\n');
      client.close();
    }));
    await server.stop();

    server = await startMnemo(['-H', dir, '-m', '256']);
    try {
      assert.match(server.stderr(), /data dir loaded: 100000 of 100000 items in memory/);
      const client = await connectClient(server.port);
      for (let start = 0; start < count; start += 100) {
        const keys = Array.from({ length: 100 }, (_, j) => `k${start + j}`);
        const reply = await client.request(`get ${keys.join(' ')}\r\n`, 'END\r\n');
        let expected = '';
        for (let j = 0; j < 100; j++) {
          const i = start + j;
          const value = valueOf(`k${i}`, 1, sizeOf(i));
          expected += `VALUE k${i} ${i % 1000} ${value.length}\r\n${value}\r\n`;
        }
        assert.equal(reply, `${expected}END\r\n`, `keys from k${start}`);
      }
      const ttl = /^HD t(\d+)\r\n$/.exec(await client.request('mg k10 t\r\n'))![1];
      assert.ok(Number(ttl) > 3500 && Number(ttl) <= 3600, `ttl ${ttl}`);
      assert.equal(await client.request('mg k11 t\r\n'), 'HD t-1\r\n');
      client.close();
    } finally {
      await server.stop();
    }
  });

  it('keeps deletes, incr, append, touch and flush_all across a restart', async () => {
    const dir = dataDir();
    let server = await startMnemo(['-H', dir]);
    let client = await connectClient(server.port);
    await client.request(
      'set gone 0 0 1\r\nx\r\ndelete gone\r\nset n 0 0 2\r\n10\r\nincr n 5\r\nset s 3 0 1\r\na\r\nappend s 0 0 1\r\nb\r\n' +
        'set t 0 0 1\r\nx\r\ntouch t 1000\r\nset short 0 1 1\r\nx\r\nmn\r\n',
      'MN\r\n',
    );
    client.close();
    await server.stop();
    server = await startMnemo(['-H', dir]);
    client = await connectClient(server.port);
    assert.equal(await client.request('get gone n s\r\n', 'END\r\n'), 'VALUE n 0 2\r\n15\r\nVALUE s 3 2\r\nab\r\nEND\r\n');
    assert.match(await client.request('mg t t\r\n'), /^HD t(99\d|100[01])\r\n$/);
    assert.equal(await client.request('flush_all\r\n'), 'OK\r\n');
    client.close();
    await server.stop();
    server = await startMnemo(['-H', dir]);
    client = await connectClient(server.port);
    assert.equal(await client.request('get n s t\r\n', 'END\r\n'), 'END\r\n');
    client.close();
    await server.stop();
  });

  it('serves items that do not fit in memory from the disk', async () => {
    const dir = dataDir();
    const server = await startMnemo(['-H', dir, '-m', '2']);
    const client = await connectClient(server.port);
    try {
      let batch = '';
      for (let i = 0; i < 300; i++) batch += `set big${i} 0 0 20000 noreply\r\n${valueOf(`big${i}`, 1, 20000)}\r\n`;
      await client.request(`${batch}mn\r\n`, 'MN\r\n');
      for (let i = 0; i < 300; i += 7) {
        const value = valueOf(`big${i}`, 1, 20000);
        assert.equal(await client.request(`get big${i}\r\n`, 'END\r\n'), `VALUE big${i} 0 20000\r\n${value}\r\nEND\r\n`);
      }
      const stats = await client.request('stats\r\n', 'END\r\n');
      assert.ok(Number(/STAT evictions (\d+)/.exec(stats)![1]) > 0);
      assert.ok(Number(/STAT disk_promotions (\d+)/.exec(stats)![1]) > 0);
    } finally {
      client.close();
      await server.stop();
    }
  });

  it('keeps the base64-key mark on disk: mg b k answers the key in base64 after a promotion from disk and after a restart', async () => {
    // Raw keys with a space and CR/LF: answered undecoded, they would break the reply line.
    const small = Buffer.from('a b\r\nc').toString('base64');
    const big = Buffer.from('z z\r\n').toString('base64');
    const bigValue = valueOf('z', 1, 20000);
    const dir = dataDir();
    let server = await startMnemo(['-H', dir, '-m', '2']);
    let client = await connectClient(server.port);
    try {
      assert.equal(await client.request(`ms ${small} 5 b T0 F7\r\nhello\r\nms ${big} 20000 b\r\n${bigValue}\r\n`, 'HD\r\nHD\r\n'), 'HD\r\nHD\r\n');
      // Pushes the big one out of memory: the next mg brings it back from disk.
      let batch = '';
      for (let i = 0; i < 300; i++) batch += `set big${i} 0 0 20000 noreply\r\n${valueOf(`big${i}`, 1, 20000)}\r\n`;
      await client.request(`${batch}mn\r\n`, 'MN\r\n');
      const promotionsBefore = statsOf(await client.request('stats\r\n', 'END\r\n')).disk_promotions!;
      assert.equal(await client.request(`mg ${big} b k s\r\n`), `HD k${big} b s20000\r\n`);
      assert.equal(statsOf(await client.request('stats\r\n', 'END\r\n')).disk_promotions, promotionsBefore + 1, 'it came from disk');
    } finally {
      client.close();
      await server.stop();
    }
    server = await startMnemo(['-H', dir, '-m', '2']);
    client = await connectClient(server.port);
    try {
      assert.equal(await client.request(`mg ${small} b k f v\r\n`, 'hello\r\n'), `VA 5 k${small} b f7\r\nhello\r\n`);
      assert.equal(await client.request(`mg ${big} b k s\r\n`), `HD k${big} b s20000\r\n`);
    } finally {
      client.close();
      await server.stop();
    }
  });

  it('reads a data dir of format version 1 (records without the base64-key mark) and marks it version 2', async () => {
    const dir = dataDir();
    const db = open({ path: join(dir, 'lmdb'), maxDbs: 4 });
    db.openDB<string, string>({ name: 'meta', encoding: 'string', keyEncoding: 'ordered-binary' }).putSync('format', '1');
    const items = db.openDB<Buffer, Buffer>({ name: 'items', encoding: 'binary', keyEncoding: 'binary' });
    // Format 1's record: flags u32, exptime u32, cas f64, value.
    const record = Buffer.alloc(16 + 3);
    record.writeUInt32BE(42, 0);
    record.writeDoubleBE(7, 8);
    record.write('old', 16, 'latin1');
    items.putSync(Buffer.from('legacy'), record);
    await db.close();
    const server = await startMnemo(['-H', dir]);
    const client = await connectClient(server.port);
    try {
      assert.equal(await client.request('mg legacy k f c v\r\n', 'old\r\n'), 'VA 3 klegacy f42 c7\r\nold\r\n');
    } finally {
      client.close();
      await server.stop();
    }
    const reopened = open({ path: join(dir, 'lmdb'), maxDbs: 4 });
    assert.equal(reopened.openDB<string, string>({ name: 'meta', encoding: 'string', keyEncoding: 'ordered-binary' }).get('format'), '2');
    await reopened.close();
  });

  it('tiered: with -m 16 --disk-limit 1g, 10x more data than memory all comes back, promoted from disk', async () => {
    const dir = dataDir();
    const server = await startMnemo(['-H', dir, '-m', '16', '--disk-limit', '1g']);
    const client = await connectClient(server.port);
    const count = 8200; // 8200 x 20 KB: 160 MB, 10x memory
    try {
      for (let start = 0; start < count; start += 200) {
        let batch = '';
        for (let i = start; i < start + 200; i++) batch += `set t${i} ${i} 0 20000 noreply\r\n${valueOf(`t${i}`, 1, 20000)}\r\n`;
        await client.request(`${batch}mn\r\n`, 'MN\r\n');
      }
      for (let i = 0; i < count; i++) {
        const reply = await client.request(`get t${i}\r\n`, 'END\r\n');
        assert.equal(reply, `VALUE t${i} ${i} 20000\r\n${valueOf(`t${i}`, 1, 20000)}\r\nEND\r\n`, `t${i}`);
      }
      const stats = statsOf(await client.request('stats\r\n', 'END\r\n'));
      assert.ok(stats.evictions! > count / 2, `evictions ${stats.evictions}`);
      assert.ok(stats.disk_promotions! > count / 2, `promotions ${stats.disk_promotions}`);
      assert.ok(stats.disk_hits! >= stats.disk_promotions!);
      assert.equal(stats.disk_evictions, 0);
      assert.ok(stats.disk_tier_bytes! > 160_000_000 && stats.disk_tier_bytes! <= 1024 ** 3);
      assert.ok(stats.disk_commits! > 0 && stats.disk_commit_avg_ms! > 0);
    } finally {
      client.close();
      await server.stop();
    }
  });

  it('tiered: the disk tier drops its least recent items past --disk-limit, and keeps the limit across a restart', async () => {
    const dir = dataDir();
    let server = await startMnemo(['-H', dir, '-m', '2', '--disk-limit', '4m']);
    let client = await connectClient(server.port);
    const count = 600; // 600 x 20 KB: 12 MB through a 2 MB memory and a 4 MB disk
    try {
      for (let i = 0; i < count; i++) {
        await client.request(`set d${i} 0 0 20000\r\n${valueOf(`d${i}`, 1, 20000)}\r\n`, 'STORED\r\n');
        // Keep d0 recent on disk: reading it from disk makes it the tier's newest.
        if (i % 50 === 49) assert.match(await client.request('get d0\r\n', 'END\r\n'), /^VALUE d0 /);
      }
      const stats = statsOf(await client.request('stats\r\n', 'END\r\n'));
      assert.ok(stats.disk_evictions! > 300, `disk evictions ${stats.disk_evictions}`);
      assert.ok(stats.disk_tier_bytes! <= 4 * 1024 * 1024, `tier bytes ${stats.disk_tier_bytes}`);
      assert.equal(await client.request('get d1 d100\r\n', 'END\r\n'), 'END\r\n');
      for (const i of [0, count - 150, count - 1]) {
        assert.equal(await client.request(`get d${i}\r\n`, 'END\r\n'), `VALUE d${i} 0 20000\r\n${valueOf(`d${i}`, 1, 20000)}\r\nEND\r\n`);
      }
    } finally {
      client.close();
      await server.stop();
    }
    server = await startMnemo(['-H', dir, '-m', '2', '--disk-limit', '4m']);
    client = await connectClient(server.port);
    try {
      const stats = statsOf(await client.request('stats\r\n', 'END\r\n'));
      assert.ok(stats.disk_items! <= 4 * 1024 * 1024 / 20000 && stats.disk_items! > 150, `disk items ${stats.disk_items}`);
      assert.match(await client.request(`get d${count - 1}\r\n`, 'END\r\n'), new RegExp(`^VALUE d${count - 1} 0 20000`));
    } finally {
      client.close();
      await server.stop();
    }
  });

  it('loses no write acknowledged under --sync always when killed with SIGKILL (20 rounds)', async () => {
    const dir = dataDir();
    const acknowledged = new Map<string, number>();
    for (let round = 1; round <= 20; round++) {
      const server = await startMnemo(['-H', dir, '--sync', 'always']);
      const writers = await Promise.all(Array.from({ length: 4 }, () => connectClient(server.port)));
      let stop = false;
      const loops = writers.map(async (client, w) => {
        for (let i = 0; !stop; i++) {
          const key = `w${w}k${i % 50}`;
          const value = valueOf(key, round * 100_000 + i, 64 + (i % 5) * 300);
          let reply: string;
          try {
            reply = await client.request(`set ${key} 0 0 ${value.length}\r\n${value}\r\n`);
          } catch {
            return; // no reply before the kill: unacknowledged
          }
          if (reply === 'STORED\r\n') acknowledged.set(key, round * 100_000 + i);
          else return; // the server died mid-request: unacknowledged
        }
      });
      await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 250));
      await kill9(server);
      stop = true;
      await Promise.all(loops);
      for (const client of writers) client.close();
    }
    const server = await startMnemo(['-H', dir]);
    const client = await connectClient(server.port);
    try {
      assert.ok(acknowledged.size > 0);
      for (const [key, version] of acknowledged) {
        const reply = await client.request(`get ${key}\r\n`, 'END\r\n');
        const match = /^VALUE \S+ 0 (\d+)\r\n([^\r]*)\r\nEND\r\n$/.exec(reply);
        assert.ok(match, `${key} missing: ${reply.slice(0, 80)}`);
        // The value on disk is whole and at least as new as the last acknowledged write.
        const stored = Number(/#(\d+)\|/.exec(match[2]!)![1]);
        assert.equal(match[2], valueOf(key, stored, Number(match[1])));
        assert.ok(stored >= version, `${key}: acknowledged ${version}, found ${stored}`);
      }
    } finally {
      client.close();
      await server.stop();
    }
  });

  it('loses at most the last interval of acknowledged writes under --sync interval=1000 when killed (measured)', async (t) => {
    const windows: number[] = [];
    let lostWrites = 0;
    for (let round = 1; round <= 5; round++) {
      const dir = dataDir();
      const server = await startMnemo(['-H', dir, '--sync', 'interval=1000']);
      const writers = await Promise.all(Array.from({ length: 4 }, () => connectClient(server.port)));
      // Per key: the versions acknowledged, with when.
      const acknowledged = new Map<string, Array<{ version: number; at: number }>>();
      let stop = false;
      const loops = writers.map(async (client, w) => {
        for (let i = 0; !stop; i++) {
          const key = `w${w}k${i % 50}`;
          const value = valueOf(key, i, 200);
          let reply: string;
          try {
            reply = await client.request(`set ${key} 0 0 ${value.length}\r\n${value}\r\n`);
          } catch {
            return;
          }
          if (reply !== 'STORED\r\n') return;
          const acks = acknowledged.get(key) ?? [];
          acks.push({ version: i, at: performance.now() });
          acknowledged.set(key, acks);
        }
      });
      await new Promise((resolve) => setTimeout(resolve, 300 + Math.random() * 500));
      const killedAt = performance.now();
      await kill9(server);
      stop = true;
      await Promise.all(loops);
      for (const client of writers) client.close();

      const restarted = await startMnemo(['-H', dir]);
      const client = await connectClient(restarted.port);
      try {
        let window = 0;
        for (const [key, acks] of acknowledged) {
          const reply = await client.request(`get ${key}\r\n`, 'END\r\n');
          const found = /#(\d+)\|/.exec(reply);
          const stored = found === null ? -1 : Number(found[1]);
          for (const ack of acks) {
            if (ack.version <= stored) continue;
            lostWrites++;
            window = Math.max(window, killedAt - ack.at);
          }
        }
        windows.push(window);
      } finally {
        client.close();
        await restarted.stop();
      }
    }
    t.diagnostic(`lost ${lostWrites} acknowledged writes in 5 kills; oldest lost write per kill (ms): ${windows.map((w) => w.toFixed(1)).join(', ')}`);
    for (const window of windows) assert.ok(window <= 1000, `lost a write acknowledged ${window} ms before the kill`);
  });

  it('a full disk turns writes into SERVER_ERROR while reads keep working, and writes resume when space returns', async (t) => {
    const mountPoint = smallDisk(t);
    if (mountPoint === null) return;
    const server = await startMnemo(['-H', mountPoint, '--sync', 'always']);
    const client = await connectClient(server.port);
    try {
      const value = valueOf('big', 1, 50_000);
      let stored = 0;
      let reply = '';
      for (; stored < 200; stored++) {
        reply = await client.request(`set big${stored} 0 0 ${value.length}\r\n${value}\r\n`);
        if (reply !== 'STORED\r\n') break;
      }
      // Under --sync always the write that did not reach the disk is never acknowledged: its connection closes.
      assert.ok(stored > 10 && stored < 200, `${stored} stored before the disk filled`);
      assert.equal(reply, '');
      assert.ok(client.closed);
      client.close();

      const next = await connectClient(server.port);
      assert.equal(await next.request(`set more 0 0 ${value.length}\r\n${value}\r\n`), 'SERVER_ERROR out of memory storing object\r\n');
      assert.equal(await next.request('get big0\r\n', 'END\r\n'), `VALUE big0 0 50000\r\n${value}\r\nEND\r\n`);
      const stats = statsOf(await next.request('stats\r\n', 'END\r\n'));
      assert.equal(stats.disk_full, 1);
      assert.ok(stats.disk_write_errors! > 0);

      execFileSync('mount', ['-o', 'remount,size=64m', mountPoint]);
      let accepted = '';
      for (let attempt = 0; attempt < 50 && accepted !== 'STORED\r\n'; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        accepted = await next.request(`set more 0 0 ${value.length}\r\n${value}\r\n`);
      }
      assert.equal(accepted, 'STORED\r\n');
      assert.equal(statsOf(await next.request('stats\r\n', 'END\r\n')).disk_full, 0);
      next.close();
      assert.equal(server.process.exitCode, null);
    } finally {
      client.close();
      await server.stop();
    }
  });

  it('under --sync interval a full disk refuses later writes, and SIGTERM still exits 0', async (t) => {
    const mountPoint = smallDisk(t);
    if (mountPoint === null) return;
    const server = await startMnemo(['-H', mountPoint, '--sync', 'interval=100']);
    const client = await connectClient(server.port);
    const value = valueOf('big', 1, 50_000);
    let reply = '';
    for (let i = 0; i < 400 && reply !== 'SERVER_ERROR out of memory storing object\r\n'; i++) {
      reply = await client.request(`set big${i} 0 0 ${value.length}\r\n${value}\r\n`);
      // Writes are acknowledged before they commit: give a failed commit time to be seen.
      if (i % 20 === 19) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(reply, 'SERVER_ERROR out of memory storing object\r\n');
    assert.match(await client.request('get big0\r\n', 'END\r\n'), /^VALUE big0 0 50000\r\n/);
    client.close();
    server.process.kill('SIGTERM');
    const [code] = (await Promise.race([
      once(server.process, 'exit'),
      new Promise((resolve) => setTimeout(() => resolve(['hung']), 10_000)),
    ])) as [number | string];
    if (code === 'hung') server.process.kill('SIGKILL');
    assert.equal(code, 0);
  });

  it('refuses a missing data dir, one in use, and one of another format version, with exit code 2', async () => {
    const missing = await runMnemo(['-p', '-1', '-H', join(root, 'no-such-dir')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--data-dir: .*no-such-dir is not a directory/);

    const dir = dataDir();
    const server = await startMnemo(['-H', dir]);
    try {
      const second = await runMnemo(['-p', '-1', '-H', dir]);
      assert.equal(second.code, 2);
      assert.match(second.stderr, new RegExp(`--data-dir: in use by another Mnemo \\(pid ${server.process.pid}`));
    } finally {
      await server.stop();
    }

    const old = dataDir();
    const db = open({ path: join(old, 'lmdb'), maxDbs: 4 });
    const meta = db.openDB<string, string>({ name: 'meta', encoding: 'string' });
    meta.putSync('format', '999');
    await db.close();
    const before = readdirSync(join(old, 'lmdb'));
    const refused = await runMnemo(['-p', '-1', '-H', old]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /format version 999/);
    assert.deepEqual(readdirSync(join(old, 'lmdb')), before);
  });

  /**
   * Mnemo on a fresh data dir, killed with SIGKILL and left a zombie: the shell starts
   * it, prints its pid, then becomes sleep, which never reaps it. Then a new Mnemo must
   * start at once on that data dir, and a third be refused while the second runs.
   */
  async function restartOverZombie(env: Record<string, string>): Promise<void> {
    const dir = dataDir();
    const parent = spawn('sh', ['-c', 'PATH="${MNEMO_PATH:-$PATH}" "$0" "$@" & echo $!; exec sleep 60', process.execPath, MNEMO_BIN, '-p', '-1', '-H', dir, '--sync', 'always'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, MNEMO_PATH: env.PATH ?? '' },
    });
    let output = '';
    let stderr = '';
    parent.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    parent.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    let restarted: RunningServer | null = null;
    try {
      const deadline = Date.now() + 10_000;
      while (!/listening on tcp \S+:(\d+)/.test(stderr) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      const port = Number(/listening on tcp \S+:(\d+)/.exec(stderr)?.[1]);
      const pid = Number(output.trim());
      assert.ok(port > 0 && pid > 0, stderr);
      const first = await connectClient(port);
      assert.equal(await first.request('set kept 0 0 4\r\nsafe\r\n'), 'STORED\r\n');
      first.close();
      process.kill(pid, 'SIGKILL');
      const state = (): string => {
        const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
        return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      };
      while (state() !== 'Z' && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.equal(state(), 'Z', 'the killed Mnemo is a zombie');

      restarted = await startMnemo(['-H', dir], env);
      assert.equal(state(), 'Z', 'and still was when the new one took the data dir');
      const client = await connectClient(restarted.port);
      assert.equal(await client.request('get kept\r\n', 'END\r\n'), 'VALUE kept 0 4\r\nsafe\r\nEND\r\n');
      client.close();
      await assert.rejects(startMnemo(['-H', dir], env), new RegExp(`--data-dir: in use by another Mnemo \\(pid ${restarted.process.pid}`));
    } finally {
      await restarted?.stop();
      parent.kill('SIGKILL'); // sleep: the zombie goes to init, which reaps it
    }
  }

  it('restarts at once on the data dir of a Mnemo killed with SIGKILL and not yet reaped (a zombie), and still refuses while a live one holds it', () =>
    restartOverZombie({}));

  it('does the same without flock(1) on the PATH (the pid check that stands in takes a zombie for dead)', () =>
    restartOverZombie({ PATH: '/nonexistent' }));

  it('takes over the lock of a process that is gone', async () => {
    const dir = dataDir();
    writeFileSync(join(dir, 'mnemo.lock'), '999999999\n');
    const server = await startMnemo(['-H', dir]);
    await server.stop();
  });
});

