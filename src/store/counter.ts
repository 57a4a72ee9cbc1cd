const MAX_U64 = (1n << 64n) - 1n;

function isCSpace(byte: number): boolean {
  return byte === 0x20 || (byte >= 0x09 && byte <= 0x0d);
}

/**
 * memcached's safe_strtoull over buf[start, end): optional leading whitespace, an
 * optional sign, decimal digits, then whitespace or the end. No digits, a
 * negative number or one past 2^64-1 is refused. incr/decr use it both for the
 * delta argument and for the stored value, whose end stands for the "\r\n" that
 * follows the data in memcached. Returns null when memcached would refuse.
 */
export function parseUnsigned64(buf: Buffer, start: number, end: number): bigint | null {
  if (start >= end) return null;
  let pos = start;
  while (pos < end && isCSpace(buf[pos]!)) pos++;
  let negative = false;
  if (pos < end && (buf[pos] === 0x2b || buf[pos] === 0x2d)) {
    negative = buf[pos] === 0x2d;
    pos++;
  }
  const digitsStart = pos;
  let number = 0n;
  // Accumulate up to 15 digits at a time rather than one BigInt per digit.
  while (pos < end) {
    let chunk = 0;
    let scale = 1;
    while (pos < end && scale < 1e15) {
      const byte = buf[pos]!;
      if (byte < 0x30 || byte > 0x39) break;
      chunk = chunk * 10 + (byte - 0x30);
      scale *= 10;
      pos++;
    }
    if (scale === 1) break;
    number = number * BigInt(scale) + BigInt(chunk);
    if (number > MAX_U64) return null;
  }
  if (pos === digitsStart) return null;
  if (pos < end && !isCSpace(buf[pos]!)) return null;
  if (negative && number !== 0n) return null;
  return number;
}
