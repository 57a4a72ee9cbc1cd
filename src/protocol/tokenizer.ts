/**
 * memcached's tokenize_command: splits a command line on single spaces (runs of
 * spaces make no empty tokens), stops at a NUL as the C string would, and after
 * MAX_TOKENS - 1 tokens leaves the rest of the line for the caller (get and
 * friends tokenize it in further rounds). Token bounds live in shared typed
 * arrays: commands run one at a time, so one Tokenizer serves every connection.
 */
export const MAX_TOKENS = 24;
const SP = 0x20;

export class Tokenizer {
  readonly start = new Int32Array(MAX_TOKENS);
  readonly end = new Int32Array(MAX_TOKENS);
  /** Tokens found plus the terminal one, as memcached counts them (ntokens). */
  count = 0;
  /** Where tokenizing stopped on a line with more than MAX_TOKENS - 1 tokens, or -1. */
  rest = -1;
  /** End of the tokenized line: its newline, or an earlier NUL. */
  lineEnd = 0;
  /** Length of the longest token found. */
  longest = 0;

  tokenize(buf: Buffer, from: number, to: number): number {
    let count = 0;
    let tokenBegin = from;
    let i = from;
    let longest = 0;
    this.rest = -1;
    for (; i < to; i++) {
      const byte = buf[i]!;
      if (byte === 0) {
        to = i;
        break;
      }
      if (byte === SP) {
        if (tokenBegin !== i) {
          this.start[count] = tokenBegin;
          this.end[count] = i;
          if (i - tokenBegin > longest) longest = i - tokenBegin;
          count++;
          if (count === MAX_TOKENS - 1) {
            i++;
            tokenBegin = i;
            if (i < to && buf[i] !== 0) this.rest = i;
            break;
          }
        }
        tokenBegin = i + 1;
      }
    }
    if (tokenBegin < i) {
      this.start[count] = tokenBegin;
      this.end[count] = i;
      if (i - tokenBegin > longest) longest = i - tokenBegin;
      count++;
    }
    this.start[count] = i;
    this.end[count] = i;
    this.lineEnd = to;
    this.longest = longest;
    this.count = count + 1;
    return this.count;
  }

  /** True when token index equals word. */
  is(buf: Buffer, index: number, word: Buffer): boolean {
    return bytesEqual(buf, this.start[index]!, this.end[index]!, word);
  }

  length(index: number): number {
    return this.end[index]! - this.start[index]!;
  }
}

export function bytesEqual(buf: Buffer, start: number, end: number, word: Buffer): boolean {
  const length = word.length;
  if (end - start !== length) return false;
  for (let i = 0; i < length; i++) {
    if (buf[start + i] !== word[i]) return false;
  }
  return true;
}

export function startsWith(buf: Buffer, start: number, end: number, prefix: string): boolean {
  if (end - start < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    if (buf[start + i] !== prefix.charCodeAt(i)) return false;
  }
  return true;
}

/** One tokenizer for every connection: commands never interleave. */
export const tokens = new Tokenizer();
