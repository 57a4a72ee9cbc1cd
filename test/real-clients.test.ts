/** Real memcached clients against Mnemo: libmemcached's conformance suite and tools, and pymemcache. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import Memcached from 'memcached';
import memjs from 'memjs';
import { startMnemo, type RunningServer } from './helpers/mnemo.js';

const run = promisify(execFile);
/** Debian's Python modules belong to Debian's interpreter, not to one earlier in PATH. */
const PYTHON = '/usr/bin/python3';

let server: RunningServer;
let dir: string;

before(async () => {
  server = await startMnemo();
  dir = await mkdtemp(join(tmpdir(), 'mnemo-clients-'));
});

after(async () => {
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('real clients', () => {
  for (const [mode, flag] of [['ASCII', '-a'], ['binary', '-b']]) {
    it(`passes every ${mode} test of memccapable`, async () => {
      const { stdout } = await run('memccapable', ['-h', '127.0.0.1', '-p', String(server.port), flag!], { timeout: 60_000 });
      assert.doesNotMatch(stdout, /\[(fail|FAIL)\]/);
      assert.match(stdout, /All tests passed/);
    });
  }

  it('works with python-binary-memcached and pylibmc (text and binary)', async () => {
    const script = `
import sys, bmemcached, pylibmc
port = sys.argv[1]
b = bmemcached.Client(['127.0.0.1:' + port])
assert b.set('bm:k', 'v1', 60) and b.get('bm:k') == 'v1' and b.set('bm:n', 1) and b.incr('bm:n', 2) == 3
assert b.add('bm:k', 'x') is False and b.replace('bm:k', 'v2') and b.get('bm:k') == 'v2'
assert b.delete('bm:k') and b.get('bm:k') is None
for binary in (False, True):
    p = pylibmc.Client(['127.0.0.1:' + port], binary=binary, behaviors={'tcp_nodelay': True, 'ketama': True, 'cas': True})
    p.set('pl:k', 'v2', time=60)
    assert p.get('pl:k') == 'v2' and p.get_multi(['pl:k', 'nope']) == {'pl:k': 'v2'} and p.gets('pl:k')[1] and p.touch('pl:k', 30)
    p.set('pl:n', 5); assert p.incr('pl:n', 2) == 7 and p.decr('pl:n', 10) == 0
    value, cas = p.gets('pl:k'); assert p.cas('pl:k', 'v3', cas) and not p.cas('pl:k', 'v4', cas)
    assert p.append('pl:k', '!') and p.get('pl:k') == 'v3!' and p.delete('pl:k')
print('ok')
`;
    const { stdout } = await run(PYTHON, ['-c', script, String(server.port)]);
    assert.equal(stdout.trim(), 'ok');
  });

  it('keeps PHP sessions with php-memcached, in its default binary mode and in text mode', async () => {
    const script = join(dir, 'session.php');
    await writeFile(script, `<?php
ini_set('session.use_cookies', '0'); ini_set('session.use_only_cookies', '0'); ini_set('session.cache_limiter', '');
[$_, $sid, $mode] = $argv;
session_id($sid);
if (!session_start()) { fwrite(STDERR, "session_start failed\\n"); exit(1); }
if ($mode === 'write') { $_SESSION['user'] = 'alice'; $_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1; }
echo json_encode($_SESSION), "\\n";
session_write_close();
`);
    for (const binary of ['1', '0']) {
      const sid = `mnemo0session0id0${binary}`;
      let last = '';
      for (const mode of ['write', 'write', 'read']) {
        const { stdout } = await run('php', [
          '-d', 'session.save_handler=memcached', '-d', `session.save_path=127.0.0.1:${server.port}`,
          '-d', `memcached.sess_binary_protocol=${binary}`, script, sid, mode,
        ]);
        last = stdout.trim();
      }
      assert.deepEqual(JSON.parse(last), { user: 'alice', n: 2 }, `binary=${binary}`);
    }
  });

  it('works with the php Memcached class in both protocols', async () => {
    const script = join(dir, 'memc.php');
    await writeFile(script, `<?php
$m = new Memcached();
$m->setOption(Memcached::OPT_BINARY_PROTOCOL, (bool)$argv[2]);
$m->setOption(Memcached::OPT_COMPRESSION, false);
$m->addServer('127.0.0.1', (int)$argv[1]);
$ok = $m->set('php:k', ['a' => 1], 60) && $m->get('php:k') === ['a' => 1];
$m->set('php:s', 'x'); $ok = $ok && $m->append('php:s', 'y') && $m->get('php:s') === 'xy';
$ok = $ok && count($m->getMulti(['php:k', 'php:s', 'php:none'])) === 2;
$v = $m->get('php:s', null, Memcached::GET_EXTENDED); $ok = $ok && $m->cas($v['cas'], 'php:s', 'z');
if ($argv[2]) { $m->delete('php:ctr'); $ok = $ok && $m->increment('php:ctr', 1, 10, 60) === 10; }
$ok = $ok && $m->touch('php:s', 100) && $m->delete('php:s') && $m->get('php:s') === false && $m->getResultCode() === Memcached::RES_NOTFOUND;
echo $ok ? 'ok' : 'fail', "\\n";
`);
    for (const binary of ['0', '1']) {
      const { stdout } = await run('php', [script, String(server.port), binary]);
      assert.equal(stdout.trim(), 'ok', `binary=${binary}`);
    }
  });

  it('works with memjs (binary protocol)', async () => {
    const client = memjs.Client.create(`127.0.0.1:${server.port}`, { timeout: 1, retries: 0, logger: { log: () => {} } });
    try {
      await client.set('mj:key', 'hello-binary', { expires: 60 });
      const { value, flags } = await client.get('mj:key');
      assert.equal(value?.toString(), 'hello-binary');
      assert.equal(flags?.length, 4);
      assert.equal(await client.add('mj:key', 'x', {}), false);
      await client.delete('mj:ctr');
      assert.equal((await client.increment('mj:ctr', 1, { initial: 100 })).value, 100);
      assert.equal((await client.increment('mj:ctr', 10, {})).value, 110);
      assert.equal(await client.append('mj:key', '!'), true);
      assert.equal((await client.get('mj:key')).value?.toString(), 'hello-binary!');
      assert.equal(await client.touch('mj:key', 120), true);
      assert.equal(await client.delete('mj:key'), true);
      assert.equal((await client.get('mj:key')).value, null);
    } finally {
      client.close();
    }
  });

  it('round-trips a file with memccp and memccat', async () => {
    const servers = `--servers=127.0.0.1:${server.port}`;
    const file = join(dir, 'greeting.txt');
    await writeFile(file, 'hello from a file\n');
    await run('memccp', [servers, '--set', '--expire=100', '--flag=42', file]);
    const plain = await run('memccat', [servers, 'greeting.txt']);
    assert.equal(plain.stdout, 'hello from a file\n\n'); // memccat adds a newline
    const withFlags = await run('memccat', [servers, '--flag', 'greeting.txt']);
    assert.match(withFlags.stdout, /^42\n/);
    await run('memcexist', [servers, 'greeting.txt']);
    await run('memcrm', [servers, 'greeting.txt']);
    await assert.rejects(run('memccat', [servers, 'greeting.txt']));
    await run('memcping', [servers]);
    const stat = await run('memcstat', [servers]);
    assert.match(stat.stdout, /curr_connections/);
  });

  it('works with pymemcache', async () => {
    const script = `
import sys
from pymemcache.client.base import Client
c = Client(('127.0.0.1', int(sys.argv[1])), connect_timeout=2, timeout=2)
assert c.set('py:key', b'hello', expire=60)
assert c.get('py:key') == b'hello'
assert c.add('py:key', b'x', noreply=False) is False
c.set('py:ctr', b'10'); assert c.incr('py:ctr', 5) == 15 and c.decr('py:ctr', 20) == 0
_, cas = c.gets('py:key'); assert c.cas('py:key', b'v2', cas) is True and c.cas('py:key', b'v3', cas) is False
m = c.get_many(['py:key', 'py:ctr', 'py:missing']); assert m['py:key'] == b'v2' and 'py:missing' not in m
assert m['py:ctr'] == b'0 ', m['py:ctr']
assert c.append('py:key', b'!') and c.get('py:key') == b'v2!'
assert c.prepend('py:key', b'<') and c.get('py:key') == b'<v2!'
assert c.replace('py:key', b'r') and c.get('py:key') == b'r'
assert c.touch('py:key', 100) and c.delete('py:key') and c.get('py:key') is None
assert c.set_many({'a': b'1', 'b': b'2'}) == [] and c.get_many(['a', 'b']) == {'a': b'1', 'b': b'2'}
assert int(c.stats()[b'curr_items']) >= 2
assert c.flush_all() and c.get('a') is None
print('ok', c.version().decode())
`;
    const { stdout } = await run(PYTHON, ['-c', script, String(server.port)]);
    assert.match(stdout, /^ok 1\.6\.18-mnemo-/);
  });

  it('works with the npm memcached client (text protocol)', async () => {
    const client = new Memcached(`127.0.0.1:${server.port}`, { retries: 0, timeout: 2000 });
    const call = <T>(fn: (done: (error: unknown, result: T) => void) => void): Promise<T> =>
      new Promise((resolve, reject) => fn((error, result) => (error ? reject(error) : resolve(result))));
    try {
      assert.equal(await call<boolean>((done) => client.set('npm:key', 'hello-text', 60, done)), true);
      assert.equal(await call<string>((done) => client.get('npm:key', done)), 'hello-text');
      const gets = await call<{ cas: string }>((done) => client.gets('npm:key', done));
      assert.equal(await call<boolean>((done) => client.cas('npm:key', 'v2', gets.cas, 60, done)), true);
      assert.equal(await call<boolean>((done) => client.cas('npm:key', 'v3', gets.cas, 60, done)), false);
      const many = await call<Record<string, string>>((done) => client.getMulti(['npm:key', 'npm:none'], done));
      assert.deepEqual(many, { 'npm:key': 'v2' });
      await call((done) => client.set('npm:n', 5, 60, done));
      assert.equal(await call<number | boolean>((done) => client.incr('npm:n', 3, done)), 8);
      assert.equal(await call<number | boolean>((done) => client.decr('npm:n', 10, done)), 0);
      await call((done) => client.set('npm:obj', { a: 1 }, 60, done));
      assert.deepEqual(await call((done) => client.get('npm:obj', done)), { a: 1 });
      await assert.rejects(call((done) => client.add('npm:key', 'x', 60, done)), /Item is not stored/);
      await call((done) => client.touch('npm:key', 100, (error: unknown) => done(error, true)));
      assert.equal(await call<boolean>((done) => client.del('npm:key', (error: unknown) => done(error, true))), true);
      // This client reads the last x.y.z of "1.6.18-mnemo-x.y.z": Mnemo's own version.
      const version = await call<Array<{ version: string }>>((done) => client.version(done));
      assert.equal(version[0]!.version, JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')).version);
    } finally {
      client.end();
    }
  });
});
