/** Builds memcached binary-protocol requests and splits responses, for tests. */

export interface BinaryRequest {
  opcode: number;
  key?: string;
  extras?: Buffer;
  value?: string | Buffer;
  cas?: bigint;
  opaque?: number;
  /** Overrides the lengths in the header, to send malformed requests. */
  keyLength?: number;
  bodyLength?: number;
  magic?: number;
}

export function request(r: BinaryRequest): Buffer {
  const key = Buffer.from(r.key ?? '', 'latin1');
  const extras = r.extras ?? Buffer.alloc(0);
  const value = typeof r.value === 'string' ? Buffer.from(r.value, 'latin1') : (r.value ?? Buffer.alloc(0));
  const header = Buffer.alloc(24);
  header[0] = r.magic ?? 0x80;
  header[1] = r.opcode;
  header.writeUInt16BE(r.keyLength ?? key.length, 2);
  header[4] = extras.length;
  header.writeUInt32BE(r.bodyLength ?? extras.length + key.length + value.length, 8);
  header.writeUInt32BE(r.opaque ?? 0, 12);
  header.writeBigUInt64BE(r.cas ?? 0n, 16);
  return Buffer.concat([header, extras, key, value]);
}

/** Extras for set/add/replace: flags and expiration. */
export function storeExtras(flags: number, exptime: number): Buffer {
  const extras = Buffer.alloc(8);
  extras.writeUInt32BE(flags, 0);
  extras.writeUInt32BE(exptime >>> 0, 4);
  return extras;
}

/** Extras for incr/decr: delta, initial value, expiration (0xffffffff: do not create). */
export function deltaExtras(delta: bigint, initial: bigint, exptime: number): Buffer {
  const extras = Buffer.alloc(20);
  extras.writeBigUInt64BE(delta, 0);
  extras.writeBigUInt64BE(initial, 8);
  extras.writeUInt32BE(exptime >>> 0, 16);
  return extras;
}

export function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value >>> 0, 0);
  return b;
}

export interface BinaryResponse {
  opcode: number;
  status: number;
  opaque: number;
  cas: bigint;
  extras: Buffer;
  key: string;
  value: Buffer;
}

/** Splits a byte stream into whole responses; the second element is what is left over. */
export function parseResponses(data: Buffer): [BinaryResponse[], Buffer] {
  const responses: BinaryResponse[] = [];
  let pos = 0;
  while (data.length - pos >= 24) {
    const keyLength = data.readUInt16BE(pos + 2);
    const extrasLength = data[pos + 4]!;
    const bodyLength = data.readUInt32BE(pos + 8);
    if (data.length - pos < 24 + bodyLength) break;
    const body = data.subarray(pos + 24, pos + 24 + bodyLength);
    responses.push({
      opcode: data[pos + 1]!,
      status: data.readUInt16BE(pos + 6),
      opaque: data.readUInt32BE(pos + 12),
      cas: data.readBigUInt64BE(pos + 16),
      extras: body.subarray(0, extrasLength),
      key: body.subarray(extrasLength, extrasLength + keyLength).toString('latin1'),
      value: body.subarray(extrasLength + keyLength),
    });
    pos += 24 + bodyLength;
  }
  return [responses, data.subarray(pos)];
}

/** A readable, comparable line per response: CAS shown only as zero or not. */
export function describe(r: BinaryResponse): string {
  const value = r.opcode === 0x0b ? '<version>' : JSON.stringify(r.value.toString('latin1'));
  return `op=${r.opcode.toString(16)} status=${r.status.toString(16)} opaque=${r.opaque} cas=${r.cas === 0n ? 0 : 'set'} extras=${r.extras.toString('hex')} key=${JSON.stringify(r.key)} value=${value}`;
}
