/**
 * Observability and operations: Prometheus metrics, health, the dashboard in a
 * real browser, nginx's memcached_pass, express sessions, and SIGTERM under load.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import express from 'express';
import session from 'express-session';
import connectMemcached from 'connect-memcached';
import { chromium } from 'playwright-core';
import { connectClient } from './helpers/client.js';
import { freePort } from './helpers/memcached.js';
import { startMnemo, type RunningServer } from './helpers/mnemo.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'mnemo-observe-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function startWithMetrics(args: string[] = []): Promise<{ server: RunningServer; metricsUrl: string }> {
  const server = await startMnemo(['--metrics-port', '0', ...args]);
  const match = /mnemo metrics on (http:\/\/\S+)/.exec(server.stderr());
  assert.ok(match, server.stderr());
  return { server, metricsUrl: match[1]! };
}

/** Prometheus text exposition as series -> value. */
function parseExposition(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    assert.ok(match, `not exposition format: ${line}`);
    values.set(match[1]!, Number(match[2]));
  }
  return values;
}

describe('metrics and health', () => {
  it('serves Prometheus metrics that move with traffic', async () => {
    const { server, metricsUrl } = await startWithMetrics();
    try {
      const before = parseExposition(await (await fetch(`${metricsUrl}/metrics`)).text());
      const client = await connectClient(server.port);
      await client.request('set m 0 0 5\r\nhello\r\nget m\r\nget m\r\nget nope\r\ndelete m\r\nincr nope 1\r\n', 'DELETED\r\nNOT_FOUND\r\n');
      client.close();
      const after = parseExposition(await (await fetch(`${metricsUrl}/metrics`)).text());
      const delta = (series: string) => (after.get(series) ?? NaN) - (before.get(series) ?? 0);
      assert.equal(delta('mnemo_commands_total{command="get",result="hit"}'), 2);
      assert.equal(delta('mnemo_commands_total{command="get",result="miss"}'), 1);
      assert.equal(delta('mnemo_commands_total{command="set",result="stored"}'), 1);
      assert.equal(delta('mnemo_commands_total{command="delete",result="hit"}'), 1);
      assert.equal(delta('mnemo_commands_total{command="incr",result="miss"}'), 1);
      assert.equal(delta('mnemo_command_duration_seconds_count{family="get"}'), 3);
      assert.equal(after.get('mnemo_command_duration_seconds_bucket{family="get",le="+Inf"}'), after.get('mnemo_command_duration_seconds_count{family="get"}'));
      assert.ok(delta('mnemo_read_bytes_total') > 50);
      assert.ok(delta('mnemo_connections_total') >= 1);
      assert.equal(after.get('mnemo_memory_limit_bytes'), 64 * 1024 * 1024);
      assert.equal(after.get('mnemo_items'), 0);
      assert.ok((after.get('mnemo_process_resident_memory_bytes') ?? 0) > 0);

      const health = await fetch(`${metricsUrl}/healthz`);
      assert.equal(health.status, 200);
      assert.equal((await health.json() as { status: string }).status, 'ok');
      const ready = await fetch(`${metricsUrl}/readyz`);
      assert.deepEqual(await ready.json(), { ready: true });
      assert.equal((await fetch(`${metricsUrl}/nope`)).status, 404);
    } finally {
      await server.stop();
    }
  });
});

