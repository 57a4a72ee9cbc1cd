/**
 * memcached reads every number with strtol/strtoul/strtoull wrapped in its
 * safe_* helpers (util.c). Clients and tests depend on exactly what those accept,
 * so these follow them: optional leading whitespace and sign, decimal digits,
 * then whitespace or the end; out-of-range (ERANGE) refused; a minus sign on an
 * unsigned number refused only when the wrapped result is 2^63 or more; and
 * 32-bit targets silently keep the low 32 bits, as the C assignment does.
 *
 * The common case (plain digits, at most 15 of them) never leaves plain numbers.
 */

const U64 = 1n << 64n;
const I64_MAX = (1n << 63n) - 1n;

function isCSpace(byte: number): boolean {
  return byte === 0x20 || (byte >= 0x09 && byte <= 0x0d);
}

/** Plain digits only, short enough to be exact as a double; -1 otherwise. */
function fastDigits(buf: Buffer, start: number, end: number): number {
  const length = end - start;
  if (length === 0 || length > 15) return -1;
  let value = 0;
  for (let i = start; i < end; i++) {
    const digit = buf[i]! - 0x30;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value;
}

interface CParse {
  negative: boolean;
  magnitude: bigint;
}

/** The digits strtol would read, or null when it would convert nothing or stop at a non-space. */
function scan(buf: Buffer, start: number, end: number): CParse | null {
  let pos = start;
  while (pos < end && isCSpace(buf[pos]!)) pos++;
  let negative = false;
  if (pos < end && (buf[pos] === 0x2b || buf[pos] === 0x2d)) {
    negative = buf[pos] === 0x2d;
    pos++;
  }
  const digits = pos;
  while (pos < end && buf[pos]! >= 0x30 && buf[pos]! <= 0x39) pos++;
  if (pos === digits) return null;
  // A NUL ends the C string (a stored value such as "12\0" counts as 12 for incr).
  if (pos < end && !isCSpace(buf[pos]!) && buf[pos] !== 0) return null;
  return { negative, magnitude: BigInt(buf.toString('latin1', digits, pos)) };
}

/** safe_strtoull: the C unsigned 64-bit result, or null. */
export function parseU64(buf: Buffer, start: number, end: number): bigint | null {
  const fast = fastDigits(buf, start, end);
  if (fast >= 0) return BigInt(fast);
  const parsed = scan(buf, start, end);
  if (parsed === null || parsed.magnitude >= U64) return null;
  const value = parsed.negative ? (U64 - parsed.magnitude) % U64 : parsed.magnitude;
  if (parsed.negative && value > I64_MAX) return null;
  return value;
}

/** safe_strtoull for a CAS unique: exact up to 2^53, Infinity above (no CAS here gets that high). */
export function parseCasUnique(buf: Buffer, start: number, end: number): number {
  const fast = fastDigits(buf, start, end);
  if (fast >= 0) return fast;
  const value = parseU64(buf, start, end);
  if (value === null) return NaN;
  return value > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(value);
}

/** safe_strtoul into a uint32 (flags, verbosity, cache_memlimit): NaN when refused. */
export function parseU32(buf: Buffer, start: number, end: number): number {
  const fast = fastDigits(buf, start, end);
  if (fast >= 0) return fast <= 0xffffffff ? fast : Number(BigInt(fast) & 0xffffffffn);
  const value = parseU64(buf, start, end);
  return value === null ? NaN : Number(value & 0xffffffffn);
}

/** safe_strtol into an int32 (exptime, byte counts, delays): NaN when refused. */
export function parseI32(buf: Buffer, start: number, end: number): number {
  const fast = fastDigits(buf, start, end);
  if (fast >= 0) return fast <= 0x7fffffff ? fast : Number(BigInt.asIntN(32, BigInt(fast)));
  const parsed = scan(buf, start, end);
  if (parsed === null) return NaN;
  const value = parsed.negative ? -parsed.magnitude : parsed.magnitude;
  if (value > I64_MAX || value < -I64_MAX - 1n) return NaN;
  return Number(BigInt.asIntN(32, value));
}
