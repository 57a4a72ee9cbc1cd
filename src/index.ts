export { MnemoServer } from './server.js';
export { parseCommandLine } from './cli.js';
export { DEFAULTS, type Config } from './config.js';
export { Client, ConnectionError, NoServerError, RequestError, ServerError, TimeoutError, type ClientOptions, type Item, type MetaReply, type RequestOptions, type ServerSpec, type StoreOptions } from './client/index.js';
