import { performance } from 'node:perf_hooks';

/** Command families the latency histogram is labelled with. */
export const FAMILIES = ['get', 'set', 'delete', 'arithmetic', 'touch', 'meta', 'other'] as const;
export const GET = 0;
export const SET = 1;
export const DELETE = 2;
export const ARITHMETIC = 3;
export const TOUCH = 4;
export const META = 5;
export const OTHER = 6;

/** Upper bounds in seconds: from a few microseconds (a memory hit) to a slow disk read. */
export const BOUNDS = [0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1];

/**
 * Server-side time per command, by family, as plain counts in typed arrays: the
 * hot path pays two clock reads and a short loop, and only with --metrics-port.
 * /metrics exports the counts as a Prometheus histogram.
 */
export class LatencyRecorder {
  readonly counts = new Float64Array(FAMILIES.length * (BOUNDS.length + 1));
  readonly sums = new Float64Array(FAMILIES.length);
  readonly totals = new Float64Array(FAMILIES.length);

  constructor(readonly enabled: boolean) {}

  start(): number {
    return this.enabled ? performance.now() : 0;
  }

  /** Records one command of the family that began at start() (milliseconds from performance.now). */
  stop(family: number, startedAt: number): void {
    if (!this.enabled) return;
    const seconds = (performance.now() - startedAt) / 1000;
    let bucket = 0;
    while (bucket < BOUNDS.length && seconds > BOUNDS[bucket]!) bucket++;
    this.counts[family * (BOUNDS.length + 1) + bucket]!++;
    this.sums[family]! += seconds;
    this.totals[family]!++;
  }
}

/** The family of a text command from its name's first letters (see text.ts dispatch). */
export function textFamily(buf: Buffer, start: number, end: number): number {
  const length = end - start;
  switch (buf[start]) {
    case 0x67: // get gets gat gats
      return length >= 3 && buf[start + 1] === 0x61 ? TOUCH : GET;
    case 0x6d: // mg ms md ma mn me
      return META;
    case 0x73: // set, stats, shutdown
      return length === 3 ? SET : OTHER;
    case 0x61: // add append
    case 0x63: // cas cache_memlimit
    case 0x72: // replace
    case 0x70: // prepend
      return length <= 7 ? SET : OTHER;
    case 0x64: // delete decr debugtime
      return length === 6 ? DELETE : length === 4 ? ARITHMETIC : OTHER;
    case 0x69: // incr
      return ARITHMETIC;
    case 0x74: // touch
      return TOUCH;
    default:
      return OTHER;
  }
}

/** The family of a binary opcode. */
export function binaryFamily(opcode: number): number {
  switch (opcode) {
    case 0x00: case 0x09: case 0x0c: case 0x0d:
      return GET;
    case 0x01: case 0x02: case 0x03: case 0x0e: case 0x0f: case 0x11: case 0x12: case 0x13: case 0x19: case 0x1a:
      return SET;
    case 0x04: case 0x14:
      return DELETE;
    case 0x05: case 0x06: case 0x15: case 0x16:
      return ARITHMETIC;
    case 0x1c: case 0x1d: case 0x1e: case 0x23: case 0x24:
      return TOUCH;
    default:
      return OTHER;
  }
}
