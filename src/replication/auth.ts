import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Peer authentication. With a shared secret, both sides prove they know it with
 * HMAC-SHA256 over both nonces (mutual challenge-response) before any data flows.
 * Without one, only loopback peers are accepted unless --replication-insecure.
 */
export const NONCE_BYTES = 16;
export const MAC_BYTES = 32;

export function nonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

/** The proof one side sends: role keeps a reply from being replayed as the other side's proof. */
export function proof(secret: Buffer, role: 'publisher' | 'subscriber', first: Buffer, second: Buffer): Buffer {
  return createHmac('sha256', secret).update(role).update(first).update(second).digest();
}

export function proofMatches(expected: Buffer, got: Buffer): boolean {
  return got.length === expected.length && timingSafeEqual(expected, got);
}

