/** What a log entry is. */
export const KIND_ITEM = 1;
export const KIND_TOMB = 2;
export const KIND_FLUSH = 3;
/** A new expiry only: flags holds the base version's node, and the base version's hlc is kept apart. */
export const KIND_TOUCH = 4;

/** Entries and value bytes the log keeps for peers that fall behind or reconnect. */
export const LOG_ENTRIES = 1 << 17;
export const LOG_BYTES = 64 * 1024 * 1024;

/**
 * The changes this node originated, in order: a ring of parallel arrays (no object
 * per change). It is the send queue of every subscribed peer (each keeps a cursor,
 * the last sequence number it was sent), and what a briefly disconnected peer
 * catches up from. Values are referenced, not copied: the store never mutates them.
 * Sequence numbers start at 1; the log holds (tail, head].
 */
export class ChangeLog {
  /** Last sequence number given out. */
  head = 0;
  /** Entries up to and including tail are gone; a cursor below it needs a full sync. */
  tail = 0;
  private bytes = 0;
  private readonly kinds = new Uint8Array(LOG_ENTRIES);
  private readonly keys: string[] = new Array<string>(LOG_ENTRIES).fill('');
  private readonly values: Array<Buffer | null> = new Array<Buffer | null>(LOG_ENTRIES).fill(null);
  private readonly flags = new Uint32Array(LOG_ENTRIES);
  /** Item exptime (absolute unix seconds), or a delayed flush's time. */
  private readonly times = new Float64Array(LOG_ENTRIES);
  private readonly hlcs = new Float64Array(LOG_ENTRIES);
  private readonly binaryKeys = new Uint8Array(LOG_ENTRIES);
  /** KIND_TOUCH: the hlc of the version the touch applies to. */
  private readonly baseHlcs = new Float64Array(LOG_ENTRIES);

  constructor(private readonly maxBytes = LOG_BYTES) {}

  append(kind: number, key: string, value: Buffer | null, flags: number, time: number, hlc: number, binaryKey: boolean, baseHlc = 0): void {
    if (this.head - this.tail === LOG_ENTRIES) this.dropOldest();
    const seq = ++this.head;
    const slot = seq % LOG_ENTRIES;
    this.kinds[slot] = kind;
    this.keys[slot] = key;
    this.values[slot] = value;
    this.flags[slot] = flags;
    this.times[slot] = time;
    this.hlcs[slot] = hlc;
    this.binaryKeys[slot] = binaryKey ? 1 : 0;
    this.baseHlcs[slot] = baseHlc;
    if (value !== null) {
      this.bytes += value.length;
      while (this.bytes > this.maxBytes && this.head - this.tail > 1) this.dropOldest();
    }
  }

  private dropOldest(): void {
    const slot = ++this.tail % LOG_ENTRIES;
    const value = this.values[slot];
    if (value != null) this.bytes -= value.length;
    this.values[slot] = null;
    this.keys[slot] = '';
  }

  kind(seq: number): number {
    return this.kinds[seq % LOG_ENTRIES]!;
  }
  key(seq: number): string {
    return this.keys[seq % LOG_ENTRIES]!;
  }
  value(seq: number): Buffer | null {
    return this.values[seq % LOG_ENTRIES]!;
  }
  flagsOf(seq: number): number {
    return this.flags[seq % LOG_ENTRIES]!;
  }
  time(seq: number): number {
    return this.times[seq % LOG_ENTRIES]!;
  }
  hlc(seq: number): number {
    return this.hlcs[seq % LOG_ENTRIES]!;
  }
  baseHlc(seq: number): number {
    return this.baseHlcs[seq % LOG_ENTRIES]!;
  }
  binaryKey(seq: number): boolean {
    return this.binaryKeys[seq % LOG_ENTRIES] === 1;
  }
}
