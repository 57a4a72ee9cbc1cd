import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { ServerContext } from '../server/context.js';
import { DASHBOARD_PAGE } from './dashboard-page.js';
import { History } from './history.js';
import { createMetrics, peersOf } from './metrics.js';

/** uPlot (charts for the dashboard), served from here: an operator's browser may have no internet. */
const ASSETS: Record<string, { file: string; type: string }> = {
  '/uplot.js': { file: 'uplot/dist/uPlot.iife.min.js', type: 'text/javascript; charset=utf-8' },
  '/uplot.css': { file: 'uplot/dist/uPlot.min.css', type: 'text/css; charset=utf-8' },
};

/** What the operator's HTTP side needs beyond the shared context. */
export interface Observable extends ServerContext {
  /** Loaded and synced: able to answer correctly. */
  readonly ready: boolean;
}

/**
 * --metrics-port: Prometheus /metrics, /healthz, /readyz, the dashboard at /
 * (with uPlot at /uplot.js and /uplot.css), its history at /api/history, and the
 * current figures at /api/stats.
 */
export class ObservabilityServer {
  private readonly registry: Registry;
  private readonly http: Server;
  readonly history: History;
  private readonly assets = new Map<string, Buffer>();

  constructor(private readonly ctx: Observable) {
    this.registry = createMetrics(ctx);
    this.history = new History(ctx);
    this.history.start();
    this.http = createServer((request, response) => {
      this.route(request, response).catch((error: Error) => {
        ctx.log.warn({ err: error }, 'metrics request failed');
        if (!response.headersSent) response.writeHead(500);
        response.end();
      });
    });
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, host, () => {
        this.http.off('error', reject);
        resolve(this.http.address() as AddressInfo);
      });
    });
  }

  close(): Promise<void> {
    this.http.closeAllConnections();
    return new Promise((resolve) => this.http.close(() => resolve()));
  }

  private async route(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const path = url.pathname;
    switch (path) {
      case '/metrics':
        response.writeHead(200, { 'content-type': this.registry.contentType });
        response.end(await this.registry.metrics());
        return;
      case '/healthz':
        json(response, 200, { status: 'ok', uptime: this.ctx.clock.now - this.ctx.clock.started });
        return;
      case '/readyz':
        json(response, this.ctx.ready ? 200 : 503, { ready: this.ctx.ready });
        return;
      case '/api/history':
        json(response, 200, this.history.since(Number(url.searchParams.get('since') ?? -1) || -1));
        return;
      case '/uplot.js':
      case '/uplot.css':
        response.writeHead(200, { 'content-type': ASSETS[path]!.type, 'cache-control': 'max-age=86400' });
        response.end(this.asset(path));
        return;
      case '/api/stats':
        json(response, 200, this.snapshot());
        return;
      case '/':
        response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        response.end(DASHBOARD_PAGE);
        return;
      default:
        json(response, 404, { error: 'not found' });
    }
  }

  private asset(path: string): Buffer {
    let body = this.assets.get(path);
    if (body === undefined) {
      body = readFileSync(createRequire(import.meta.url).resolve(ASSETS[path]!.file));
      this.assets.set(path, body);
    }
    return body;
  }

  /** Cumulative counters and gauges; the dashboard turns counters into rates. */
  private snapshot(): object {
    const { counters: c, store, clock } = this.ctx;
    return {
      time: Date.now(),
      version: this.ctx.version,
      uptime: clock.now - clock.started,
      commands: {
        get: c.cmd_get,
        set: c.cmd_set,
        delete: c.delete_hits + c.delete_misses,
        incr: c.incr_hits + c.incr_misses,
        decr: c.decr_hits + c.decr_misses,
        touch: c.cmd_touch,
        flush: c.cmd_flush,
      },
      hits: c.get_hits,
      misses: c.get_misses,
      items: store.itemCount,
      memoryUsed: store.bytesUsed,
      memoryLimit: store.bytesLimit,
      evictions: c.evictions,
      connections: c.curr_connections,
      replicationLag: replicationLagSeconds(this.ctx),
    };
  }
}

/** The largest lag behind any peer, in seconds; null without peers. */
function replicationLagSeconds(ctx: ServerContext): number | null {
  if (ctx.replication == null) return null;
  const peers = peersOf(ctx.replication.stats());
  if (peers.length === 0) return null;
  return Math.max(...peers.map((peer) => Number(peer.get('lag_ms')) / 1000));
}

function json(response: ServerResponse, status: number, body: object): void {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify(body));
}
