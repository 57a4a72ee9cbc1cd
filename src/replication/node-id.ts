import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * --node-id, or one made up at start: kept in the data dir when there is one, so a
 * restarted node keeps its identity; otherwise new per process.
 */
export function resolveNodeId(given: string | null, dataDir: string | null): string {
  if (given !== null) return given;
  if (dataDir === null) return `node-${randomBytes(6).toString('hex')}`;
  const file = join(dataDir, 'node-id');
  try {
    const stored = readFileSync(file, 'utf8').trim();
    if (stored !== '') return stored;
  } catch {
    // first start with this data dir
  }
  const id = `node-${randomBytes(6).toString('hex')}`;
  writeFileSync(file, `${id}\n`);
  return id;
}
