import type { Config } from '../config/config.js';

/**
 * memcached's `-o read_buf_mem_limit=<MB>` as a client sees it. memcached splits
 * the limit among its -t worker threads and hands it out in 16 KB buffers: one
 * holds a connection's request, the others hold its response objects, 13 to a
 * buffer. A batch (the commands run from one read, at most -R of them) needs one
 * response object per command and per further key of a multi-get until its
 * replies are written. Mnemo counts the same objects against the same share, so
 * the same settings refuse the same batches: a multi-get past the limit gets
 * `SERVER_ERROR out of memory writing get response`, and a connection whose
 * pipelined commands stack replies past it is closed without them.
 */

/** memcached's READ_BUFFER_SIZE: read buffers and response bundles come in these. */
const BUFFER_BYTES = 16 * 1024;
/** memcached's MAX_RESP_PER_BUNDLE on 64-bit Linux: (16384 - 24) / sizeof(mc_resp) (1184). */
const RESPONSES_PER_BUFFER = 13;

/** Response objects one batch may hold; Infinity without -o read_buf_mem_limit. */
export function responsesPerBatch(config: Config): number {
  const megabytes = Number(config.extended.get('read_buf_mem_limit') ?? 0);
  if (!(megabytes > 0)) return Infinity;
  const share = Math.floor((megabytes * 1024 * 1024) / config.threads);
  const buffers = share < BUFFER_BYTES ? 1 : Math.floor(share / BUFFER_BYTES);
  return (buffers - 1) * RESPONSES_PER_BUFFER;
}
