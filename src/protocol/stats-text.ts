import type { ServerContext } from '../context.js';
import type { OutputBuffer } from '../output.js';

/**
 * The general `stats` reply: memcached's field names, in memcached's order, for
 * the fields that mean something in Mnemo, so tools such as memcstat read it.
 */
export function writeGeneralStats(ctx: ServerContext, out: OutputBuffer): void {
  const { counters: c, store, config, clock } = ctx;
  const usage = process.resourceUsage();
  const stat = (name: string, value: string | number): void => out.ascii(`STAT ${name} ${value}\r\n`);
  stat('pid', process.pid);
  stat('uptime', clock.now - clock.started);
  stat('time', clock.now);
  stat('version', ctx.version);
  stat('pointer_size', 64);
  stat('rusage_user', seconds(usage.userCPUTime));
  stat('rusage_system', seconds(usage.systemCPUTime));
  stat('max_connections', config.connLimit);
  stat('curr_connections', c.curr_connections);
  stat('total_connections', c.total_connections);
  stat('rejected_connections', c.rejected_connections);
  stat('connection_structures', c.curr_connections);
  stat('cmd_get', c.cmd_get);
  stat('cmd_set', c.cmd_set);
  stat('cmd_flush', c.cmd_flush);
  stat('cmd_touch', c.cmd_touch);
  stat('cmd_meta', 0);
  stat('get_hits', c.get_hits);
  stat('get_misses', c.get_misses);
  stat('get_expired', c.get_expired);
  stat('get_flushed', c.get_flushed);
  stat('delete_misses', c.delete_misses);
  stat('delete_hits', c.delete_hits);
  stat('incr_misses', c.incr_misses);
  stat('incr_hits', c.incr_hits);
  stat('decr_misses', c.decr_misses);
  stat('decr_hits', c.decr_hits);
  stat('cas_misses', c.cas_misses);
  stat('cas_hits', c.cas_hits);
  stat('cas_badval', c.cas_badval);
  stat('touch_hits', c.touch_hits);
  stat('touch_misses', c.touch_misses);
  stat('store_too_large', c.store_too_large);
  stat('store_no_memory', c.store_no_memory);
  stat('auth_cmds', 0);
  stat('auth_errors', 0);
  stat('bytes_read', c.bytes_read);
  stat('bytes_written', c.bytes_written);
  stat('limit_maxbytes', store.bytesLimit);
  stat('accepting_conns', 1);
  stat('threads', config.threads);
  stat('bytes', store.bytesUsed);
  stat('curr_items', store.itemCount);
  stat('total_items', c.total_items);
  stat('expired_unfetched', c.expired_unfetched);
  stat('evicted_unfetched', c.evicted_unfetched);
  stat('evictions', c.evictions);
  stat('reclaimed', c.reclaimed);
}

function seconds(micros: number): string {
  return (micros / 1e6).toFixed(6);
}
