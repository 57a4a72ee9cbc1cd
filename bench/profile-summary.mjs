#!/usr/bin/env node
// Summarises a V8 .cpuprofile (node --cpu-prof) by self time per function.
// Usage: node bench/profile-summary.mjs FILE.cpuprofile [--top=N] [--callers=FUNCTION]
//   --callers: also split FUNCTION's self time by the chain of its nearest callers.
// Profiles come from `node bench/run.mjs --scenarios=a --rounds=1 --cpu-prof=/tmp/mnemo-prof`;
// keep them out of the repository.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '25' }, callers: { type: 'string' } },
});
if (positionals.length !== 1) {
  console.error('usage: node bench/profile-summary.mjs FILE.cpuprofile [--top=N] [--callers=FUNCTION]');
  process.exit(2);
}
const top = Number(values.top);
const profile = JSON.parse(readFileSync(positionals[0], 'utf8'));

// Self time: each sample is attributed to one node; timeDeltas[i] is the time before sample i.
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const selfUs = new Map();
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i];
  selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
}
const total = [...selfUs.values()].reduce((a, b) => a + b, 0);

const byFunction = new Map();
for (const [id, us] of selfUs) {
  const cf = byId.get(id).callFrame;
  const where = cf.url ? `${path.basename(cf.url)}:${cf.lineNumber + 1}` : '';
  const key = `${cf.functionName || '(anonymous)'} ${where}`.trim();
  byFunction.set(key, (byFunction.get(key) ?? 0) + us);
}

const idleKeys = ['(idle)', '(program)', '(garbage collector)'];
const busy = total - idleKeys.reduce((a, k) => a + (byFunction.get(k) ?? 0), 0) + (byFunction.get('(garbage collector)') ?? 0);
console.log(`profile: ${(total / 1e6).toFixed(2)} s sampled, ${(busy / 1e6).toFixed(2)} s not idle/program`);
console.log('self ms   % busy  function');
for (const [key, us] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  const pct = idleKeys.slice(0, 2).includes(key) ? '    -' : ((us / busy) * 100).toFixed(1).padStart(5);
  console.log(`${(us / 1000).toFixed(0).padStart(7)}  ${pct}%  ${key}`);
}

if (values.callers) {
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const name = (id) => {
    const cf = byId.get(id).callFrame;
    return `${cf.functionName || '(anonymous)'}${cf.url ? ` ${path.basename(cf.url)}:${cf.lineNumber + 1}` : ''}`;
  };
  const chains = new Map();
  for (const [id, us] of selfUs) {
    if (byId.get(id).callFrame.functionName !== values.callers) continue;
    const chain = [];
    for (let p = parent.get(id); p !== undefined && chain.length < 4; p = parent.get(p)) chain.push(name(p));
    const key = chain.join(' < ');
    chains.set(key, (chains.get(key) ?? 0) + us);
  }
  console.log(`\ncallers of ${values.callers} (self ms, nearest caller first):`);
  for (const [key, us] of [...chains].sort((a, b) => b[1] - a[1]).slice(0, 10)) {
    console.log(`${(us / 1000).toFixed(0).padStart(7)}  ${key}`);
  }
}
