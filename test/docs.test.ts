/**
 * Copy-paste that works: every `sh` block of README.md and docs/*.md that starts
 * a server is run as a reader would run it, with its ports rewritten to free ones,
 * in a scratch directory that has the repository's bin/, dist/ and a copy of
 * examples/ (ports rewritten there too).
 *
 * - A block followed by a `text` block is a demo: run as one bash script, it must
 *   exit 0 and print exactly that text.
 * - Any other block lists alternatives: each line that starts a server (after the
 *   lines before it that do not) must print the ready line, and answer `version`
 *   on its TCP listeners and HTTP on the URLs its line names; it is then stopped.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort } from './helpers/memcached.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DOCUMENTS = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
/** A block runs on a loaded 2-core machine: Node starts take seconds there. */
const BLOCK_DEADLINE_MS = 60_000;
const STARTS_SERVER = /\bbin\/mnemo\b|\bnpm start\b/;
/** Numbers that look like TCP ports: 4 or 5 digits standing alone. */
const PORT = /(?<![\w.\/$-])(\d{4,5})(?![\w.])/g;

interface ShellBlock {
  document: string;
  line: number;
  code: string;
  /** The `text` block right after it: what the block prints. */
  output: string | null;
}

function shellBlocks(document: string): ShellBlock[] {
  const lines = readFileSync(join(ROOT, document), 'utf8').split('\n');
  const fences: Array<{ info: string; start: number; end: number; body: string }> = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)/.exec(lines[i]!);
    if (open === null) continue;
    let end = i + 1;
    while (end < lines.length && !lines[end]!.startsWith('```')) end++;
    fences.push({ info: open[1]!, start: i, end, body: lines.slice(i + 1, end).join('\n') + '\n' });
    i = end;
  }
  const blocks: ShellBlock[] = [];
  fences.forEach((fence, n) => {
    // The set-up block (`npm ci && npm start`) is what CI itself runs first.
    if (fence.info !== 'sh' || !STARTS_SERVER.test(fence.body) || /\bnpm ci\b/.test(fence.body)) return;
    const next = fences[n + 1];
    const between = next === undefined ? [] : lines.slice(fence.end + 1, next.start).filter((l) => l.trim() !== '');
    const output = next !== undefined && next.info === 'text' && between.length === 0 ? next.body : null;
    blocks.push({ document, line: fence.start + 1, code: fence.body, output });
  });
  return blocks;
}

/** Every port-like number in the block (and 11211, the default port) mapped to a free port. */
async function portMap(text: string): Promise<Map<string, string>> {
  const ports = new Map<string, string>([['11211', String(await freePort())]]);
  for (const [, number] of text.matchAll(PORT)) {
    if (Number(number) >= 1024 && Number(number) <= 65535 && !ports.has(number!)) ports.set(number!, String(await freePort()));
  }
  return ports;
}

function rewritePorts(text: string, ports: Map<string, string>): string {
  return text.replace(PORT, (number) => ports.get(number) ?? number);
}

/** Ports, the data dir, and -p for a server that would take the default port. */
function rewriteCommands(code: string, ports: Map<string, string>, scratch: string): string {
  return rewritePorts(code, ports)
    .replaceAll('/var/lib/mnemo', join(scratch, 'var-lib-mnemo'))
    .replace(/(bin\/mnemo|npm start(?: --)?)([^;&|#\n]*)/g, (all, command: string, args: string) => {
      if (/(^|\s)(-p|--port|-s|--unix-socket)(\s|=|\d|$)/.test(args)) return all;
      const flag = ` -p ${ports.get('11211')}`;
      return command === 'npm start' ? `npm start --${flag}${args}` : `${command}${flag}${args}`;
    });
}

const scratchDirs: string[] = [];
after(() => {
  for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
});

/** A directory laid out like the repository, with the files a reader is assumed to have (certificates). */
function scratchFor(block: ShellBlock, ports: Map<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'mnemo-docs-'));
  scratchDirs.push(dir);
  for (const name of ['bin', 'dist', 'node_modules', 'package.json']) symlinkSync(join(ROOT, name), join(dir, name));
  cpSync(join(ROOT, 'examples'), join(dir, 'examples'), { recursive: true });
  const rewriteTree = (path: string): void => {
    if (statSync(path).isDirectory()) {
      for (const entry of readdirSync(path)) rewriteTree(join(path, entry));
    } else {
      writeFileSync(path, rewritePorts(readFileSync(path, 'utf8'), ports));
    }
  };
  rewriteTree(join(dir, 'examples'));
  const certificates = new Set([...block.code.matchAll(/([\w-]+)\.(?:pem|key)\b/g)].map((m) => m[1]!));
  for (const name of certificates) {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', '/CN=localhost'], { cwd: dir, stdio: 'ignore' });
  }
  return dir;
}

interface Run {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<number | null>;
}

