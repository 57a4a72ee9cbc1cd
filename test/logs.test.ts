/**
 * Log lines people can read: readable lines when stderr is a terminal, JSON lines
 * when it is not (a pipe, a file, journald), and --log-format to force either.
 * The terminal is a real pseudo-terminal, made by util-linux's `script`.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { MNEMO_BIN, startMnemo } from './helpers/mnemo.js';

/**
 * A memory file (-e) whose metadata another program wrote logs a warning at
 * start-up, and SIGTERM logs "shutting down": two lines to look at.
 */
const root = mkdtempSync(join(tmpdir(), 'mnemo-logs-'));
after(() => rmSync(root, { recursive: true, force: true }));
let made = 0;
function args(): string[] {
  const path = join(root, `memory${made++}`);
  writeFileSync(`${path}.meta`, 'Tmain\nKmaxbytes 67108864\n');
  return ['-p', '-1', '-e', path];
}
const WARNING = "memory file not loaded: its metadata is tagged 'main', not 'mnemo' (written by something else); starting with a clean cache";

/** Runs Mnemo under `script` (stderr a terminal) until it is ready, stops it, returns what the terminal showed. */
async function underTerminal(extra: string[]): Promise<string> {
  const command = [process.execPath, MNEMO_BIN, ...args(), ...extra].map((a) => `'${a}'`).join(' ');
  // script forwards SIGTERM to nothing; the server is stopped through its pid, printed first.
  const child = spawn('script', ['-qfec', `echo pid $$; exec ${command}`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const deadline = Date.now() + 20_000;
  while (!/listening on/.test(output) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
  assert.match(output, /listening on/, output);
  const pid = Number(/pid (\d+)/.exec(output)![1]);
  process.kill(pid, 'SIGTERM');
  await once(child, 'exit');
  return output;
}

describe('log format', () => {
  it('writes JSON lines when stderr is not a terminal', async () => {
    const server = await startMnemo(args().slice(2));
    await server.stop();
    const lines = server.stderr().split('\n').filter((l) => l.startsWith('{'));
    const warning = lines.map((l) => JSON.parse(l) as { level: number; msg: string }).find((l) => l.msg === WARNING);
    assert.ok(warning, server.stderr());
    assert.equal(warning.level, 40);
  });

  it('writes readable lines when stderr is a terminal', async () => {
    const output = await underTerminal([]);
    // e.g. "[03:51:07.123] WARN: memory file not loaded: ..." (in colour)
    const plain = output.replace(/\x1b\[[0-9;]*m/g, '');
    assert.match(plain, /^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: memory file not loaded: its metadata is tagged 'main'.*; starting with a clean cache\r?$/m, plain);
    assert.match(plain, /INFO: shutting down/, plain);
    assert.doesNotMatch(plain, /^\{"level"/m);
  });

  it('writes JSON lines to a terminal with --log-format json', async () => {
    const output = await underTerminal(['--log-format', 'json']);
    assert.match(output, /^\{"level":40,.*"msg":"memory file not loaded: its metadata is tagged 'main'.*; starting with a clean cache"\}\r?$/m, output);
  });
});
