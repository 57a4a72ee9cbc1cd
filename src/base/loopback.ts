import { isIP } from 'node:net';

/**
 * A host only this machine can reach: 127.0.0.0/8, ::1, their IPv4-mapped and
 * bracketed forms, and the name localhost. One rule for every check that asks
 * (an exposed listener without authentication, a peer without a secret).
 */
export function isLoopback(host: string | undefined): boolean {
  if (host === undefined) return false;
  let bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (bare === 'localhost') return true;
  if (bare.startsWith('::ffff:')) bare = bare.slice(7);
  if (isIP(bare) === 4) return bare.startsWith('127.');
  return bare === '::1';
}