/** bash in its own process group, so that stopping it stops what it started in the background. */
function runScript(script: string, cwd: string): Run {
  const child = spawn('bash', ['-c', script], { cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops the script's process group and any daemon (-d -P) it left in the scratch dir; waits until they are gone. */
async function stopAll(run: Run, scratch: string): Promise<void> {
  const pids: number[] = [];
  for (const file of readdirSync(scratch).filter((f) => f.endsWith('.pid'))) {
    // A daemon the script stopped removes its pid file as it exits, maybe between the listing and the read.
    try {
      pids.push(Number(readFileSync(join(scratch, file), 'utf8')));
    } catch {
      /* gone with its daemon */
    }
  }
  for (const pid of pids) {
    try { process.kill(pid, 'SIGTERM'); } catch { /* already gone */ }
  }
  const group = run.child.pid!;
  try { process.kill(-group, 'SIGTERM'); } catch { /* already gone */ }
  const deadline = Date.now() + 10_000;
  const alive = (): boolean => groupAlive(group) || pids.some((pid) => { try { process.kill(pid, 0); return true; } catch { return false; } });
  while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (groupAlive(group)) process.kill(-group, 'SIGKILL');
  for (const pid of pids) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
}

function withDeadline<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${BLOCK_DEADLINE_MS / 1000} s`)), BLOCK_DEADLINE_MS);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

async function askVersion(port: number): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  socket.setTimeout(10_000, () => socket.destroy(new Error('no answer to version')));
  socket.end('version\r\n');
  let reply = '';
  socket.on('data', (chunk: Buffer) => (reply += chunk.toString()));
  await once(socket, 'close');
  return reply;
}

async function runDemo(block: ShellBlock): Promise<void> {
  const ports = await portMap(block.code + block.output!);
  const scratch = scratchFor(block, ports);
  const run = runScript(rewriteCommands(block.code, ports, scratch), scratch);
  try {
    const code = await withDeadline(run.exited, `${block.document}:${block.line}`);
    assert.equal(code, 0, `the block exited with ${code}:\n${run.stderr()}`);
    assert.equal(run.stdout().replaceAll('\r\n', '\n'), rewritePorts(block.output!, ports), run.stderr());
  } finally {
    await stopAll(run, scratch);
  }
}

async function runAlternatives(block: ShellBlock): Promise<void> {
  const ports = await portMap(block.code);
  const scratch = scratchFor(block, ports);
  const lines = rewriteCommands(block.code, ports, scratch).split('\n').filter((l) => l.trim() !== '' && !l.trim().startsWith('#'));
  const setup = lines.filter((l) => !STARTS_SERVER.test(l));
  const servers = lines.filter((l) => STARTS_SERVER.test(l));
  assert.ok(servers.length > 0);
  // Servers that name each other with --peer form one mesh: they start together.
  const mesh = servers.filter((l) => /--peer[\s=]/.test(l));
  const groups = [...servers.filter((l) => !mesh.includes(l)).map((l) => [l]), ...(mesh.length > 0 ? [mesh] : [])];
  for (const group of groups) {
    const what = group.join('; ');
    const script = [...setup, ...group.map((l) => l.replace(/&?\s*(#.*)?$/, group.length > 1 ? ' &' : '')), 'wait'].join('\n');
    const run = runScript(script, scratch);
    try {
      const listening = await withDeadline(
        new Promise<string[]>((resolve, reject) => {
          const check = setInterval(() => {
            const ready = [...run.stderr().matchAll(/listening on (.*)\n/g)].map((m) => m[1]!);
            if (ready.length === group.length) {
              clearInterval(check);
              resolve(ready);
            }
          }, 50);
          void run.exited.then((code) => {
            clearInterval(check);
            reject(new Error(`\`${what}\` exited with ${code} before serving:\n${run.stderr()}`));
          });
        }),
        what,
      );
      for (const [, port] of listening.join('\n').matchAll(/tcp [^\s,]+:(\d+)/g)) {
        assert.match(await askVersion(Number(port)), /^VERSION \S+\r\n$/, `${what}: version on port ${port}`);
      }
      for (const [url] of what.matchAll(/http:\/\/127\.0\.0\.1:\d+\/\S*/g)) {
        const response = await fetch(url);
        assert.equal(response.status, 200, `${what}: ${url}`);
      }
    } finally {
      await stopAll(run, scratch);
    }
  }
}

const blocks = DOCUMENTS.flatMap(shellBlocks);

// The blocks mostly wait (Node starts, nc -q1, peer waits): a few at a time keep the file short.
describe('shell blocks in the docs', { timeout: 10 * BLOCK_DEADLINE_MS, concurrency: 4 }, () => {
  it('finds the demos and server lines the docs have', () => {
    assert.ok(blocks.filter((b) => b.output !== null).length >= 3, 'demos with shown output');
    assert.ok(blocks.filter((b) => b.output === null).length >= 3, 'blocks of server lines');
    for (const block of blocks) {
      assert.doesNotMatch(block.code, /\|\s*nc (?!-q1)/, `${block.document}:${block.line}: nc without -q1 does not return on Debian`);
      assert.doesNotMatch(block.code, /(^|[\s;&(])mnemo\s+-/m, `${block.document}:${block.line}: \`mnemo\` is not on PATH; use bin/mnemo`);
    }
    assert.ok(existsSync(join(ROOT, 'dist', 'main.js')), 'npm run build first');
  });
  for (const block of blocks) {
    const name = `${block.document}:${block.line} ${block.output === null ? 'starts and answers' : 'prints what the docs show'}`;
    it(name, () => (block.output === null ? runAlternatives(block) : runDemo(block)));
  }
});
