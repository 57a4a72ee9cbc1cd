/** SASL PLAIN over the binary protocol (-S) and memcached's ASCII authentication (-Y). */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import memjs from 'memjs';
import { parseResponses, request } from './helpers/binary.js';
import { connectClient } from './helpers/client.js';
import { startMemcached } from './helpers/memcached.js';
import { runMnemo, startMnemo } from './helpers/mnemo.js';

const dir = mkdtempSync(join(tmpdir(), 'mnemo-auth-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const passwords = join(dir, 'passwords');
writeFileSync(passwords, 'alice:wonderland\nbob:builder\n');

function memjsClient(port: number, password: string): memjs.Client {
  return memjs.Client.create(`127.0.0.1:${port}`, {
    username: 'alice', password, timeout: 1, retries: 0, logger: { log: () => {} },
  });
}

describe('SASL (-S)', () => {
  it('lets memjs in with the right password and refuses the wrong one', async () => {
    const server = await startMnemo(['-S', '--sasl-pwdb', passwords]);
    const good = memjsClient(server.port, 'wonderland');
    const bad = memjsClient(server.port, 'guess');
    try {
      assert.equal(await good.set('k', 'v', {}), true);
      assert.equal((await good.get('k')).value?.toString(), 'v');
      assert.equal((await good.increment('n', 5, { initial: 10 })).value, 10);
      await assert.rejects(bad.get('k'));
    } finally {
      good.close();
      bad.close();
      await server.stop();
    }
  });

  it('answers binary commands before authentication with 0x20 and hangs up; text is not spoken', async () => {
    const server = await startMnemo(['-S'], { MEMCACHED_SASL_PWDB: passwords });
    try {
      const binary = await connectClient(server.port);
      binary.send(request({ opcode: 0x00, key: 'k' }));
      const { data, closed } = await binary.readToClose();
      const [responses] = parseResponses(Buffer.from(data, 'latin1'));
      assert.equal(responses[0]!.status, 0x20);
      assert.equal(responses[0]!.value.toString(), 'Auth failure.');
      assert.ok(closed);

      const mechs = await connectClient(server.port);
      mechs.send(request({ opcode: 0x20 }));
      const [list] = parseResponses(await mechs.readUntil((got) => parseResponses(got)[0].length === 1))[0];
      assert.equal(list!.value.toString(), 'PLAIN');
      mechs.send(request({ opcode: 0x21, key: 'PLAIN', value: '\0bob\0builder' }));
      const [auth] = parseResponses(await mechs.readUntil((got) => parseResponses(got)[0].length === 1))[0];
      assert.equal(auth!.status, 0);
      assert.equal(auth!.value.toString(), 'Authenticated');
      mechs.close();

      const text = await connectClient(server.port);
      text.send('get k\r\n'.repeat(4)); // a full header's worth of bytes that are not a binary request
      assert.ok((await text.readToClose()).closed);
    } finally {
      await server.stop();
    }
  });

  it('stats settings says auth_enabled_sasl yes', async () => {
    const server = await startMnemo(['-S', '--sasl-pwdb', passwords]);
    try {
      const client = await connectClient(server.port);
      client.send(request({ opcode: 0x21, key: 'PLAIN', value: '\0bob\0builder' }));
      const [auth] = parseResponses(await client.readUntil((got) => parseResponses(got)[0].length === 1))[0];
      assert.equal(auth!.status, 0);
      client.send(request({ opcode: 0x10, key: 'settings' }));
      // The reply is one response per setting, ended by one with an empty key.
      const bytes = await client.readUntil((got) => parseResponses(got)[0].some((r) => r.key === ''));
      const settings = new Map(parseResponses(bytes)[0].map((r) => [r.key, r.value.toString()]));
      assert.equal(settings.get('auth_enabled_sasl'), 'yes');
      assert.equal(settings.get('auth_enabled_ascii'), 'no');
      client.close();
    } finally {
      await server.stop();
    }
  });

  it('refuses -S without a password file, and with -B ascii', async () => {
    const missing = await runMnemo(['-S', '-p', '-1'], 5000);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /needs --sasl-pwdb/);
    const ascii = await runMnemo(['-S', '--sasl-pwdb', passwords, '-B', 'ascii', '-p', '-1']);
    assert.equal(ascii.code, 2);
    assert.match(ascii.stderr, /cannot allow the ASCII protocol/);
  });
});

describe('ASCII authentication (-Y)', () => {
  // One request at a time: memcached keeps only the last error reply of a pipelined batch here.
  const steps: Array<[string, string]> = [
    ['get k\r\n', 'CLIENT_ERROR unauthenticated\r\n'],
    ['set k 0 0 1\r\nx\r\n', 'CLIENT_ERROR bad authentication token format\r\n'],
    ['set auth 0 0 10\r\nalice nope\r\n', 'CLIENT_ERROR authentication failure\r\n'],
    ['set auth 0 0 10\r\nalicewrong\r\n', 'CLIENT_ERROR bad authentication token format\r\n'],
    ['set auth 0 0 16\r\nalice wonderland\r\n', 'STORED\r\n'],
    ['set k 0 0 1\r\nx\r\nget k\r\n', 'STORED\r\nVALUE k 0 1\r\nx\r\nEND\r\n'],
  ];

  it('answers as memcached does', async () => {
    const memcached = await startMemcached(['-Y', passwords]);
    const mnemo = await startMnemo(['-Y', passwords]);
    try {
      for (const port of [memcached.port, mnemo.port]) {
        const client = await connectClient(port);
        for (const [send, expected] of steps) assert.equal(await client.request(send, expected), expected, `${port}: ${send}`);
        client.close();
      }
    } finally {
      await mnemo.stop();
      await memcached.stop();
    }
  });

  it('stats settings names the -Y file in auth_enabled_ascii, as memcached does', async () => {
    const memcached = await startMemcached(['-Y', passwords]);
    const mnemo = await startMnemo(['-Y', passwords]);
    try {
      const lines: string[] = [];
      for (const port of [memcached.port, mnemo.port]) {
        const client = await connectClient(port);
        await client.request('set auth 0 0 16\r\nalice wonderland\r\n', 'STORED\r\n');
        const settings = await client.request('stats settings\r\n', 'END\r\n');
        lines.push(settings.split('\r\n').filter((line) => line.startsWith('STAT auth_enabled_')).join('\n'));
        client.close();
      }
      assert.equal(lines[1], `STAT auth_enabled_sasl no\nSTAT auth_enabled_ascii ${passwords}`);
      assert.equal(lines[1], lines[0]);
    } finally {
      await mnemo.stop();
      await memcached.stop();
    }
  });
});