describe('tier and replication metrics', () => {
  it('shows the disk tier and each peer when they are on', async () => {
    const dataDir = join(dir, 'metrics-data');
    mkdirSync(dataDir);
    const peerPort = await freePort();
    const ownPort = await freePort();
    const peer = await startMnemo(['--replication-port', String(peerPort), '--peer', `127.0.0.1:${ownPort}`, '--peer-wait', '0.2']);
    const { server, metricsUrl } = await startWithMetrics([
      '-H', dataDir, '--disk-limit', '64m', '--replication-port', String(ownPort), '--peer', `127.0.0.1:${peerPort}`, '--peer-wait', '0.2',
    ]);
    try {
      const client = await connectClient(server.port);
      await client.request('set tiered 0 0 5\r\nhello\r\nmn\r\n', 'MN\r\n');
      client.close();
      let metrics = new Map<string, number>();
      const peerLabel = `{peer="127.0.0.1:${peerPort}"}`;
      for (let attempt = 0; attempt < 50; attempt++) {
        metrics = parseExposition(await (await fetch(`${metricsUrl}/metrics`)).text());
        const committed = (metrics.get('mnemo_disk_commits_total') ?? 0) >= 1 && (metrics.get('mnemo_disk_items') ?? 0) >= 1;
        if (metrics.get(`mnemo_replication_peer_connected${peerLabel}`) === 1 && committed) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.equal(metrics.get(`mnemo_replication_peer_connected${peerLabel}`), 1);
      assert.ok((metrics.get(`mnemo_replication_sent_bytes${peerLabel}`) ?? 0) > 0);
      assert.ok(metrics.has(`mnemo_replication_lag_seconds${peerLabel}`));
      assert.equal(metrics.get('mnemo_disk_items'), 1);
      assert.equal(metrics.get('mnemo_disk_limit_bytes'), 64 * 1024 * 1024);
      assert.ok((metrics.get('mnemo_disk_tier_bytes') ?? 0) > 0);
      assert.ok((metrics.get('mnemo_disk_commits_total') ?? 0) >= 1);
      assert.ok((metrics.get('mnemo_disk_write_bytes_total') ?? 0) > 0);
      const stats = (await (await fetch(`${metricsUrl}/api/stats`)).json()) as { replicationLag: number | null };
      assert.equal(typeof stats.replicationLag, 'number');
    } finally {
      await server.stop();
      await peer.stop();
    }
  });
});

describe('dashboard', () => {
  it("draws the server's history on first load, then appends live samples", async () => {
    const dataDir = join(dir, 'dashboard-data');
    mkdirSync(dataDir);
    const peerPort = await freePort();
    const ownPort = await freePort();
    const peer = await startMnemo(['--replication-port', String(peerPort), '--peer', `127.0.0.1:${ownPort}`, '--peer-wait', '0.2']);
    const { server, metricsUrl } = await startWithMetrics([
      '--test-clock', '-H', dataDir, '--disk-limit', '64m',
      '--replication-port', String(ownPort), '--peer', `127.0.0.1:${peerPort}`, '--peer-wait', '0.2',
    ]);
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
    const client = await connectClient(server.port);
    try {
      // 30 seconds of traffic on the server's clock (debugtime moves it and the
      // history samples on each move), before any page is open.
      for (let second = 0; second < 30; second++) {
        let batch = '';
        for (let i = 0; i < 40 + 4 * second; i++) batch += `set k${i} 0 0 3\r\nabc\r\nget k${i}\r\n`;
        await client.request(`${batch}get nope\r\ndebugtime 1\r\n`, 'END\r\nOK\r\n');
      }
      const serverTime = async (): Promise<number> => Number(/STAT time (\d+)/.exec(await client.request('stats\r\n', 'END\r\n'))![1]);
      const timeBefore = await serverTime();
      const page = await browser.newPage({ viewport: { width: 1400, height: 1200 } });
      await page.goto(metricsUrl, { waitUntil: 'load' });
      // Within one second of loading, the ops/s chart holds the history: at least 25
      // points. Timed inside the page (Playwright's own round trips are slow on a loaded machine).
      await page.waitForFunction(() => document.body.dataset.firstDrawMs !== undefined, undefined, { timeout: 10_000 });
      const firstDraw = await page.evaluate(() => ({
        ms: Number(document.body.dataset.firstDrawMs) - (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming).loadEventStart,
        points: Number(document.body.dataset.firstDrawOps),
      }));
      assert.ok(firstDraw.points >= 25, `first draw: ${firstDraw.points} points`);
      assert.ok(firstDraw.ms < 1000, `first draw ${firstDraw.ms} ms after the load event`);
      const shown = (await page.evaluate(() => {
        const charts = (window as unknown as { charts: Record<string, { data: Array<Array<number | null>>; series: Array<{ label: string }> }> }).charts;
        return Object.fromEntries(Object.entries(charts).map(([id, chart]) => [id, { data: chart.data, labels: chart.series.map((s) => s.label) }]));
      })) as Record<string, { data: Array<Array<number | null>>; labels: string[] }>;
      assert.deepEqual(Object.keys(shown).sort(), ['connections', 'disk', 'disk-io', 'evictions', 'hit', 'items', 'latency', 'memory', 'ops', 'peer-0'].sort());
      assert.deepEqual(shown.ops!.labels, ['time', 'get', 'set', 'delete', 'arithmetic', 'touch', 'meta', 'other']);
      // The x axis is the server's clock (unix seconds, a sample each time it moves; debugtime moved it 30 s on).
      const stats = new Map((await client.request('stats\r\n', 'END\r\n')).split('\r\n').map((l) => [l.split(' ')[1], l.split(' ')[2]]));
      const times = shown.ops!.data[0] as number[];
      assert.ok(times.at(-1)! >= timeBefore && times.at(-1)! <= Number(stats.get('time')), `last sample ${times.at(-1)}, server time ${timeBefore}..${stats.get('time')}`);
      assert.ok(times.length >= 30 && times.length <= 900);
      const sets = shown.ops!.data[2]!.filter((v): v is number => v !== null && v > 0);
      assert.ok(sets.length >= 25, `${sets.length} points of sets/s`);
      assert.ok(Math.max(...sets) >= 150, `peak sets/s ${Math.max(...sets)}`);
      assert.equal(shown.items!.data[1]!.at(-1), Number(stats.get('curr_items')));
      assert.ok(shown.latency!.data[2]!.some((v) => v !== null && v > 0), 'p99 latency plotted');
      assert.ok(shown.hit!.data[1]!.some((v) => v !== null && v > 0.9 && v < 1), 'hit ratio plotted');
      assert.ok(shown.disk!.data[1]!.at(-1)! > 0, 'disk tier bytes plotted');
      assert.equal(shown['peer-0']!.data[2]!.at(-1), 1, 'the peer is connected');
      assert.match((await page.textContent('#ops-now')) ?? '', /ops\/s/);
      assert.match((await page.textContent('#memory-now')) ?? '', /of 64 MiB/);

      // Live: a new sample on the server reaches the open page.
      const before = Number(await page.evaluate(() => document.body.dataset.points));
      await client.request('set live 0 0 1\r\nx\r\ndebugtime 1\r\n', 'OK\r\n');
      await page.waitForFunction((n) => Number(document.body.dataset.points) > n, before, { timeout: 10_000 });
      mkdirSync(join(root, 'test-results'), { recursive: true });
      await page.screenshot({ path: join(root, 'test-results', 'dashboard.png'), fullPage: true });
    } finally {
      client.close();
      await browser.close();
      await server.stop();
      await peer.stop();
    }
  });

  it('keeps 15 minutes of history in a fixed ring', async () => {
    const { server, metricsUrl } = await startWithMetrics(['--test-clock']);
    const client = await connectClient(server.port);
    try {
      for (let second = 0; second < 1000; second += 50) {
        let moves = '';
        for (let i = 0; i < 50; i++) moves += 'debugtime 1\r\n';
        await client.request(moves, 'OK\r\n'.repeat(50));
      }
      const history = (await (await fetch(`${metricsUrl}/api/history`)).json()) as { rows: number; data: Record<string, number[]> };
      assert.equal(history.rows, 900);
      const times = history.data.time!;
      for (let i = 1; i < times.length; i++) assert.ok(times[i]! > times[i - 1]!, 'oldest first');
      const newer = (await (await fetch(`${metricsUrl}/api/history?since=${times.at(-3)}`)).json()) as { rows: number };
      assert.equal(newer.rows, 2);
    } finally {
      client.close();
      await server.stop();
    }
  });
});

describe('nginx memcached_pass', () => {
  it('serves a stored page from Mnemo and falls back to the application on a miss', async () => {
    const server = await startMnemo();
    const application: Server = createServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/plain' });
      response.end('from the application');
    });
    application.listen(0, '127.0.0.1');
    await once(application, 'listening');
    const appPort = (application.address() as { port: number }).port;
    const nginxPort = await freePort();
    const prefix = join(dir, 'nginx');
    mkdirSync(join(prefix, 'logs'), { recursive: true });
    const config = readFileSync(join(root, 'examples/nginx/nginx.conf'), 'utf8')
      .replaceAll('127.0.0.1:11211', `127.0.0.1:${server.port}`)
      .replaceAll('127.0.0.1:8081', `127.0.0.1:${appPort}`)
      .replaceAll('127.0.0.1:8080', `127.0.0.1:${nginxPort}`)
      .replace('http {', `http {\n  access_log ${prefix}/logs/access.log;\n  client_body_temp_path ${prefix}/body;\n  proxy_temp_path ${prefix}/proxy;\n  fastcgi_temp_path ${prefix}/fastcgi;\n  uwsgi_temp_path ${prefix}/uwsgi;\n  scgi_temp_path ${prefix}/scgi;`);
    writeFileSync(join(prefix, 'nginx.conf'), `daemon off;\npid ${prefix}/nginx.pid;\nerror_log ${prefix}/logs/error.log;\n${config}`);
    const nginx = spawn('nginx', ['-p', prefix, '-c', join(prefix, 'nginx.conf')], { stdio: 'ignore' });
    try {
      let up = false;
      for (let i = 0; i < 50 && !up; i++) {
        up = await fetch(`http://127.0.0.1:${nginxPort}/`).then(() => true, () => false);
        if (!up) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const page = '<h1>cached page one</h1>';
      const client = await connectClient(server.port);
      await client.request(`set /page/1 0 60 ${page.length}\r\n${page}\r\n`);
      client.close();
      const hit = await fetch(`http://127.0.0.1:${nginxPort}/page/1`);
      assert.equal(hit.status, 200);
      assert.match(hit.headers.get('content-type') ?? '', /text\/html/);
      assert.equal(await hit.text(), page);
      const miss = await fetch(`http://127.0.0.1:${nginxPort}/page/2`);
      assert.equal(miss.status, 200);
      assert.equal(await miss.text(), 'from the application');
    } finally {
      nginx.kill('SIGTERM');
      await once(nginx, 'exit');
      application.close();
      await server.stop();
    }
  });
});

