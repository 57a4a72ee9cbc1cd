/** The Mnemo client: `import { Client } from 'mnemo'`. */
export { Client, type CasResult, type ClientOptions, type Item, type RequestOptions, type ServerStatus, type StoreOptions } from './client.js';
export { ConnectionError, NoServerError, RequestError, ServerError, TimeoutError } from './errors.js';
export { buildContinuum, ketamaKeyHash, ketamaLabel, lookup, pointsFor, type Continuum, type RingMember } from './ketama.js';
export type { MetaFlags, MetaReply } from './meta.js';
export type { ServerAddress, ServerSpec } from './server-list.js';
