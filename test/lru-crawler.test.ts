/**
 * memcached's LRU crawler on the slab store: `lru_crawler crawl` reclaims the
 * expired items of the classes asked for, in the background, and counts them;
 * `lru_crawler metadump` lists what lives, streamed to the client; the
 * autocrawl (with the LRU maintainer, memcached 1.6's default) reclaims expired
 * items without a get on memcached's schedule, and nothing does under -o no_modern. Time moves
 * with `debugtime` (--test-clock), never with the wall clock.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { connectClient, statLines, type RawClient } from './helpers/client.js';
import { runMnemo, startMnemo, withServer, type RunningServer } from './helpers/mnemo.js';

/** Waits (on the server, not on a timer) until no requested crawl runs. */
async function crawlDone(client: RawClient): Promise<Map<string, string>> {
  for (let i = 0; i < 500; i++) {
    const stats = await statLines(client);
    if (stats.get('lru_crawler_running') === '0') return stats;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error('the crawl never ended');
}

function sets(prefix: string, count: number, exptime: number, value = 'ok'): string {
  let text = '';
  for (let i = 0; i < count; i++) text += `set ${prefix}${i} 0 ${exptime} ${value.length} noreply\r\n${value}\r\n`;
  return text;
}

describe('lru_crawler crawl and metadump (no autocrawl: -o no_lru_maintainer)', () => {
  let server: RunningServer;
  let client: RawClient;

  before(async () => {
    server = await startMnemo(['--test-clock', '-o', 'no_lru_maintainer']);
    client = await connectClient(server.port);
  });

  after(async () => {
    client.close();
    await server.stop();
  });

  it('reclaims the expired items of the classes asked for, and counts them', async () => {
    const big = 'x'.repeat(500);
    await client.request(`${sets('im', 20, 0)}${sets('sh', 20, 10)}${sets('bg', 5, 10, big)}version\r\n`, '\r\n');
    assert.equal(await client.request('debugtime 11\r\n'), 'OK\r\n');
    const before = await statLines(client);
    // Nothing reclaims them without a get or a crawl here.
    assert.equal(before.get('curr_items'), '45');
    assert.equal(before.get('crawler_reclaimed'), '0');
    const bigClass = /items:(\d+):number 5\r\n/.exec(await client.request('stats items\r\n', 'END\r\n'))![1]!;
    assert.notEqual(bigClass, '1');

    assert.equal(await client.request('lru_crawler crawl 1\r\n'), 'OK\r\n');
    const after = await crawlDone(client);
    assert.equal(after.get('curr_items'), '25', 'the 20 expired items of class 1 went, the 5 of the other class stayed');
    assert.equal(after.get('crawler_reclaimed'), '20');
    assert.equal(after.get('crawler_items_checked'), '40');
    assert.equal(Number(after.get('expired_unfetched')) - Number(before.get('expired_unfetched')), 20);
    assert.equal(Number(after.get('lru_crawler_starts')) - Number(before.get('lru_crawler_starts')), 1);
    const items = await statLines(client, 'items');
    assert.equal(items.get('items:1:crawler_reclaimed'), '20');
    assert.equal(items.get('items:1:crawler_items_checked'), '40');
    assert.equal(items.get(`items:${bigClass}:crawler_reclaimed`), '0');
    assert.equal((await statLines(client, 'slabs')).get('1:used_chunks'), '20');

    assert.equal(await client.request(`lru_crawler crawl 1,${bigClass}\r\n`), 'OK\r\n');
    const last = await crawlDone(client);
    assert.equal(last.get('curr_items'), '20');
    assert.equal(last.get('crawler_reclaimed'), '25');
    // The immortal ones of class 1 are looked at again.
    assert.equal(last.get('crawler_items_checked'), '65');
  });

  it('lists what lives with metadump, in memcached line format, then runs the commands after it', async () => {
    await client.request('flush_all\r\n');
    await client.request(`${sets('live', 3, 0)}${sets('dies', 3, 5)}set a/b:c%\xe9 0 100 1\r\nz\r\nget live0\r\n`, 'END\r\n');
    await client.request('debugtime 6\r\n');
    const dump = await client.request('lru_crawler metadump all\r\nget live1\r\n', 'END\r\nVALUE live1 0 2\r\nok\r\nEND\r\n');
    const lines = dump.split('\n');
    const listed = lines.filter((line) => line.startsWith('key='));
    assert.equal(listed.length, 4, dump);
    assert.match(dump, /^key=live0 exp=-1 la=\d+ cas=\d+ fetch=yes cls=1 size=66$/m);
    assert.match(dump, /^key=live1 exp=-1 la=\d+ cas=\d+ fetch=no cls=1 size=66$/m);
    // memcached's uriencode: every byte but letters, digits and -._~, as %XX of the byte.
    assert.match(dump, /^key=a%2Fb%3Ac%25%E9 exp=\d+ la=\d+ cas=\d+ fetch=no cls=1 size=67$/m);
    assert.doesNotMatch(dump, /key=dies/);
    assert.ok(dump.endsWith('END\r\nVALUE live1 0 2\r\nok\r\nEND\r\n'), dump);

    const hash = await client.request('lru_crawler metadump hash\r\n', 'END\r\n');
    assert.equal(hash.split('\n').filter((line) => line.startsWith('key=')).length, 4);
    assert.equal(await client.request('lru_crawler metadump 2\r\n'), 'END\r\n');
    assert.equal(
      await client.request('mg live0 v\r\nlru_crawler metadump all\r\n', 'metadump\r\n'),
      'VA 2\r\nok\r\nERROR cannot pipeline other commands before metadump\r\n',
    );
  });

  it("answers memcached's errors, and enable, disable, sleep and tocrawl", async () => {
    // Checked against memcached 1.6.18 byte for byte.
    const answers = await client.request(
      'lru_crawler crawl 0\r\nlru_crawler crawl 64\r\nlru_crawler crawl 1,x\r\nlru_crawler crawl hash\r\nlru_crawler crawl ,\r\n' +
        'lru_crawler tocrawl x\r\nlru_crawler sleep 1000001\r\nlru_crawler sleep -1\r\nlru_crawler bogus\r\n' +
        'lru_crawler\r\nlru_crawler enable\r\nlru_crawler tocrawl 7\r\nlru_crawler sleep 250\r\nmn\r\n',
      'MN\r\n',
    );
    assert.equal(
      answers,
      'BADCLASS invalid class id\r\nBADCLASS invalid class id\r\nBADCLASS invalid class id\r\nERROR an unknown error happened\r\n' +
        'NOTSTARTED no items to crawl\r\nCLIENT_ERROR bad command line format\r\n' +
        'CLIENT_ERROR sleep must be one second or less\r\nCLIENT_ERROR bad command line format\r\nERROR\r\nERROR\r\n' +
        'ERROR failed to start lru crawler thread\r\nOK\r\nOK\r\nMN\r\n',
    );
    assert.equal(await client.request('lru_crawler metadump 99\r\n'), 'BADCLASS invalid class id\r\n');
    let settings = await statLines(client, 'settings');
    assert.equal(settings.get('lru_crawler'), 'yes');
    assert.equal(settings.get('lru_crawler_tocrawl'), '7');
    assert.equal(settings.get('lru_crawler_sleep'), '250');

    assert.equal(await client.request('lru_crawler disable\r\n'), 'OK\r\n');
    assert.equal(await client.request('lru_crawler disable\r\n'), 'OK\r\n');
    settings = await statLines(client, 'settings');
    assert.equal(settings.get('lru_crawler'), 'no');
    assert.equal(await client.request('lru_crawler crawl all\r\n'), 'CLIENT_ERROR lru crawler disabled\r\n');
    assert.equal(await client.request('lru_crawler metadump all\r\n'), 'CLIENT_ERROR lru crawler disabled\r\n');
    const stats = await statLines(client);
    assert.equal(stats.has('lru_crawler_running'), false, 'memcached shows the running figures only while it is on');
    assert.equal(stats.has('crawler_reclaimed'), true);
    assert.equal(await client.request('lru_crawler enable\r\nlru_crawler tocrawl 0\r\nlru_crawler sleep 100\r\n', 'OK\r\nOK\r\nOK\r\n'), 'OK\r\nOK\r\nOK\r\n');
  });

  it('looks at no more than tocrawl items per class', async () => {
    await client.request('flush_all\r\n');
    await client.request(`${sets('t', 30, 3)}version\r\n`, '\r\n');
    await client.request('debugtime 4\r\n');
    const before = await statLines(client);
    await client.request('lru_crawler tocrawl 10\r\n');
    assert.equal(await client.request('lru_crawler crawl 1\r\n'), 'OK\r\n');
    const after = await crawlDone(client);
    await client.request('lru_crawler tocrawl 0\r\n');
    assert.equal(Number(after.get('crawler_reclaimed')) - Number(before.get('crawler_reclaimed')), 10);
    assert.equal(Number(after.get('crawler_items_checked')) - Number(before.get('crawler_items_checked')), 10);
    assert.equal(after.get('curr_items'), '20');
  });

  it('answers BUSY while a crawl runs, and takes a crawl again once it ends', async () => {
    await client.request('flush_all\r\n');
    await client.request(`${sets('busy', 3000, 0)}version\r\n`, '\r\n');
    // A second's sleep after each 1000 items keeps this crawl running for two seconds.
    await client.request('lru_crawler sleep 1000000\r\n');
    assert.equal(await client.request('lru_crawler crawl all\r\n'), 'OK\r\n');
    assert.equal(await client.request('lru_crawler crawl 1\r\n'), 'BUSY currently processing crawler request\r\n');
    assert.equal(await client.request('lru_crawler metadump all\r\n'), 'BUSY currently processing crawler request\r\n');
    assert.equal((await statLines(client)).get('lru_crawler_running'), '1');
    await client.request('lru_crawler sleep 0\r\n');
    await crawlDone(client);
    assert.equal(await client.request('lru_crawler crawl 1\r\n'), 'OK\r\n');
    await crawlDone(client);
    await client.request('lru_crawler sleep 100\r\n');
  });

  it('waits for a client that reads slowly, and stops for one that hangs up', async () => {
    await client.request('flush_all\r\n');
    // About 11 MB of metadump lines: more than the socket buffers and the connection's soft cap hold.
    const count = 40_000;
    const pad = 'k'.repeat(200);
    for (let start = 0; start < count; start += 5000) {
      let batch = '';
      for (let i = start; i < start + 5000; i++) batch += `set ${pad}${i} 0 0 1 noreply\r\nv\r\n`;
      await client.request(`${batch}version\r\n`, '\r\n');
    }
    // A raw socket: the reply is gathered in pieces, joined once (RawClient joins on every chunk).
    const slow = connect({ port: server.port, host: '127.0.0.1' });
    await once(slow, 'connect');
    slow.pause();
    slow.write('lru_crawler metadump all\r\nversion\r\n');
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal((await statLines(client)).get('lru_crawler_running'), '1', 'the metadump waits for its reader');
    const pieces: Buffer[] = [];
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the metadump never ended')), 30_000);
      slow.on('data', (piece: Buffer) => {
        pieces.push(piece);
        const tail = Buffer.concat(pieces.slice(-2)).subarray(-64).toString('latin1');
        if (/END\r\nVERSION [^\r]*\r\n$/.test(tail)) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    slow.resume();
    await done;
    slow.destroy();
    const dump = Buffer.concat(pieces).toString('latin1');
    assert.equal(dump.split('\n').filter((line) => line.startsWith(`key=${pad}`)).length, count);

    const gone = await connectClient(server.port);
    gone.socket.pause();
    gone.send('lru_crawler metadump all\r\n');
    await new Promise((resolve) => setTimeout(resolve, 300));
    gone.close();
    await crawlDone(client);
    assert.equal(await client.request('lru_crawler crawl 1\r\n'), 'OK\r\n');
    await crawlDone(client);
  });
});

describe('the autocrawl', () => {
  it("reclaims expired items without a get, on memcached's schedule (1.6 defaults)", () =>
    withServer(['--test-clock'], async (client) => {
      assert.equal((await statLines(client, 'settings')).get('lru_crawler'), 'yes');
      // memcached's maintainer crawls every class once at start.
      for (let i = 0; i < 500 && (await statLines(client)).get('lru_crawler_starts') === '0'; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await crawlDone(client);
      await client.request(`${sets('bw', 30, 5)}${sets('keep', 5, 0)}version\r\n`, '\r\n');
      const before = await statLines(client);
      // That crawl found nothing to reclaim: the next one is a minute and 5 seconds away.
      await client.request('debugtime 6\r\n');
      assert.equal((await crawlDone(client)).get('lru_crawler_starts'), before.get('lru_crawler_starts'), 'no autocrawl yet');
      await client.request('debugtime 70\r\n');
      const after = await crawlDone(client);
      assert.equal(after.get('curr_items'), '5');
      const delta = (name: string): number => Number(after.get(name)) - Number(before.get(name));
      // The autocrawl ran and looked at the live ones; the expired ones went to it, or to the
      // segmented LRU's maintainer where it met them first at a segment's tail (memcached's too).
      assert.equal(delta('lru_crawler_starts'), 1);
      assert.ok(delta('crawler_items_checked') >= 5, `${delta('crawler_items_checked')} checked`);
      assert.equal(delta('crawler_reclaimed') + delta('reclaimed'), 30);
      assert.equal(delta('expired_unfetched'), 30);
    }));

  it('is off under -o no_modern (nothing reclaims without a get), and -o lru_crawler turns the crawler on', async () => {
    await withServer(['--test-clock', '-o', 'no_modern'], async (client) => {
      const settings = await statLines(client, 'settings');
      assert.equal(settings.get('lru_crawler'), 'no');
      assert.equal(settings.get('lru_crawler_sleep'), '100');
      assert.equal(settings.get('lru_crawler_tocrawl'), '0');
      await client.request(`${sets('nm', 10, 5)}version\r\n`, '\r\n');
      await client.request('debugtime 6\r\n');
      assert.equal((await statLines(client)).get('curr_items'), '10');
      assert.equal(await client.request('lru_crawler crawl 1\r\n'), 'CLIENT_ERROR lru crawler disabled\r\n');
    });
    await withServer(['-o', 'no_modern,lru_crawler,lru_crawler_sleep=0,lru_crawler_tocrawl=50'], async (client) => {
      const settings = await statLines(client, 'settings');
      assert.equal(settings.get('lru_crawler'), 'yes');
      assert.equal(settings.get('lru_crawler_sleep'), '0');
      assert.equal(settings.get('lru_crawler_tocrawl'), '50');
    });
  });
});

describe('the crawler options', () => {
  it("refuses memcached's bad values, naming the option", async () => {
    const sleep = await runMnemo(['-o', 'lru_crawler_sleep=1000001']);
    assert.equal(sleep.code, 2);
    assert.match(sleep.stderr, /lru_crawler_sleep=1000001: LRU crawler sleep must be between 0 and 1 second/);
    const tocrawl = await runMnemo(['-o', 'lru_crawler_tocrawl=x']);
    assert.equal(tocrawl.code, 2);
    assert.match(tocrawl.stderr, /lru_crawler_tocrawl/);
  });
});
