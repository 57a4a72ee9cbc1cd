/**
 * Sends the same scripted sessions to the real memcached and to Mnemo and
 * compares the replies byte for byte, after blanking the fields that may
 * legitimately differ (CAS values, the version string).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectClient } from './helpers/client.js';
import { SENTINEL, SENTINEL_REPLY, corpusSessions, normalise, play, type Session } from './helpers/differential.js';
import { freePort, startMemcached } from './helpers/memcached.js';
import { startMnemo, type RunningServer } from './helpers/mnemo.js';
import { framed, udpRequest } from './helpers/udp.js';

const sessions = corpusSessions();

/** Sessions built in code: too big or too repetitive for the corpus file. */
function generatedSessions(): Session[] {
  const big = (length: number): string => 'x'.repeat(length);
  return [
    { name: 'largest value that fits -I 1m', send: `set big 0 0 1048514\r\n${big(1048514)}\r\nget big\r\n` },
    { name: 'value one byte too large is swallowed', send: `set big 0 0 1048515\r\n${big(1048515)}\r\nget big\r\n` },
    { name: 'too large set removes the old value', send: `set big 0 0 1\r\nx\r\nset big 0 0 2000000\r\n${big(2000000)}\r\nget big\r\n` },
    { name: 'too large add keeps the old value', send: `set big 0 0 1\r\nx\r\nadd big 0 0 2000000\r\n${big(2000000)}\r\nget big\r\n` },
    { name: 'too large noreply', send: `set big 0 0 2000000 noreply\r\n${big(2000000)}\r\nget big\r\n` },
    { name: 'append past the item limit', send: `set big 0 0 1000000\r\n${big(1000000)}\r\nappend big 0 0 100000\r\n${big(100000)}\r\nget nothing\r\n` },
    { name: 'long get line', send: `get ${Array.from({ length: 600 }, (_, i) => `key${i}`).join(' ')}\r\n` },
    { name: 'long non-get line closes', send: `set ${big(3000)}`, closes: true },
    { name: 'long line that becomes a command', send: `gets ${'k '.repeat(1500)}\r\n` },
  ];
}

describe('differential: Mnemo replies as memcached does', () => {
  let memcached: { port: number; stop(): Promise<void> };
  let mnemo: RunningServer;

  before(async () => {
    memcached = await startMemcached(['-m', '64']);
    mnemo = await startMnemo(['-m', '64']);
  });

  after(async () => {
    await mnemo?.stop();
    await memcached?.stop();
  });

  for (const session of [...sessions, ...generatedSessions()]) {
    it(session.name, async () => {
      const expected = normalise(await play(memcached.port, session));
      const actual = normalise(await play(mnemo.port, session));
      assert.equal(actual, expected);
    });
  }
});

describe('differential: counters', () => {
  it('cmd_meta counts me commands (found or not), not mg/ms/md/ma/mn, as memcached does', async () => {
    const memcached = await startMemcached(['-m', '64']);
    const mnemo = await startMnemo(['-m', '64']);
    const send = 'ms a 1\r\nx\r\nmg a v\r\nma n N0\r\nmd a\r\nms b 1\r\ny\r\nme b\r\nme missing\r\nme\r\nmn\r\n';
    try {
      const counts: string[] = [];
      for (const port of [memcached.port, mnemo.port]) {
        const client = await connectClient(port);
        await client.request(send, 'MN\r\n');
        counts.push(/STAT cmd_meta (\d+)\r\n/.exec(await client.request('stats\r\n', 'END\r\n'))?.[1] ?? 'none');
        client.close();
      }
      assert.equal(counts[0], '2', 'memcached counts the two me commands that parsed');
      assert.equal(counts[1], counts[0]);
    } finally {
      await mnemo.stop();
      await memcached.stop();
    }
  });
});

describe('differential over UDP: the same sessions, one datagram each', () => {
  let memcached: { port: number; stop(): Promise<void> };
  let memcachedUdp: number;
  let mnemo: RunningServer;

  before(async () => {
    memcachedUdp = await freePort();
    memcached = await startMemcached(['-m', '64', '-U', String(memcachedUdp)]);
    mnemo = await startMnemo(['-m', '64', '-U', '-1']);
  });

  after(async () => {
    await mnemo?.stop();
    await memcached?.stop();
  });

  async function playUdp(tcpPort: number, udpPort: number, session: Session): Promise<string> {
    const setup = await connectClient(tcpPort);
    assert.equal(await setup.request('flush_all\r\n'), 'OK\r\n');
    if (session.setup !== undefined) await setup.request(session.setup + SENTINEL, SENTINEL_REPLY);
    setup.close();
    // The sentinel makes every session end with a reply, so a silent one still answers.
    return framed(await udpRequest(udpPort, session.send + SENTINEL));
  }

  for (const session of sessions.filter((s) => !s.closes && !s.settle && s.send.length < 1200)) {
    it(session.name, async () => {
      const expected = normalise(await playUdp(memcached.port, memcachedUdp, session));
      const actual = normalise(await playUdp(mnemo.port, mnemo.udpPort, session));
      assert.equal(actual, expected);
    });
  }
});
