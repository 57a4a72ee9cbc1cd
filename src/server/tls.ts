import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type TlsOptions, type TLSSocket } from 'node:tls';
import { ConfigError, type TlsConfig } from '../config/config.js';

/**
 * memcached's ssl_verify_mode, as node:tls options:
 * 0 none: no client certificate is asked for;
 * 1 request: one is asked for; a client may send none, but one it sends must verify
 *   (checked once the handshake is done, see peerRejected);
 * 2 require and 3 once: a client without a certificate that verifies is refused
 *   (node:tls never renegotiates, so "once" is the same as "require").
 */
function verifyOptions(mode: TlsConfig['verifyMode']): Pick<TlsOptions, 'requestCert' | 'rejectUnauthorized'> {
  if (mode === 0) return { requestCert: false, rejectUnauthorized: false };
  if (mode === 1) return { requestCert: true, rejectUnauthorized: false };
  return { requestCert: true, rejectUnauthorized: true };
}

/** memcached's ssl_min_version: 0 TLSv1, 1 TLSv1.1, 2 TLSv1.2 (its default), 3 TLSv1.3. */
const MIN_VERSIONS = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'] as const;

/** Options for tls.createServer: reads the certificate, key and CA files. */
export function tlsServerOptions(tls: TlsConfig): TlsOptions {
  return {
    cert: readFileSync(tls.certFile),
    key: readFileSync(tls.keyFile),
    ...(tls.caFile === null ? {} : { ca: readFileSync(tls.caFile) }),
    ...verifyOptions(tls.verifyMode),
    ...(tls.ciphers === null ? {} : { ciphers: tls.ciphers }),
    minVersion: MIN_VERSIONS[tls.minVersion],
    // A client that opens a socket and never finishes its handshake holds a descriptor.
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
  };
}

const HANDSHAKE_TIMEOUT_MS = 10_000;

/** ssl_verify_mode=1: a client that sent a certificate which does not verify is dropped. */
export function peerRejected(tls: TlsConfig, socket: TLSSocket): boolean {
  if (tls.verifyMode !== 1 || socket.authorized) return false;
  return Object.keys(socket.getPeerCertificate()).length > 0;
}

/** The flag each file came from, for error messages. */
export interface TlsFlagNames {
  cert: string;
  key: string;
  ca: string;
}

function read(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(`${flag}: cannot read ${path}${code === undefined ? '' : ` (${code})`}`);
  }
}

/**
 * Checks at start-up that the files exist, parse, and that key and certificate
 * belong together, so that a mistake is one line naming the flag (exit 2) and not a
 * failure at the first client's handshake.
 */
export function checkTlsFiles(tls: TlsConfig, flags: TlsFlagNames): void {
  const cert = read(flags.cert, tls.certFile);
  const key = read(flags.key, tls.keyFile);
  const ca = tls.caFile === null ? null : read(flags.ca, tls.caFile);
  try {
    createSecureContext({ cert });
  } catch (error) {
    throw new ConfigError(`${flags.cert}: ${tls.certFile} is not a PEM certificate (${(error as Error).message})`);
  }
  try {
    createSecureContext({ key });
  } catch (error) {
    throw new ConfigError(`${flags.key}: ${tls.keyFile} is not an unencrypted PEM private key (${(error as Error).message})`);
  }
  if (ca !== null) {
    try {
      if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw new Error('no certificate in it');
      new X509Certificate(ca);
      createSecureContext({ ca });
    } catch (error) {
      throw new ConfigError(`${flags.ca}: ${tls.caFile} is not a PEM certificate (${(error as Error).message})`);
    }
  }
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    throw new ConfigError(`${flags.key}: ${tls.keyFile} does not match the certificate in ${tls.certFile} (${(error as Error).message})`);
  }
  if (tls.ciphers !== null) {
    try {
      createSecureContext({ ciphers: tls.ciphers });
    } catch (error) {
      throw new ConfigError(`-o/--extended: ssl_ciphers=${tls.ciphers}: ${(error as Error).message}`);
    }
  }
}
