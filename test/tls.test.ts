/**
 * TLS as memcached's -Z (with -o ssl_*) and --tls-port, client certificates, start-up
 * errors, and the warning for a listener others can reach without auth or TLS.
 * Certificates are made at test time with openssl.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { connectClient, RawClient } from './helpers/client.js';
import { runMnemo, startMnemo, type RunningServer } from './helpers/mnemo.js';

const dir = mkdtempSync(join(tmpdir(), 'mnemo-tls-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string): string => join(dir, name);

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A key and a certificate signed by the test CA (or self-signed, for a stranger). */
function issue(name: string, subject: string, extensions: string, signer: 'ca' | 'self'): void {
  writeFileSync(file(`${name}.ext`), extensions);
  openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
  const sign = signer === 'ca' ? ['-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial'] : ['-signkey', `${name}.key`];
  openssl('x509', '-req', '-in', `${name}.csr`, ...sign, '-days', '2', '-out', `${name}.pem`, '-extfile', `${name}.ext`);
}

before(() => {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Mnemo test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  issue('server', '/CN=localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n', 'ca');
  issue('client', '/CN=trusted client', 'extendedKeyUsage=clientAuth\n', 'ca');
  issue('stranger', '/CN=stranger', 'extendedKeyUsage=clientAuth\n', 'self');
  writeFileSync(file('junk.pem'), 'not a certificate\n');
  writeFileSync(file('passwords'), 'alice:wonderland\n');
});

const SET_GET = 'set a 0 0 1\r\nx\r\nget a\r\n';
const STORED_VALUE = 'STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n';

/** The port of the ready line's "tls H:P" entry. */
function tlsPort(server: RunningServer): number {
  const match = /listening on .*\btls [^\s,]+:(\d+)/.exec(server.stderr());
  assert.ok(match, `no tls listener in: ${server.stderr()}`);
  return Number(match[1]);
}

/** A Node TLS client that trusts the test CA; cert names the client certificate to present. */
async function tlsClient(port: number, cert?: 'client' | 'stranger'): Promise<RawClient> {
  const socket = tlsConnect({
    host: '127.0.0.1',
    port,
    servername: 'localhost',
    ca: readFileSync(file('ca.pem')),
    ...(cert === undefined ? {} : { cert: readFileSync(file(`${cert}.pem`)), key: readFileSync(file(`${cert}.key`)) }),
  });
  const client = new RawClient(socket);
  await Promise.race([once(socket, 'secureConnect'), once(socket, 'close')]);
  return client;
}

/** Sends set/get; resolves with what came back before the reply was complete or the socket closed. */
async function setGet(client: RawClient): Promise<string> {
  client.send(SET_GET);
  const reply = await client.readUntil((got) => got.toString('latin1').endsWith('END\r\n'), 5000).catch((error: Error) => error.message);
  client.close();
  return typeof reply === 'string' ? reply : reply.toString('latin1');
}

/** `openssl s_client -quiet`: sends input, resolves with its output once it holds `until` (or after 5 s). */
async function sClient(port: number, input: string, until: string): Promise<string> {
  const child = spawn('openssl', ['s_client', '-quiet', '-connect', `127.0.0.1:${port}`], { stdio: ['pipe', 'pipe', 'ignore'] });
  let out = '';
  const done = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 5000);
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString('latin1');
      if (out.includes(until)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  child.stdin.end(input);
  await done;
  if (child.exitCode === null) {
    child.kill();
    await once(child, 'exit');
  }
  return out;
}

/** A client speaking plain text to a TLS port: no memcached reply, and the server hangs up. */
async function assertPlainRefused(port: number): Promise<void> {
  const plain = await connectClient(port);
  plain.send('version\r\n');
  const { data, closed } = await plain.readToClose(3000);
  plain.close();
  assert.equal(closed, true, 'the server should drop a plain-text client on a TLS port');
  assert.doesNotMatch(data, /VERSION|ERROR/);
}

