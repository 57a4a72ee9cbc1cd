import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { ServerContext } from './context.js';
import { OutputBuffer } from './output.js';
import { BinaryProtocol } from '../protocol/binary.js';
import { SaslAuthenticator } from '../protocol/sasl.js';
import { TextProtocol } from '../protocol/text.js';

/** What the UDP socket shows in `stats conns`: the time of its last datagram. */
interface UdpEntry {
  lastActive: number;
}

/** memcached's UDP frame: request id, sequence number, datagram count, reserved (2 bytes each). */
const HEADER = 8;
/** memcached keeps each reply datagram, header included, within this size. */
const MAX_DATAGRAM = 1400;

/**
 * The text and binary protocols over UDP, framed as memcached frames them: every
 * request is one datagram after an 8-byte header (a 0x80 after it: binary, as
 * memcached decides per datagram); the reply is split into datagrams that each
 * carry the request id, their sequence number and the total count.
 */
export class UdpListener {
  private readonly socket: Socket;
  private readonly out = new OutputBuffer((pieces, keepEmpty) => this.sendResponse(pieces, keepEmpty));
  /** Where the datagram being answered came from. */
  private requestId = 0;
  private remote: RemoteInfo | null = null;

  constructor(
    private readonly ctx: ServerContext,
    private readonly entry: UdpEntry,
  ) {
    this.socket = createSocket({ type: isIPv6(ctx.config.listen) ? 'udp6' : 'udp4', reuseAddr: false });
    this.socket.on('message', (message, remote) => this.onMessage(message, remote));
    this.socket.on('error', (error) => ctx.log.warn({ err: error }, 'udp error'));
  }

  listen(host: string, port: number): Promise<{ address: string; port: number }> {
    return new Promise((resolve, reject) => {
      this.socket.once('error', reject);
      this.socket.bind(port, host, () => {
        this.socket.off('error', reject);
        resolve(this.socket.address());
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }

  private onMessage(message: Buffer, remote: RemoteInfo): void {
    // Shorter than a header, or one datagram of a multi-datagram request: memcached ignores both.
    if (message.length <= HEADER) return;
    if (message.readUInt16BE(4) !== 1) return;
    this.ctx.counters.bytes_read += message.length;
    this.requestId = message.readUInt16BE(0);
    this.remote = remote;
    this.entry.lastActive = this.ctx.clock.now;

    // Each datagram stands alone: a command cut short is dropped with it.
    const protocol =
      message[HEADER] === 0x80 && this.ctx.config.protocol !== 'ascii'
        ? new BinaryProtocol(this.ctx, this.out, this.ctx.saslPasswords === null ? null : new SaslAuthenticator(this.ctx.saslPasswords), Infinity, null, Infinity)
        : new TextProtocol(this.ctx, this.out, Infinity, null, Infinity);
    protocol.execute(message, HEADER, message.length);
    this.out.endResponse();
  }

  /**
   * Sends one response as its own run of datagrams, numbered 0..count-1. An empty
   * response is dropped unless kept: memcached then sends a bare header saying
   * zero datagrams, and clients may count on seeing it.
   */
  private sendResponse(pieces: Buffer[], keepEmpty: boolean): void {
    if (this.remote === null) return;
    if (pieces.length === 0 && !keepEmpty) return;
    const reply = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
    const { requestId, remote } = this;
    const payload = MAX_DATAGRAM - HEADER;
    const count = Math.ceil(reply.length / payload);
    // An empty response still goes out once, as a header that counts zero datagrams.
    for (let sequence = 0; sequence < Math.max(count, 1); sequence++) {
      const body = reply.subarray(sequence * payload, (sequence + 1) * payload);
      const datagram = Buffer.allocUnsafe(HEADER + body.length);
      datagram.writeUInt16BE(requestId, 0);
      datagram.writeUInt16BE(sequence, 2);
      datagram.writeUInt16BE(count, 4);
      datagram.writeUInt16BE(0, 6);
      body.copy(datagram, HEADER);
      this.ctx.counters.bytes_written += datagram.length;
      this.socket.send(datagram, remote.port, remote.address);
    }
  }
}
