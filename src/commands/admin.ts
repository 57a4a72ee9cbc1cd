import type { ServerContext } from '../server/context.js';
import type { Counters } from '../observe/stats.js';

/** Commands around the cache rather than on its items, shared by text and binary. */

/** `stats reset` (text) and binary STAT "reset": zeroes the counters and the prefix stats. */
export function resetStats(ctx: ServerContext): void {
  ctx.store.resetStats();
  ctx.counters.reset();
  ctx.prefixStats.reset();
}

/** One authentication attempt: text -Y `set`, binary SASL Auth/Step. */
export function countAuthentication(counters: Counters, succeeded: boolean): void {
  counters.auth_cmds++;
  if (!succeeded) counters.auth_errors++;
}