describe('TLS with -Z on the -p listener', () => {
  let server: RunningServer;
  const portFile = file('ports');
  before(async () => {
    server = await startMnemo(['-Z', '-o', `ssl_chain_cert=${file('server.pem')},ssl_key=${file('server.key')}`], {
      MEMCACHED_PORT_FILENAME: portFile,
    });
  });
  after(() => server.stop());

  it('names the listener tls in the ready line and TCP in the port file', () => {
    assert.match(server.stderr(), /listening on tls 127\.0\.0\.1:\d+\n/);
    assert.doesNotMatch(server.stderr(), /listening on tcp/);
    assert.equal(readFileSync(portFile, 'utf8'), `TCP INET: ${tlsPort(server)}\n`);
  });

  it('serves set/get to openssl s_client', async () => {
    const out = await sClient(tlsPort(server), SET_GET, 'END\r\n');
    assert.equal(out, STORED_VALUE);
  });

  it('serves set/get to a Node TLS client that verifies the server certificate', async () => {
    const client = await tlsClient(tlsPort(server));
    assert.equal((client.socket as import('node:tls').TLSSocket).authorized, true);
    assert.equal(await setGet(client), STORED_VALUE);
  });

  it('drops a plain-text client and keeps serving TLS clients', async () => {
    await assertPlainRefused(tlsPort(server));
    const client = await tlsClient(tlsPort(server));
    client.send('version\r\n');
    assert.match(await client.readUntilEnds('\r\n'), /^VERSION 1\.6\.18-mnemo-/);
    client.close();
    assert.equal(server.process.exitCode, null);
  });
});

describe('TLS and -c', () => {
  it('counts handshakes in progress against -c and refuses sockets past it', async () => {
    const server = await startMnemo(['-c', '3', '-Z', '--tls-cert', file('server.pem'), '--tls-key', file('server.key')]);
    const idle: RawClient[] = [];
    try {
      // Three sockets that never start a handshake fill the limit; a fourth is dropped at once.
      for (let i = 0; i < 3; i++) idle.push(await connectClient(tlsPort(server)));
      const extra = await connectClient(tlsPort(server));
      assert.equal((await extra.readToClose(3000)).closed, true);
      extra.close();
      const stats = await connectClient(tlsPort(server));
      assert.equal((await stats.readToClose(3000)).closed, true);
      stats.close();
      // Once they go, a TLS client gets in.
      for (const socket of idle) socket.close();
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(await setGet(await tlsClient(tlsPort(server))), STORED_VALUE);
      const client = await tlsClient(tlsPort(server));
      client.send('stats\r\n');
      assert.match(await client.readUntilEnds('END\r\n'), /STAT rejected_connections 2\r\n/);
      client.close();
    } finally {
      for (const socket of idle) socket.close();
      await server.stop();
    }
  });
});

describe('TLS on --tls-port next to plain -p', () => {
  it('serves both listeners from one cache', async () => {
    const portFile = file('ports-both');
    const server = await startMnemo(
      ['--tls-port', '-1', '--tls-cert', file('server.pem'), '--tls-key', file('server.key')],
      { MEMCACHED_PORT_FILENAME: portFile },
    );
    try {
      assert.match(server.stderr(), /listening on tcp 127\.0\.0\.1:\d+, tls 127\.0\.0\.1:\d+\n/);
      const secure = tlsPort(server);
      assert.notEqual(secure, server.port);
      assert.equal(readFileSync(portFile, 'utf8'), `TCP INET: ${server.port}\nTLS INET: ${secure}\n`);
      const plain = await connectClient(server.port);
      assert.equal(await plain.request('set shared 0 0 5\r\nhello\r\n'), 'STORED\r\n');
      const tls = await tlsClient(secure);
      assert.equal(await tls.request('get shared\r\n', 'END\r\n'), 'VALUE shared 0 5\r\nhello\r\nEND\r\n');
      assert.equal(await tls.request('set back 0 0 2\r\nok\r\n'), 'STORED\r\n');
      assert.equal(await plain.request('get back\r\n', 'END\r\n'), 'VALUE back 0 2\r\nok\r\nEND\r\n');
      tls.close();
      plain.close();
      await assertPlainRefused(secure);
      assert.equal(await sClient(secure, SET_GET, 'END\r\n'), STORED_VALUE);
    } finally {
      await server.stop();
    }
  });
});

