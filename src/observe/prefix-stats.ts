/**
 * `stats detail`: per key-prefix counts of gets, hits, sets and deletes, where
 * the prefix is the part of the key before the -D delimiter (":" by default).
 * Off until `stats detail on` or -D, as in memcached, since it costs a lookup
 * per command.
 */
interface PrefixCounts {
  get: number;
  hit: number;
  set: number;
  del: number;
}

export class PrefixStats {
  private readonly byPrefix = new Map<string, PrefixCounts>();
  private readonly delimiter: number;

  constructor(
    delimiter: string,
    public enabled: boolean,
  ) {
    this.delimiter = delimiter.charCodeAt(0);
  }

  recordGet(key: Buffer, start: number, end: number, hit: boolean): void {
    const counts = this.find(key, start, end);
    if (counts === null) return;
    counts.get++;
    if (hit) counts.hit++;
  }

  recordSet(key: Buffer, start: number, end: number): void {
    const counts = this.find(key, start, end);
    if (counts !== null) counts.set++;
  }

  recordDelete(key: Buffer, start: number, end: number): void {
    const counts = this.find(key, start, end);
    if (counts !== null) counts.del++;
  }

  /** memcached's `stats detail dump` text. */
  dump(): string {
    let text = '';
    for (const [prefix, c] of this.byPrefix) text += `PREFIX ${prefix} get ${c.get} hit ${c.hit} set ${c.set} del ${c.del}\r\n`;
    return text + 'END\r\n';
  }

  reset(): void {
    this.byPrefix.clear();
  }

  private find(key: Buffer, start: number, end: number): PrefixCounts | null {
    // Within the key only: key is the whole read buffer, and indexOf would search on to
    // its end for every key (quadratic over a long multi-get line).
    const delimiter = this.delimiter;
    let at = start;
    while (at < end && key[at] !== delimiter) at++;
    if (at === end) return null;
    const prefix = key.toString('latin1', start, at);
    let counts = this.byPrefix.get(prefix);
    if (counts === undefined) {
      counts = { get: 0, hit: 0, set: 0, del: 0 };
      this.byPrefix.set(prefix, counts);
    }
    return counts;
  }
}
