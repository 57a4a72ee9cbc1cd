/**
 * The differential sessions (test/corpus/*.json) and how their replies are played
 * and compared: shared by the tests that hold Mnemo to memcached byte for byte.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connectClient } from './client.js';

/**
 * One scripted session. Deliberate difference: memcached drops the unsent replies
 * of earlier pipelined commands when a get names a key over 250 bytes; Mnemo keeps
 * them, so such sessions send the earlier commands as `setup`, read to completion first.
 */
export interface Session {
  name: string;
  /** Sent and answered before the session proper. */
  setup?: string;
  send: string;
  /** The server hangs up during the session: read until it does. */
  closes?: boolean;
  /** The session leaves the server waiting for bytes: read for a fixed while. */
  settle?: boolean;
}

const corpus = (name: string): Session[] => JSON.parse(readFileSync(new URL(`../corpus/${name}`, import.meta.url), 'utf8')) as Session[];

/** The text and meta sessions of the corpus. */
export function corpusSessions(): Session[] {
  return [...corpus('text-sessions.json'), ...corpus('meta-sessions.json').map((s) => ({ ...s, name: `meta: ${s.name}` }))];
}

/** Ends a session's input: its reply marks where the session's replies end. */
export const SENTINEL = 'set __sentinel__ 0 0 4\r\ndone\r\nget __sentinel__\r\n';
export const SENTINEL_REPLY = 'STORED\r\nVALUE __sentinel__ 0 4\r\ndone\r\nEND\r\n';

/** Blanks what may differ: CAS values, times that can tick over mid-session, the version. */
export function normalise(reply: string): string {
  return reply
    .replace(/(VALUE \S+ \d+ \d+) \d+\r\n/g, '$1 <cas>\r\n')
    .replace(/VERSION [^\r]*\r\n/g, 'VERSION <version>\r\n')
    .replace(/^((?:\[\d+\/\d+\])?(?:HD|VA|EX|NF|NS)\b[^\r]*)\r\n/gm, (line) =>
      line.replace(/ c\d+/g, ' c<cas>').replace(/ t\d+/g, ' t<ttl>').replace(/ l[01](?= |\r)/g, ' l<0|1>'))
    .replace(/^((?:\[\d+\/\d+\])?ME [^\r]*)\r\n/gm, (line) => line.replace(/exp=-?\d+/, 'exp=<n>').replace(/la=\d+/, 'la=<n>').replace(/cas=\d+/, 'cas=<n>'));
}

/** Plays a session on a flushed server; the raw reply (with <closed>/<open> for sessions that end so). */
export async function play(port: number, session: Session): Promise<string> {
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
    if (session.closes || session.settle) {
      client.send(bytes);
      const { data, closed } = await client.readToClose(session.closes ? 3000 : 300);
      return `${data}${closed ? '<closed>' : '<open>'}`;
    }
    client.send(Buffer.concat([bytes, Buffer.from(SENTINEL, 'latin1')]));
    const reply = await client.readUntilEnds(SENTINEL_REPLY);
    return reply.slice(0, reply.length - SENTINEL_REPLY.length);
  } finally {
    client.close();
  }
}
