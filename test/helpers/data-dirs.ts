import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';

/**
 * Fresh, empty data dirs under one temporary root that is removed when the test
 * file ends: each call of the returned function makes the next one.
 */
export function dataDirs(prefix: string): () => string {
  const root = mkdtempSync(join(tmpdir(), `mnemo-${prefix}-`));
  after(() => rmSync(root, { recursive: true, force: true }));
  let made = 0;
  return () => {
    const dir = join(root, `data${made++}`);
    mkdirSync(dir);
    return dir;
  };
}
