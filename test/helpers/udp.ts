import { createSocket } from 'node:dgram';

/**
 * Sends one memcached UDP request (8-byte frame header + payload) and collects
 * reply datagrams until none arrived for quietMs; returns them in arrival order.
 * (A request may get several responses, each a run of datagrams numbered 0..n-1.)
 */
export async function udpRequest(port: number, payload: string | Buffer, requestId = 7, quietMs = 150): Promise<Buffer[]> {
  const socket = createSocket('udp4');
  const body = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload;
  const header = Buffer.alloc(8);
  header.writeUInt16BE(requestId, 0);
  header.writeUInt16BE(0, 2);
  header.writeUInt16BE(1, 4);
  const datagrams: Buffer[] = [];
  try {
    return await new Promise<Buffer[]>((resolve, reject) => {
      const settle = () => (datagrams.length > 0 ? resolve(datagrams) : reject(new Error('no UDP reply')));
      let timer = setTimeout(settle, 2000);
      socket.on('message', (message) => {
        datagrams.push(message);
        clearTimeout(timer);
        timer = setTimeout(settle, quietMs);
      });
      socket.send(Buffer.concat([header, body]), port, '127.0.0.1');
    });
  } finally {
    socket.close();
  }
}

/** The reply payloads in arrival order (loopback keeps order), headers dropped. */
export function reassemble(datagrams: Buffer[]): string {
  return Buffer.concat(datagrams.map((d) => d.subarray(8))).toString('latin1');
}

/** Each datagram as "[sequence/count]payload", to compare framing as well as bytes. */
export function framed(datagrams: Buffer[]): string {
  return datagrams.map((d) => `[${d.readUInt16BE(2)}/${d.readUInt16BE(4)}]${d.subarray(8).toString('latin1')}`).join('');
}
