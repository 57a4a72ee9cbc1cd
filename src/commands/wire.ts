/**
 * The wire format a command arrived in. Command semantics are the same for all
 * three except where memcached's own counters or refusals differ by protocol;
 * each such difference is written once, in src/commands/, as a test on this.
 */
export const Wire = {
  Text: 0,
  Meta: 1,
  Binary: 2,
} as const;
export type Wire = (typeof Wire)[keyof typeof Wire];
