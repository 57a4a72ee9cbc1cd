import { readFileSync } from 'node:fs';

/** Mnemo's own version, from package.json (found the same way from src/ and dist/). */
export const MNEMO_VERSION: string = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/**
 * What `version` and `stats` report. libmemcached and other clients parse the
 * leading numbers to pick features, so it starts with the memcached release
 * whose behaviour Mnemo follows.
 */
export const PROTOCOL_VERSION = `1.6.18-mnemo-${MNEMO_VERSION}`;
