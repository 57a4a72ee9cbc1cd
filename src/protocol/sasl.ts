import { readFileSync } from 'node:fs';
import { timingSafeEqual } from 'node:crypto';

/**
 * SASL PLAIN against a password file of `user:password` lines (memcached's
 * MEMCACHED_SASL_PWDB format). Each connection authenticates on its own.
 */
export class PasswordFile {
  private readonly passwords = new Map<string, Buffer>();

  constructor(path: string) {
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      this.passwords.set(line.slice(0, colon), Buffer.from(line.slice(colon + 1).replace(/\r$/, ''), 'utf8'));
    }
  }

  /** Compares in constant time for a known user, so timing tells nothing about the password. */
  check(user: string, password: Buffer): boolean {
    const expected = this.passwords.get(user);
    if (expected === undefined) {
      timingSafeEqual(password, password);
      return false;
    }
    if (expected.length !== password.length) {
      timingSafeEqual(expected, expected);
      return false;
    }
    return timingSafeEqual(expected, password);
  }
}

export class SaslAuthenticator {
  authenticated = false;
  readonly mechanisms = 'PLAIN';

  constructor(private readonly passwords: PasswordFile) {}

  /** PLAIN's message is authzid NUL authcid NUL password. */
  authenticate(mechanism: string, message: Buffer): boolean {
    this.authenticated = false;
    if (mechanism !== 'PLAIN') return false;
    const first = message.indexOf(0);
    const second = first === -1 ? -1 : message.indexOf(0, first + 1);
    if (second === -1) return false;
    const user = message.toString('utf8', first + 1, second);
    this.authenticated = this.passwords.check(user, message.subarray(second + 1));
    return this.authenticated;
  }
}
