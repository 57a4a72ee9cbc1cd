/**
 * A client that half-closes (shutdown(SHUT_WR) after its requests, as `nc -N`,
 * `nc -q1` and many scripts do) still gets every reply it is owed, then the
 * server closes its side — whatever the protocol, and also when the replies wait
 * for the disk (--sync always).
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { parseResponses, request, storeExtras } from './helpers/binary.js';
import { connectClient } from './helpers/client.js';
import { startMnemo, type RunningServer } from './helpers/mnemo.js';
import { dataDirs } from './helpers/data-dirs.js';

const dataDir = dataDirs('half-close');

/**
 * Sends bytes, half-closes, and reads until the server ends its side (or the
 * timeout): what a `printf ... | nc -N host port` user sees.
 */
function sendAndHalfClose(port: number, bytes: Buffer, timeoutMs = 5000): Promise<{ data: Buffer; serverEnded: boolean }> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let serverEnded = false;
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => {
      serverEnded = true;
      socket.destroy();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), serverEnded });
    });
    socket.on('connect', () => {
      socket.write(bytes);
      socket.end();
    });
  });
}

const latin1 = (text: string): Buffer => Buffer.from(text, 'latin1');

const modes: Array<{ name: string; args: () => string[] }> = [
  { name: 'memory only', args: () => [] },
  { name: '--sync always', args: () => ['-H', dataDir(), '--sync', 'always'] },
  { name: '--sync interval', args: () => ['-H', dataDir(), '--sync', 'interval=1000'] },
];

for (const mode of modes) {
  describe(`a client that half-closes (${mode.name})`, () => {
    let server: RunningServer;
    before(async () => {
      // -R 2: a pipeline longer than that is run over several turns after the client's FIN.
      server = await startMnemo([...mode.args(), '-R', '2']);
    });
    after(() => server.stop());

    it('gets the text replies to set and get', async () => {
      const { data, serverEnded } = await sendAndHalfClose(server.port, latin1('set t1 0 0 5\r\nhello\r\nget t1\r\n'));
      assert.equal(data.toString('latin1'), 'STORED\r\nVALUE t1 0 5\r\nhello\r\nEND\r\n');
      assert.ok(serverEnded, 'the server closes its side once the replies are written');
    });

    it('gets the meta replies to ms and mg', async () => {
      const { data, serverEnded } = await sendAndHalfClose(server.port, latin1('ms m1 2 T0\r\nhi\r\nmg m1 v\r\nmn\r\n'));
      assert.equal(data.toString('latin1'), 'HD\r\nVA 2\r\nhi\r\nMN\r\n');
      assert.ok(serverEnded);
    });

    it('gets the binary replies to set and getk', async () => {
      const bytes = Buffer.concat([
        request({ opcode: 0x01, key: 'b1', extras: storeExtras(7, 0), value: 'bin', opaque: 1 }),
        request({ opcode: 0x0c, key: 'b1', opaque: 2 }),
      ]);
      const { data, serverEnded } = await sendAndHalfClose(server.port, bytes);
      const [responses, rest] = parseResponses(data);
      assert.equal(rest.length, 0);
      assert.deepEqual(
        responses.map((r) => [r.opcode, r.status, r.opaque, r.key, r.value.toString('latin1')]),
        [
          [0x01, 0, 1, '', ''],
          [0x0c, 0, 2, 'b1', 'bin'],
        ],
      );
      assert.ok(serverEnded);
    });

    it('gets the replies of a pipeline longer than -R, writes among them', async () => {
      let commands = '';
      let replies = '';
      for (let i = 0; i < 30; i++) {
        commands += `set p${i} 0 0 ${String(i).length}\r\n${i}\r\nget p${i}\r\n`;
        replies += `STORED\r\nVALUE p${i} 0 ${String(i).length}\r\n${i}\r\nEND\r\n`;
      }
      const { data, serverEnded } = await sendAndHalfClose(server.port, latin1(commands));
      assert.equal(data.toString('latin1'), replies);
      assert.ok(serverEnded);
    });

    it('gets no reply for an unfinished command after the finished ones, as from memcached', async () => {
      const { data, serverEnded } = await sendAndHalfClose(server.port, latin1('set u1 0 0 1\r\nx\r\nset u2 0 0 10\r\nabc'));
      assert.equal(data.toString('latin1'), 'STORED\r\n');
      assert.ok(serverEnded);
    });

    it('leaves no half-closed connection behind', async () => {
      const client = await connectClient(server.port);
      try {
        // The sockets above close on both sides; poll until the server has seen them all go (no fixed wait).
        let open = -1;
        for (let tries = 0; tries < 100 && open !== 1; tries++) {
          const stats = await client.request('stats\r\n', 'END\r\n');
          open = Number(/STAT curr_connections (\d+)/.exec(stats)![1]);
          if (open !== 1) await new Promise((resolve) => setTimeout(resolve, 50));
        }
        assert.equal(open, 1, 'only the stats connection is open');
      } finally {
        client.close();
      }
    });
  });
}
