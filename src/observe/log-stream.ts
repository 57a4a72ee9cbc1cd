import type { Socket } from 'node:net';
import type { ItemView } from '../store/store.js';

/**
 * memcached's log stream (`watch`, logger.c): connections that sent `watch
 * fetchers mutations evictions connevents` receive one line per event, in
 * memcached's format (`ts=<sec>.<usec> gid=<n> type=item_get key=… status=…`).
 * Each watcher is bounded as memcached bounds it (-o watcher_logbuf_size, in KB,
 * default 256): while its unsent lines fill that much, new lines are skipped and
 * counted, and the next line that fits is preceded by `skipped=<n>`.
 *
 * The protocols test one boolean per kind before building a line, so an
 * unwatched server pays nothing but that test.
 */

export const LogKind = { Fetchers: 1, Mutations: 2, Evictions: 4, ConnEvents: 8 } as const;

/** memcached's WATCHER_LIMIT. */
const MAX_WATCHERS = 20;
const DEFAULT_BUFFER_KB = 256;
/** memcached asks for the line's length plus this much room before writing it. */
const LINE_HEADROOM = 128;

export type GetStatus = 'not_found' | 'found' | 'flushed' | 'expired';
export type StoreStatus = 'not_stored' | 'stored' | 'exists' | 'not_found' | 'too_large' | 'no_memory';
export type CloseReason = 'error' | 'normal' | 'idle_timeout' | 'shutdown';

interface Watcher {
  readonly socket: Socket;
  readonly kinds: number;
  skipped: number;
}

export class LogStream {
  /** True while some watcher wants that kind of line. */
  fetchers = false;
  mutations = false;
  evictions = false;
  connEvents = false;
  /** memcached's log stats. */
  written = 0;
  skipped = 0;
  sent = 0;
  private gid = 0;
  private readonly watchers = new Set<Watcher>();
  private readonly bufferBytes: number;

  constructor(bufferKb = DEFAULT_BUFFER_KB) {
    this.bufferBytes = bufferKb * 1024;
  }

  get watcherCount(): number {
    return this.watchers.size;
  }

  /** Adds a watcher; false when memcached's limit of 20 is reached. */
  add(socket: Socket, kinds: number): boolean {
    if (this.watchers.size >= MAX_WATCHERS) return false;
    const watcher: Watcher = { socket, kinds, skipped: 0 };
    this.watchers.add(watcher);
    socket.once('close', () => {
      this.watchers.delete(watcher);
      this.updateKinds();
    });
    this.updateKinds();
    return true;
  }

  itemGet(key: Buffer, keyStart: number, keyEnd: number, status: GetStatus, sizeClass: number, cfd: number, size: number): void {
    this.emit(LogKind.Fetchers, `type=item_get key=${uriEncode(key, keyStart, keyEnd)} status=${status} clsid=${sizeClass} cfd=${cfd} size=${size}`);
  }

  /** ttl: seconds left, 0 for none (memcached prints it unsigned). */
  itemStore(key: Buffer, keyStart: number, keyEnd: number, status: StoreStatus, command: string, ttl: number, sizeClass: number, cfd: number, size: number): void {
    this.emit(
      LogKind.Mutations,
      `type=item_store key=${uriEncode(key, keyStart, keyEnd)} status=${status} cmd=${command} ttl=${ttl >>> 0} clsid=${sizeClass} cfd=${cfd} size=${size}`,
    );
  }

  /** The lookup a command made (memcached logs every do_item_get, a storage command's too). */
  fetched(key: Buffer, keyStart: number, keyEnd: number, item: ItemView | null, cfd: number): void {
    if (item === null) this.itemGet(key, keyStart, keyEnd, 'not_found', 0, cfd, 0);
    else this.itemGet(key, keyStart, keyEnd, 'found', item.sizeClass, cfd, item.valueLength);
  }

  /** A storage command's outcome; item: what the key holds afterwards, for its ttl and class. */
  stored(key: Buffer, keyStart: number, keyEnd: number, status: StoreStatus, command: string, item: ItemView | null, now: number, cfd: number, size: number): void {
    const ttl = item === null || item.exptime === 0 ? 0 : item.exptime - now;
    this.itemStore(key, keyStart, keyEnd, status, command, ttl, status === 'stored' && item !== null ? item.sizeClass : 0, cfd, size);
  }

  /** ttl: seconds left, -1 for none; lastAccess: seconds since. */
  eviction(key: string, fetched: boolean, ttl: number, lastAccess: number, sizeClass: number, size: number): void {
    const bytes = Buffer.from(key, 'latin1');
    this.emit(
      LogKind.Evictions,
      `type=eviction key=${uriEncode(bytes, 0, bytes.length)} fetch=${fetched ? 'yes' : 'no'} ttl=${ttl} la=${lastAccess} clsid=${sizeClass} size=${size}`,
    );
  }

  connNew(host: string, port: number, transport: 'local' | 'tcp' | 'udp', cfd: number): void {
    this.emit(LogKind.ConnEvents, `type=conn_new rip=${host} rport=${port} transport=${transport} cfd=${cfd}`);
  }

  connClose(host: string, port: number, transport: 'local' | 'tcp' | 'udp', reason: CloseReason, cfd: number): void {
    this.emit(LogKind.ConnEvents, `type=conn_close rip=${host} rport=${port} transport=${transport} reason=${reason} cfd=${cfd}`);
  }

  private emit(kind: number, body: string): void {
    const now = performance.timeOrigin + performance.now();
    const seconds = Math.floor(now / 1000);
    const micros = Math.floor((now - seconds * 1000) * 1000);
    const line = `ts=${seconds}.${micros} gid=${++this.gid} ${body}\n`;
    this.written++;
    for (const watcher of this.watchers) {
      if ((watcher.kinds & kind) === 0) continue;
      const socket = watcher.socket;
      if (socket.destroyed) continue;
      // Bounded per watcher: a watcher that does not keep up loses lines, not the server's memory.
      if (socket.writableLength + line.length + LINE_HEADROOM > this.bufferBytes) {
        watcher.skipped++;
        this.skipped++;
        continue;
      }
      if (watcher.skipped > 0) {
        socket.write(`skipped=${watcher.skipped}\n`);
        watcher.skipped = 0;
      }
      socket.write(line);
      this.sent++;
    }
  }

  private updateKinds(): void {
    let kinds = 0;
    for (const watcher of this.watchers) kinds |= watcher.kinds;
    this.fetchers = (kinds & LogKind.Fetchers) !== 0;
    this.mutations = (kinds & LogKind.Mutations) !== 0;
    this.evictions = (kinds & LogKind.Evictions) !== 0;
    this.connEvents = (kinds & LogKind.ConnEvents) !== 0;
  }
}

const HEX = '0123456789ABCDEF';

/** memcached's uriencode: letters, digits and -._~ stay, every other byte becomes %XX. */
export function uriEncode(key: Buffer, start: number, end: number): string {
  let text = '';
  for (let i = start; i < end; i++) {
    const c = key[i]!;
    const plain = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e;
    text += plain ? String.fromCharCode(c) : `%${HEX[c >> 4]}${HEX[c & 15]}`;
  }
  return text;
}
