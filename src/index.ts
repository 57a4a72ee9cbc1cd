export { MnemoServer } from './server.js';
export { parseCommandLine } from './cli.js';
export { DEFAULTS, type Config } from './config.js';
