/** The package's entries: `mnemo` (the server API) and `mnemo/client`, which loads nothing of the server. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const IMPORT = /^\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]/gm;

/** Every module the file imports statically, transitively: files under dist/ and bare specifiers. */
function staticImports(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    for (const [, specifier] of readFileSync(file, 'utf8').matchAll(IMPORT)) {
      if (specifier!.startsWith('.')) queue.push(resolve(dirname(file), specifier!));
      else packages.add(specifier!);
    }
  }
  return { files, packages };
}

describe('package entries', () => {
  it('mnemo/client resolves to the client and imports nothing outside dist/client but node builtins', () => {
    const entry = execFileSync(process.execPath, ['--input-type=module', '-e', "console.log(import.meta.resolve('mnemo/client'))"], { cwd: ROOT })
      .toString()
      .trim();
    const file = fileURLToPath(entry);
    assert.equal(relative(ROOT, file), join('dist', 'client', 'index.js'));
    const { files, packages } = staticImports(file);
    for (const imported of files) assert.ok(relative(join(ROOT, 'dist', 'client'), imported).split('/')[0] !== '..', `the client imports ${relative(ROOT, imported)}`);
    for (const name of packages) assert.match(name, /^node:/, `the client imports the package ${name}`);
  });

  it('both entries load and export what they name', () => {
    const out = execFileSync(
      process.execPath,
      ['--input-type=module', '-e', "const c = await import('mnemo/client'); const s = await import('mnemo'); console.log(typeof c.Client, typeof s.MnemoServer, s.Client === c.Client)"],
      { cwd: ROOT },
    ).toString();
    assert.equal(out.trim(), 'function function true');
  });
});
