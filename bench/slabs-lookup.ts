/**
 * Indicative only: lookups of 100k keys, each read where it lies in a request
 * buffer ("get <key>\r\n" lines), through the slab arena's hash over key bytes
 * versus a Map keyed by key.toString('latin1') as the heap store (since deleted) did,
 * and a multi-get's finds with and without SlabArena.prefetch first.
 * Run: node --import tsx bench/slabs-lookup.ts
 */
import { SlabArena } from '../src/store/slabs/arena.js';

const COUNT = 100_000;
const ROUNDS = 7;

const lines: Buffer[] = [];
for (let i = 0; i < COUNT; i++) lines.push(Buffer.from(`get key:${(i * 2654435761) >>> 0}:${i}\r\n`, 'latin1'));
const request = Buffer.concat(lines);
const starts = new Int32Array(COUNT);
const ends = new Int32Array(COUNT);
let at = 0;
for (let i = 0; i < COUNT; i++) {
  starts[i] = at + 4;
  ends[i] = at + lines[i]!.length - 2;
  at += lines[i]!.length;
}

const value = Buffer.alloc(32, 0x61);
const arena = new SlabArena({ memoryLimit: 64 * 1024 * 1024 });
const map = new Map<string, { value: Buffer; flags: number }>();
for (let i = 0; i < COUNT; i++) {
  const start = starts[i]!;
  const end = ends[i]!;
  const ref = arena.allocate(end - start, value.length, 0, 0);
  arena.writeKey(ref, request, start, end);
  arena.writeValue(ref, 0, value, 0, value.length);
  arena.link(ref);
  map.set(request.toString('latin1', start, end), { value, flags: 0 });
}
while (arena.hashTable.expandStep(1024));

function arenaRound(): number {
  let found = 0;
  for (let i = 0; i < COUNT; i++) if (arena.find(request, starts[i]!, ends[i]!) !== 0) found++;
  return found;
}

function mapRound(): number {
  let found = 0;
  for (let i = 0; i < COUNT; i++) if (map.get(request.toString('latin1', starts[i]!, ends[i]!)) !== undefined) found++;
  return found;
}

function best(round: () => number): number {
  let fastest = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    if (round() !== COUNT) throw new Error('a key was not found');
    const ns = Number(process.hrtime.bigint() - t0);
    if (r > 0) fastest = Math.min(fastest, ns); // round 0 warms up
  }
  return (COUNT / fastest) * 1e9;
}

/** Sets over the existing keys: new item, key and value copied in, the old one replaced. */
function arenaSetRound(): number {
  for (let i = 0; i < COUNT; i++) {
    const start = starts[i]!;
    const end = ends[i]!;
    const ref = arena.allocate(end - start, value.length, 0, 0);
    arena.writeKey(ref, request, start, end);
    arena.writeValue(ref, 0, value, 0, value.length);
    const old = arena.find(request, start, end);
    if (old !== 0) arena.replace(old, ref);
    else arena.link(ref);
  }
  return COUNT;
}

function mapSetRound(): number {
  for (let i = 0; i < COUNT; i++) {
    const copy = Buffer.allocUnsafe(value.length);
    value.copy(copy);
    map.set(request.toString('latin1', starts[i]!, ends[i]!), { value: copy, flags: 0 });
  }
  return COUNT;
}

const output = Buffer.alloc(64 * 1024);
/** Hits copied into an output buffer, as a reply would be. */
function arenaGetRound(): number {
  let found = 0;
  let at = 0;
  for (let i = 0; i < COUNT; i++) {
    const ref = arena.find(request, starts[i]!, ends[i]!);
    if (ref === 0) continue;
    if (at + 64 > output.length) at = 0;
    at = arena.copyValueTo(ref, output, at);
    found++;
  }
  return found;
}

function mapGetRound(): number {
  let found = 0;
  let at = 0;
  for (let i = 0; i < COUNT; i++) {
    const entry = map.get(request.toString('latin1', starts[i]!, ends[i]!));
    if (entry === undefined) continue;
    if (at + 64 > output.length) at = 0;
    at += entry.value.copy(output, at);
    found++;
  }
  return found;
}

// A multi-get's keys: 16 at a time, in an order unrelated to where the items lie.
const MULTI = 16;
const shuffledStarts = new Int32Array(COUNT);
const shuffledEnds = new Int32Array(COUNT);
{
  const order = Array.from({ length: COUNT }, (_, i) => i);
  for (let i = COUNT - 1, seed = 1; i > 0; i--) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const j = seed % (i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  order.forEach((from, i) => {
    shuffledStarts[i] = starts[from]!;
    shuffledEnds[i] = ends[from]!;
  });
}

function multiGetRound(prefetch: boolean): number {
  let found = 0;
  for (let batch = 0; batch < COUNT; batch += MULTI) {
    const last = Math.min(batch + MULTI, COUNT);
    if (prefetch) arena.prefetch(request, shuffledStarts, shuffledEnds, batch, last);
    for (let i = batch; i < last; i++) if (arena.find(request, shuffledStarts[i]!, shuffledEnds[i]!) !== 0) found++;
  }
  return found;
}

function report(what: string, mapRate: number, arenaRate: number): void {
  console.log(
    `${what}: Map + toString ${(mapRate / 1e6).toFixed(2)} M/s, slab arena ${(arenaRate / 1e6).toFixed(2)} M/s (${(arenaRate / mapRate).toFixed(2)}x)`,
  );
}

report('lookups        ', best(mapRound), best(arenaRound));
report('gets + copy out', best(mapGetRound), best(arenaGetRound));
report('sets (replace) ', best(mapSetRound), best(arenaSetRound));
const plainRate = best(() => multiGetRound(false));
const prefetchRate = best(() => multiGetRound(true));
console.log(
  `multi-get of ${MULTI}, random order: finds ${(plainRate / 1e6).toFixed(2)} M/s, prefetch then finds ${(prefetchRate / 1e6).toFixed(2)} M/s (${(prefetchRate / plainRate).toFixed(2)}x)`,
);
console.log(`hashpower ${arena.hashPower}, ${arena.currItems} items, ${arena.pages.pageCount} pages`);
