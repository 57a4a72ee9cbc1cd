import { chownSync, readFileSync } from 'node:fs';
import { ConfigError } from '../config/config.js';

interface Account {
  uid: number;
  gid: number;
}

/** The account of a user name, from /etc/passwd; a ConfigError naming -u when there is none. */
export function lookupUser(user: string): Account {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const fields = line.split(':');
    if (fields[0] === user) return { uid: Number(fields[2]), gid: Number(fields[3]) };
  }
  throw new ConfigError(`-u/--user: can't find the user ${user} to switch to`);
}

/**
 * -u: after the listeners are open, a process started as root becomes the given
 * user, as memcached does. Files it must still write (the pid file) are handed
 * to that user first. A process not started as root keeps its identity.
 */
export function dropPrivileges(user: string, ownedFiles: string[]): boolean {
  const account = lookupUser(user);
  if (process.getuid?.() !== 0) return false;
  for (const file of ownedFiles) chownSync(file, account.uid, account.gid);
  (process as NodeJS.Process & { initgroups?: (user: string, group: number) => void }).initgroups?.(user, account.gid);
  process.setgid?.(account.gid);
  process.setuid?.(account.uid);
  return true;
}
