/**
 * memcached reads numeric arguments with strtoul/strtol/strtoull wrapped in its
 * safe_* checks (util.c). Clients rely on exactly what those accept, so these
 * follow them byte for byte: leading whitespace and a sign are allowed, the
 * number must be followed by whitespace or the end of the token, and results are
 * range-checked as the C code does. Each returns NaN when memcached would refuse.
 */

function isCSpace(byte: number): boolean {
  return byte === 0x20 || (byte >= 0x09 && byte <= 0x0d);
}

/** Returns the signed value of buf[start, end) as strtoll would read it, or NaN. */
function readDecimal(buf: Buffer, start: number, end: number, maxMagnitude: bigint): number {
  let pos = start;
  while (pos < end && isCSpace(buf[pos]!)) pos++;
  let negative = false;
  if (pos < end && (buf[pos] === 0x2b || buf[pos] === 0x2d)) {
    negative = buf[pos] === 0x2d;
    pos++;
  }
  const digitsStart = pos;
  while (pos < end && buf[pos]! >= 0x30 && buf[pos]! <= 0x39) pos++;
  if (pos === digitsStart) return NaN;
  if (pos < end && !isCSpace(buf[pos]!)) return NaN;
  if (pos - digitsStart <= 15) {
    let value = 0;
    for (let i = digitsStart; i < pos; i++) value = value * 10 + (buf[i]! - 0x30);
    return negative ? -value : value;
  }
  const big = BigInt(buf.toString('latin1', digitsStart, pos));
  if (big > maxMagnitude) return NaN; // ERANGE
  return Number(negative ? -big : big);
}

const LONG_MAX = (1n << 63n) - 1n;
const ULONG_MAX = (1n << 64n) - 1n;

/** safe_strtol into an int32: refuses values outside the 32-bit range. */
export function parseInt32(buf: Buffer, start: number, end: number): number {
  const value = readDecimal(buf, start, end, LONG_MAX);
  if (value > 2147483647 || value < -2147483648) return NaN;
  return value;
}

/**
 * safe_strtoul into a uint32. A negative number is refused only when it is large
 * enough to look negative as a signed long, as in memcached; the result keeps
 * the low 32 bits, as the C assignment does.
 */
export function parseUint32(buf: Buffer, start: number, end: number): number {
  const value = readDecimal(buf, start, end, ULONG_MAX);
  if (Number.isNaN(value)) return NaN;
  if (value < 0) return NaN;
  if (value <= 0xffffffff) return value;
  if (value >= 2 ** 63) return NaN;
  return Number(BigInt(value) & 0xffffffffn);
}

/** safe_strtoull: the full unsigned 64-bit range, as a number when exact or Infinity past 2^53. */
export function parseUint64(buf: Buffer, start: number, end: number): number {
  const value = readDecimal(buf, start, end, ULONG_MAX);
  if (Number.isNaN(value) || value < 0) return NaN;
  return value > Number.MAX_SAFE_INTEGER ? Infinity : value;
}
