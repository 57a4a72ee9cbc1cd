export { MnemoServer } from './server/server.js';
export { parseCommandLine } from './config/cli.js';
export { DEFAULTS, type Config } from './config/config.js';
export { Client, ConnectionError, NoServerError, RequestError, ServerError, TimeoutError, type ClientOptions, type Item, type MetaReply, type RequestOptions, type ServerSpec, type StoreOptions } from './client/index.js';
