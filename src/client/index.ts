/**
 * The Mnemo client: `import { Client } from 'mnemo/client'`, its own entry, so that a
 * client does not load the server's modules.
 */
export { Client, type CasResult, type ClientOptions, type Item, type RequestOptions, type ServerStatus, type StoreOptions } from './client.js';
export { ConnectionError, NoServerError, RequestError, ServerError, TimeoutError } from './errors.js';
export { buildContinuum, ketamaKeyHash, ketamaLabel, lookup, pointsFor, type Continuum, type RingMember } from './ketama.js';
export type { MetaFlags, MetaReply } from './meta.js';
export type { ServerAddress, ServerSpec } from './server-list.js';
