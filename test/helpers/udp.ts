import { createSocket } from 'node:dgram';

/**
 * Sends one memcached UDP request (8-byte frame header + payload) and collects
 * the reply datagrams until all of them arrived; returns them in arrival order.
 */
export async function udpRequest(port: number, payload: string | Buffer, requestId = 7, timeoutMs = 2000): Promise<Buffer[]> {
  const socket = createSocket('udp4');
  const body = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload;
  const header = Buffer.alloc(8);
  header.writeUInt16BE(requestId, 0);
  header.writeUInt16BE(0, 2);
  header.writeUInt16BE(1, 4);
  const datagrams: Buffer[] = [];
  try {
    return await new Promise<Buffer[]>((resolve, reject) => {
      const timer = setTimeout(() => (datagrams.length > 0 ? resolve(datagrams) : reject(new Error('no UDP reply'))), timeoutMs);
      socket.on('message', (message) => {
        datagrams.push(message);
        if (datagrams.length === message.readUInt16BE(4)) {
          clearTimeout(timer);
          resolve(datagrams);
        }
      });
      socket.send(Buffer.concat([header, body]), port, '127.0.0.1');
    });
  } finally {
    socket.close();
  }
}

/** The reply payload, reassembled by sequence number. */
export function reassemble(datagrams: Buffer[]): string {
  const ordered = [...datagrams].sort((a, b) => a.readUInt16BE(2) - b.readUInt16BE(2));
  return Buffer.concat(ordered.map((d) => d.subarray(8))).toString('latin1');
}