describe('client certificates', () => {
  it('ssl_verify_mode=2 refuses a client without a certificate or with an untrusted one', async () => {
    const server = await startMnemo(['-Z', '-o',
      `ssl_chain_cert=${file('server.pem')},ssl_key=${file('server.key')},ssl_ca_cert=${file('ca.pem')},ssl_verify_mode=2`]);
    try {
      const port = tlsPort(server);
      assert.doesNotMatch(await setGet(await tlsClient(port)), /STORED/);
      assert.doesNotMatch(await setGet(await tlsClient(port, 'stranger')), /STORED/);
      assert.equal(await setGet(await tlsClient(port, 'client')), STORED_VALUE);
    } finally {
      await server.stop();
    }
  });

  it('--tls-ca requires a CA-signed client certificate by default', async () => {
    const server = await startMnemo(['--tls-port', '-1', '--tls-cert', file('server.pem'), '--tls-key', file('server.key'),
      '--tls-ca', file('ca.pem')]);
    try {
      const port = tlsPort(server);
      assert.doesNotMatch(await setGet(await tlsClient(port)), /STORED/);
      assert.equal(await setGet(await tlsClient(port, 'client')), STORED_VALUE);
    } finally {
      await server.stop();
    }
  });

  it('ssl_verify_mode=1 lets a client in without a certificate but not with an untrusted one', async () => {
    const server = await startMnemo(['-Z', '--tls-cert', file('server.pem'), '--tls-key', file('server.key'),
      '--tls-ca', file('ca.pem'), '-o', 'ssl_verify_mode=1']);
    try {
      const port = tlsPort(server);
      assert.equal(await setGet(await tlsClient(port)), STORED_VALUE);
      assert.equal(await setGet(await tlsClient(port, 'client')), STORED_VALUE);
      assert.doesNotMatch(await setGet(await tlsClient(port, 'stranger')), /STORED/);
    } finally {
      await server.stop();
    }
  });
});

describe('TLS start-up errors', () => {
  const cases: Array<[string, () => string[], RegExp]> = [
    ['-Z without a certificate', () => ['-Z'], /^mnemo: -Z\/--enable-ssl: needs a certificate and its key/],
    ['a missing ssl_chain_cert', () => ['-Z', '-o', `ssl_chain_cert=${file('nope.pem')},ssl_key=${file('server.key')}`],
      /^mnemo: -o ssl_chain_cert: cannot read .*nope\.pem/],
    ['a missing --tls-key', () => ['--tls-port', '-1', '--tls-cert', file('server.pem'), '--tls-key', file('nope.key')],
      /^mnemo: --tls-key: cannot read .*nope\.key/],
    ['a certificate that is not one', () => ['-Z', '--tls-cert', file('junk.pem'), '--tls-key', file('server.key')],
      /^mnemo: --tls-cert: .*junk\.pem is not a PEM certificate/],
    ['a key that does not match', () => ['-Z', '--tls-cert', file('server.pem'), '--tls-key', file('client.key')],
      /^mnemo: --tls-key: .*client\.key does not match the certificate/],
    ['--tls-cert without -Z or --tls-port', () => ['--tls-cert', file('server.pem')], /^mnemo: --tls-cert: only with -Z/],
  ];
  for (const [name, args, message] of cases) {
    it(`exits 2 with one line for ${name}`, async () => {
      const result = await runMnemo(['-p', '-1', ...args()]);
      assert.equal(result.code, 2);
      assert.match(result.stderr, message);
      assert.equal(result.stderr.trim().split('\n').length, 1);
    });
  }
});

describe('the non-loopback warning', () => {
  const WARNING = /non-loopback address without authentication or TLS/;
  const startAndRead = async (args: string[]): Promise<string> => {
    const server = await startMnemo(args);
    await server.stop();
    return server.stderr();
  };

  it('warns once with -l 0.0.0.0 and nothing to keep strangers out', async () => {
    const stderr = await startAndRead(['-l', '0.0.0.0']);
    assert.equal(stderr.split('\n').filter((line) => WARNING.test(line)).length, 1);
    assert.match(stderr, /"level":40/);
    assert.match(stderr, /"tcp 0\.0\.0\.0:\d+"/);
  });

  it('stays quiet on loopback, with -S, and with -Z', async () => {
    assert.doesNotMatch(await startAndRead([]), WARNING);
    assert.doesNotMatch(await startAndRead(['-l', '0.0.0.0', '-S', '--sasl-pwdb', file('passwords')]), WARNING);
    assert.doesNotMatch(await startAndRead(['-l', '0.0.0.0', '-Z', '--tls-cert', file('server.pem'), '--tls-key', file('server.key')]), WARNING);
  });
});
