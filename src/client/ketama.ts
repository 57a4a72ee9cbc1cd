/**
 * Weighted ketama, point for point as libmemcached builds it with
 * MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED and as twemproxy does for `distribution: ketama`
 * (the two share the code): each live server gets 160 points scaled by its share of
 * the live weight, four points per MD5 of "<label>-<n>", and a key goes to the first
 * point at or after the MD5 of the key, wrapping around.
 */
import { createHash } from 'node:crypto';

const POINTS_PER_SERVER = 160;
const POINTS_PER_HASH = 4;
/** libmemcached and twemproxy leave this port out of a server's label. */
const DEFAULT_PORT = 11211;

export interface RingMember {
  /** The text hashed for the server's points: see ketamaLabel. */
  readonly label: string;
  readonly weight: number;
}

/** The sorted points: values[i] belongs to members[owners[i]]. */
export interface Continuum {
  readonly values: Uint32Array;
  readonly owners: Uint32Array;
}

/**
 * The label twemproxy hashes: the server's name when it has one, else "host:port",
 * or just "host" on port 11211 (libmemcached's rule, which twemproxy keeps).
 */
export function ketamaLabel(host: string, port: number, name?: string): string {
  if (name !== undefined && name !== '') return name;
  return port === DEFAULT_PORT ? host : `${host}:${port}`;
}

function md5(data: string | Buffer): Buffer {
  return createHash('md5').update(data).digest();
}

/** The hash a key is placed by: the first four bytes of its MD5, little-endian. */
export function ketamaKeyHash(key: Buffer): number {
  return md5(key).readUInt32LE(0);
}

/**
 * How many points a server gets. The C code does this in float arithmetic, so each
 * step is rounded to float here too: with weights 1,10,6,6,2 a double computation
 * gives the weight-1 server 32 points where libmemcached and twemproxy give 28.
 */
export function pointsFor(weight: number, totalWeight: number, liveServers: number): number {
  const f = Math.fround;
  const share = f(f(weight) / f(totalWeight));
  const scaled = f(f(f(share * POINTS_PER_SERVER) / POINTS_PER_HASH) * f(liveServers));
  // `+ 0.0000000001` is a double, and the sum is cast back to float before floor.
  return Math.floor(f(scaled + 0.0000000001)) * POINTS_PER_HASH;
}

/** Builds the continuum over the given (live) members, in their order. */
export function buildContinuum(members: readonly RingMember[]): Continuum {
  let totalWeight = 0;
  for (const member of members) totalWeight += member.weight;
  const points: Array<{ value: number; owner: number }> = [];
  for (let owner = 0; owner < members.length; owner++) {
    const member = members[owner]!;
    const count = pointsFor(member.weight, totalWeight, members.length);
    for (let n = 0; n < count / POINTS_PER_HASH; n++) {
      const digest = md5(`${member.label}-${n}`);
      for (let slot = 0; slot < POINTS_PER_HASH; slot++) points.push({ value: digest.readUInt32LE(slot * 4), owner });
    }
  }
  // Both C versions use qsort, which is not stable; ties between servers are rare
  // enough (about 1 in 10^4 rings of five servers) that the owner breaks them here.
  points.sort((a, b) => a.value - b.value || a.owner - b.owner);
  const values = new Uint32Array(points.length);
  const owners = new Uint32Array(points.length);
  for (let i = 0; i < points.length; i++) {
    values[i] = points[i]!.value;
    owners[i] = points[i]!.owner;
  }
  return { values, owners };
}

/** The member index for a key hash: first point >= hash, else the first point. */
export function lookup(continuum: Continuum, hash: number): number {
  const { values, owners } = continuum;
  let left = 0;
  let right = values.length;
  while (left < right) {
    const middle = (left + right) >>> 1;
    if (values[middle]! < hash) left = middle + 1;
    else right = middle;
  }
  return owners[right === values.length ? 0 : right]!;
}