describe('express-session with connect-memcached', () => {
  it('keeps a session across requests, stored in Mnemo', async () => {
    const server = await startMnemo();
    const MemcachedStore = connectMemcached(session);
    const app = express();
    app.use(session({
      secret: 'test-secret', resave: false, saveUninitialized: false,
      store: new MemcachedStore({ hosts: [`127.0.0.1:${server.port}`], prefix: 'sess:' }),
    }));
    app.get('/', (request, response) => {
      const data = request.session as unknown as { views?: number };
      data.views = (data.views ?? 0) + 1;
      response.json({ id: request.sessionID, views: data.views });
    });
    const web = app.listen(0, '127.0.0.1');
    await once(web, 'listening');
    const url = `http://127.0.0.1:${(web.address() as { port: number }).port}/`;
    try {
      let cookie = '';
      let last = { id: '', views: 0 };
      for (let i = 0; i < 3; i++) {
        const response = await fetch(url, { headers: cookie ? { cookie } : {} });
        cookie ||= response.headers.get('set-cookie')!.split(';')[0]!;
        last = (await response.json()) as typeof last;
      }
      assert.equal(last.views, 3);
      const client = await connectClient(server.port);
      const stored = await client.request(`get sess:${last.id}\r\n`, 'END\r\n');
      assert.match(stored, /"views":3/);
      client.close();
    } finally {
      web.close();
      await server.stop();
    }
  });
});

describe('graceful shutdown', () => {
  it('exits 0 on SIGTERM under load, and no client sees a torn reply', async () => {
    const server = await startMnemo();
    const value = 'v'.repeat(20_000);
    const setup = await connectClient(server.port);
    await setup.request(`set big 0 0 ${value.length}\r\n${value}\r\n`);
    setup.close();
    const reply = `VALUE big 0 ${value.length}\r\n${value}\r\nEND\r\n`;
    const clients = await Promise.all(Array.from({ length: 20 }, () => connectClient(server.port)));
    for (const client of clients) client.send('get big\r\n'.repeat(200));
    await new Promise((resolve) => setTimeout(resolve, 20));
    server.process.kill('SIGTERM');
    const [code] = await once(server.process, 'exit');
    assert.equal(code, 0);
    for (const client of clients) {
      const { data } = await client.readToClose(2000);
      // Whatever arrived is a whole number of complete replies.
      assert.equal(data.length % reply.length, 0, `torn reply: ${data.length} bytes`);
      assert.equal(data, reply.repeat(data.length / reply.length));
    }
  });
});
