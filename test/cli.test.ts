/** The command line: memcached's flags, clear errors with exit code 2, and the ready line. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { connectClient } from './helpers/client.js';
import { runMnemo, startMnemo } from './helpers/mnemo.js';

async function statsOf(port: number): Promise<Map<string, string>> {
  const client = await connectClient(port);
  const text = await client.request('stats\r\n', 'END\r\n');
  client.close();
  return new Map(text.split('\r\n').filter((l) => l.startsWith('STAT ')).map((l) => {
    const [, name, ...value] = l.split(' ');
    return [name!, value.join(' ')];
  }));
}

describe('command line', () => {
  it('prints help with -h and the version with -V', async () => {
    const help = await runMnemo(['-h']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--memory-limit/);
    const version = await runMnemo(['--version']);
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^mnemo \d+\.\d+\.\d+\n$/);
  });

  it('prints one ready line naming the real port for -p -1', async () => {
    const server = await startMnemo();
    try {
      assert.match(server.stderr(), /^mnemo \S+ listening on tcp 127\.0\.0\.1:\d+\n/);
      assert.notEqual(server.port, 0);
    } finally {
      await server.stop();
    }
  });

  it('applies -m, -c, -t and -I and shows them in stats', async () => {
    const server = await startMnemo(['-m', '16', '--conn-limit=99', '-t8', '-I', '2m']);
    try {
      const stats = await statsOf(server.port);
      assert.equal(stats.get('limit_maxbytes'), String(16 * 1024 * 1024));
      assert.equal(stats.get('max_connections'), '99');
      assert.equal(stats.get('threads'), '8');
      const client = await connectClient(server.port);
      const value = 'x'.repeat(1_500_000);
      assert.equal(await client.request(`set big 0 0 ${value.length}\r\n${value}\r\n`), 'STORED\r\n');
      client.close();
    } finally {
      await server.stop();
    }
  });

  it('accepts the flags memcached tooling always passes', async () => {
    const server = await startMnemo(['-U', '0', '-o', 'relaxed_privileges,modern', '-vv', '-t', '2', '-R', '5']);
    try {
      const stats = await statsOf(server.port);
      assert.equal(stats.get('threads'), '2');
    } finally {
      await server.stop();
    }
  });

  const refusals: Array<[string[], RegExp]> = [
    [['-c', '0'], /-c\/--conn-limit: 0 is out of range/],
    [['-c', '-1'], /-c\/--conn-limit: -1 is out of range/],
    [['-t', '0'], /-t\/--threads: 0 is out of range/],
    [['-p', 'abc'], /-p\/--port: 'abc' is not a number/],
    [['-p', '70000'], /-p\/--port: 70000 is out of range/],
    [['-m', 'lots'], /-m\/--memory-limit: 'lots' is not a number/],
    [['-I', '2x'], /-I\/--max-item-size: '2x' is not a size/],
    [['-I', '512'], /-I\/--max-item-size: cannot be less than 1024 bytes/],
    [['-m', '2', '-I', '2m'], /-I\/--max-item-size: cannot be more than half of -m/],
    [['--no-such-flag'], /Unknown option '--no-such-flag'/],
    [['-B', 'http'], /-B\/--protocol: 'http' is not one of ascii, binary, auto/],
    [['-Z'], /-Z\/--enable-ssl: needs a certificate and its key/],
    [['-Y', '/no/such/file'], /-Y\/--auth-file: cannot read \/no\/such\/file/],
    [['-o', 'bogus'], /-o\/--extended: illegal suboption "bogus"/],
    [['-o', 'idle_timeout=abc'], /-o\/--extended: idle_timeout=abc is not a whole number/],
    [['-o', 'hashpower'], /-o\/--extended: hashpower needs a value/],
    [['-a', '999'], /-a\/--unix-mask: '999' is not an octal mask/],
    [['-u', 'no-such-user-here'], /-u\/--user: can't find the user no-such-user-here/],
    [['stray'], /stray/],
  ];
  for (const [args, message] of refusals) {
    it(`refuses ${args.join(' ')} with one line and exit code 2`, async () => {
      const result = await runMnemo(args);
      assert.equal(result.code, 2);
      assert.match(result.stderr, message);
      assert.equal(result.stderr.trim().split('\n').length, 1);
    });
  }

  it('exits 2 naming the address when it cannot listen', async () => {
    const result = await runMnemo(['-l', 'fooble', '-p', '-1']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /cannot listen on fooble/);
  });

  it('exits 0 on SIGTERM', async () => {
    const server = await startMnemo();
    server.process.kill('SIGTERM');
    const code = await new Promise((resolve) => server.process.once('exit', resolve));
    assert.equal(code, 0);
  });
});
