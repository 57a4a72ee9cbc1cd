/**
 * Sends the same scripted sessions to the real memcached and to Mnemo and
 * compares the replies byte for byte, after blanking the fields that may
 * legitimately differ (CAS values, the version string).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { connectClient } from './helpers/client.js';
import { freePort, startMemcached } from './helpers/memcached.js';
import { startMnemo, type RunningServer } from './helpers/mnemo.js';
import { framed, udpRequest } from './helpers/udp.js';

/**
 * One scripted session. Deliberate difference: memcached drops the unsent replies
 * of earlier pipelined commands when a get names a key over 250 bytes (it
 * releases every stacked response); Mnemo keeps them, so such sessions send the
 * earlier commands as `setup`, read to completion first.
 */
interface Session {
  name: string;
  /** Sent and answered before the session proper. */
  setup?: string;
  send: string;
  /** The server hangs up during the session: read until it does. */
  closes?: boolean;
  /** The session leaves the server waiting for bytes: read for a fixed while. */
  settle?: boolean;
}

const corpus = (name: string): Session[] => JSON.parse(readFileSync(new URL(`./corpus/${name}`, import.meta.url), 'utf8')) as Session[];
const sessions = [...corpus('text-sessions.json'), ...corpus('meta-sessions.json').map((s) => ({ ...s, name: `meta: ${s.name}` }))];

const SENTINEL = 'set __sentinel__ 0 0 4\r\ndone\r\nget __sentinel__\r\n';
const SENTINEL_REPLY = 'STORED\r\nVALUE __sentinel__ 0 4\r\ndone\r\nEND\r\n';

/** Blanks what may differ: CAS values, times that can tick over mid-session, the version. */
function normalise(reply: string): string {
  return reply
    .replace(/(VALUE \S+ \d+ \d+) \d+\r\n/g, '$1 <cas>\r\n')
    .replace(/VERSION [^\r]*\r\n/g, 'VERSION <version>\r\n')
    // l (seconds since the last access) is 0 or 1 depending on whether a second ticked
    // between the setup's store and the mg: the two servers' clocks tick at different instants.
    .replace(/^((?:\[\d+\/\d+\])?(?:HD|VA|EX|NF|NS)\b[^\r]*)\r\n/gm, (line) =>
      line.replace(/ c\d+/g, ' c<cas>').replace(/ t\d+/g, ' t<ttl>').replace(/ l[01](?= |\r)/g, ' l<0|1>'))
    .replace(/^((?:\[\d+\/\d+\])?ME [^\r]*)\r\n/gm, (line) => line.replace(/exp=-?\d+/, 'exp=<n>').replace(/la=\d+/, 'la=<n>').replace(/cas=\d+/, 'cas=<n>'));
}

async function play(port: number, session: Session): Promise<string> {
  const setup = await connectClient(port);
  assert.equal(await setup.request('flush_all\r\n'), 'OK\r\n');
  setup.close();

  const client = await connectClient(port);
  try {
    if (session.setup !== undefined) {
      client.send(session.setup + SENTINEL);
      await client.readUntilEnds(SENTINEL_REPLY);
    }
    const bytes = Buffer.from(session.send, 'latin1');
    if (session.closes) {
      client.send(bytes);
      const { data, closed } = await client.readToClose(3000);
      return `${data}${closed ? '<closed>' : '<open>'}`;
    }
    if (session.settle) {
      client.send(bytes);
      const { data, closed } = await client.readToClose(300);
      return `${data}${closed ? '<closed>' : '<open>'}`;
    }
    client.send(Buffer.concat([bytes, Buffer.from(SENTINEL, 'latin1')]));
    const reply = await client.readUntilEnds(SENTINEL_REPLY);
    return reply.slice(0, reply.length - SENTINEL_REPLY.length);
  } finally {
    client.close();
  }
}

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
