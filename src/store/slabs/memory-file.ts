import { closeSync, fstatSync, fsyncSync, openSync, readFileSync, readSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { crc32 } from 'node:zlib';
import type { StateArray, StateEntry } from './state.js';

/**
 * memcached's -e memory file (restart.c), for the slab arena: on a graceful stop
 * the arena's state (state.ts: pages, tables, numbers, each by name) goes to
 * `<file>`, and a metadata record to `<file>.meta` in memcached's line format
 * ("T<tag>", then "K<key> <value>" lines) with the settings the state depends
 * on and the data file's length and CRC-32. Both are written to a temporary
 * name and renamed into place, the metadata last, so a stop cut short leaves
 * either no metadata (a clean start) or a pair whose CRC does not match.
 *
 * At start the metadata is read and removed at once (as memcached unlinks it):
 * a cache loaded and then changed must not come back after a crash. Any
 * mismatch (tag, format, a setting, length, CRC, an entry's name, kind, type or
 * length) starts a clean cache, saying why; only a metadata file that does not
 * begin with a tag line stops the start, as memcached's does (restart.t).
 *
 * The data file: "MNEMOMEM", u32 format, u32 entry count, the entries in the
 * arena's order, "MNEMOEND". An entry: u16 name length, the name (UTF-8), u8
 * kind, then for a scalar an f64; for an array or table a u8 type-name length,
 * the type name, an f64 element count (-1: a table that is null) and the bytes;
 * for blocks a u32 block size, a u32 count and the bytes. Little-endian.
 */
export const MEMORY_FILE_FORMAT = 1;
const META_TAG = 'mnemo';
const MAGIC = Buffer.from('MNEMOMEM', 'latin1');
const END = Buffer.from('MNEMOEND', 'latin1');
const KIND_CODES = { scalar: 0, array: 1, table: 2, blocks: 3 } as const;
const KIND_NAMES = ['scalar', 'array', 'table', 'blocks'] as const;
/** Progress lines come at most this often while a large memory is saved or loaded. */
const PROGRESS_MS = 1000;
const IO_CHUNK = 1 << 20;

export interface MemoryFileLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

/** A metadata file that is not one (no tag line): memcached refuses to start; so does Mnemo. */
export class MemoryFileCorrupt extends Error {}

export type MemoryFileLoad =
  | { loaded: true; meta: Map<string, string>; bytes: number }
  | { loaded: false; reason: string; /** false: there was nothing to load (no metadata file). */ found: boolean };

export function metaPathOf(path: string): string {
  return `${path}.meta`;
}

// ---- saving ----

/**
 * Writes the entries to `path` and `meta` (key/value pairs: no spaces in keys,
 * no newlines anywhere) with the data's length and CRC to `path`.meta. Throws on
 * an I/O error (after removing what it wrote).
 */
export function saveMemoryFile(path: string, meta: ReadonlyArray<readonly [string, string]>, entries: readonly StateEntry[], log: MemoryFileLog): number {
  const metaPath = metaPathOf(path);
  const dataTemp = `${path}.tmp`;
  const metaTemp = `${metaPath}.tmp`;
  // An old pair must not outlive a save that fails halfway.
  rmSync(metaPath, { force: true });
  const total = dataSize(entries);
  const writer = new FileWriter(dataTemp, total, log);
  try {
    writer.bytes(MAGIC);
    writer.u32(MEMORY_FILE_FORMAT);
    writer.u32(entries.length);
    for (const entry of entries) writeEntry(writer, entry);
    writer.bytes(END);
    writer.finish();
  } catch (error) {
    writer.abandon();
    throw error;
  }
  let text = `T${META_TAG}\nKformat ${MEMORY_FILE_FORMAT}\n`;
  for (const [key, value] of meta) {
    if (/[\s]/.test(key) || /[\r\n]/.test(value)) throw new Error(`memory file: bad metadata ${key}`);
    text += `K${key} ${value}\n`;
  }
  text += `Kdata_bytes ${writer.written}\nKdata_crc32 ${writer.crc.toString(16)}\n`;
  try {
    renameSync(dataTemp, path);
    writeFileSync(metaTemp, text, { mode: 0o600 });
    const fd = openSync(metaTemp, 'r');
    fsyncSync(fd);
    closeSync(fd);
    renameSync(metaTemp, metaPath);
    syncDirectory(dirname(path));
  } catch (error) {
    rmSync(metaTemp, { force: true });
    throw error;
  }
  return writer.written;
}

function dataSize(entries: readonly StateEntry[]): number {
  let size = MAGIC.length + 8 + END.length;
  for (const entry of entries) {
    size += 2 + Buffer.byteLength(entry.name) + 1;
    switch (entry.kind) {
      case 'scalar':
        size += 8;
        break;
      case 'array':
        size += 1 + entry.array.constructor.name.length + 8 + entry.array.byteLength;
        break;
      case 'table':
        size += 1 + entry.create(0).constructor.name.length + 8 + (entry.get()?.byteLength ?? 0);
        break;
      case 'blocks':
        size += 8 + entry.blocks().length * entry.blockSize;
        break;
    }
  }
  return size;
}

function writeEntry(writer: FileWriter, entry: StateEntry): void {
  const name = Buffer.from(entry.name);
  writer.u16(name.length);
  writer.bytes(name);
  writer.u8(KIND_CODES[entry.kind]);
  switch (entry.kind) {
    case 'scalar':
      writer.f64(entry.get());
      return;
    case 'array':
      writeArray(writer, entry.array.constructor.name, entry.array);
      return;
    case 'table':
      writeArray(writer, entry.create(0).constructor.name, entry.get());
      return;
    case 'blocks': {
      const blocks = entry.blocks();
      writer.u32(entry.blockSize);
      writer.u32(blocks.length);
      for (const block of blocks) {
        if (block.byteLength !== entry.blockSize) throw new Error(`memory file: a block of ${entry.name} is not ${entry.blockSize} bytes`);
        writer.bytes(block);
      }
    }
  }
}

function writeArray(writer: FileWriter, type: string, array: StateArray | null): void {
  const typeName = Buffer.from(type, 'latin1');
  writer.u8(typeName.length);
  writer.bytes(typeName);
  writer.f64(array === null ? -1 : array.length);
  if (array !== null) writer.bytes(new Uint8Array(array.buffer, array.byteOffset, array.byteLength));
}

/** Sequential writes through a buffer, with a running CRC and progress lines. */
class FileWriter {
  private readonly fd: number;
  private readonly buffer = Buffer.allocUnsafe(IO_CHUNK);
  private used = 0;
  written = 0;
  crc = 0;
  private readonly progress: Progress;

  constructor(
    private readonly path: string,
    total: number,
    log: MemoryFileLog,
  ) {
    this.fd = openSync(path, 'w', 0o600);
    this.progress = new Progress('saving memory file', path, total, log);
  }

  u8(value: number): void {
    this.room(1);
    this.buffer[this.used++] = value;
  }

  u16(value: number): void {
    this.room(2);
    this.used = this.buffer.writeUInt16LE(value, this.used);
  }

  u32(value: number): void {
    this.room(4);
    this.used = this.buffer.writeUInt32LE(value, this.used);
  }

  f64(value: number): void {
    this.room(8);
    this.used = this.buffer.writeDoubleLE(value, this.used);
  }

  bytes(data: Uint8Array): void {
    if (data.byteLength <= this.buffer.length - this.used) {
      this.buffer.set(data, this.used);
      this.used += data.byteLength;
      return;
    }
    this.flush();
    for (let at = 0; at < data.byteLength; at += IO_CHUNK) this.out(data.subarray(at, Math.min(at + IO_CHUNK, data.byteLength)));
  }

  finish(): void {
    this.flush();
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.progress.done();
  }

  abandon(): void {
    try {
      closeSync(this.fd);
    } catch {
      // closed already
    }
    rmSync(this.path, { force: true });
  }

  private room(n: number): void {
    if (this.buffer.length - this.used < n) this.flush();
  }

  private flush(): void {
    if (this.used === 0) return;
    this.out(this.buffer.subarray(0, this.used));
    this.used = 0;
  }

  private out(data: Uint8Array): void {
    for (let at = 0; at < data.byteLength; ) at += writeSync(this.fd, data, at, data.byteLength - at);
    this.crc = crc32(data, this.crc);
    this.written += data.byteLength;
    this.progress.at(this.written);
  }
}

// ---- loading ----

/**
 * Loads `path` into the entries when `path`.meta is a Mnemo metadata record
 * that `check` accepts (it returns why not, or null) and the data matches it.
 * The entries are changed only once the whole file has been read and checked.
 * Both files are removed whatever the outcome (the metadata is read first).
 * Throws MemoryFileCorrupt when the metadata file has no tag line.
 */
export function loadMemoryFile(
  path: string,
  entries: readonly StateEntry[],
  check: (meta: Map<string, string>) => string | null,
  log: MemoryFileLog,
): MemoryFileLoad {
  const metaPath = metaPathOf(path);
  // what a save cut short left (never loaded: only renamed files are)
  rmSync(`${path}.tmp`, { force: true });
  rmSync(`${metaPath}.tmp`, { force: true });
  let text: string;
  try {
    text = readFileSync(metaPath, 'latin1');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { loaded: false, found: false, reason: `no metadata file ${metaPath}` };
    return { loaded: false, found: true, reason: `cannot read ${metaPath}: ${(error as Error).message}` };
  }
  const lines = text.split('\n');
  const tag = /^T(\S+)$/.exec(lines[0] ?? '');
  if (tag === null) throw new MemoryFileCorrupt(`corrupt metadata file ${metaPath}: it does not start with a tag line (remove it to start with a clean cache)`);
  try {
    return loadChecked(path, lines, tag[1]!, entries, check, log);
  } finally {
    rmSync(metaPath, { force: true });
    rmSync(path, { force: true });
  }
}

function loadChecked(
  path: string,
  lines: string[],
  tag: string,
  entries: readonly StateEntry[],
  check: (meta: Map<string, string>) => string | null,
  log: MemoryFileLog,
): MemoryFileLoad {
  const refuse = (reason: string): MemoryFileLoad => ({ loaded: false, found: true, reason });
  if (tag !== META_TAG) return refuse(`its metadata is tagged '${tag}', not '${META_TAG}' (written by something else)`);
  const meta = new Map<string, string>();
  for (const line of lines.slice(1)) {
    if (line === '') continue;
    const kv = /^K(\S+) (.*)$/.exec(line);
    if (kv === null) return refuse(`invalid metadata line '${line.slice(0, 60)}'`);
    meta.set(kv[1]!, kv[2]!);
  }
  if (meta.get('format') !== String(MEMORY_FILE_FORMAT)) return refuse(`metadata format ${meta.get('format') ?? '(none)'}, this build reads ${MEMORY_FILE_FORMAT}`);
  const bytes = Number(meta.get('data_bytes'));
  const crc = Number.parseInt(meta.get('data_crc32') ?? '', 16);
  if (!Number.isSafeInteger(bytes) || !Number.isSafeInteger(crc)) return refuse('the metadata lacks the data length or CRC (torn)');
  const mismatch = check(meta);
  if (mismatch !== null) return refuse(mismatch);

  let reader: FileReader;
  try {
    reader = new FileReader(path, log);
  } catch (error) {
    return refuse(`cannot open ${path}: ${(error as Error).message}`);
  }
  try {
    if (reader.size !== bytes) return refuse(`${path} is ${reader.size} bytes, the metadata says ${bytes} (torn or short)`);
    // Pass 1 reads everything, checks the layout and the CRC; pass 2 fills the arena.
    reader.start('checking memory file');
    const problem = walk(reader, entries, false);
    if (problem !== null) return refuse(problem);
    if (reader.crc !== crc) return refuse(`${path} fails its CRC-32 (corrupt)`);
    reader.start('loading memory file');
    const again = walk(reader, entries, true);
    if (again !== null) throw new Error(`memory file changed while loading: ${again}`);
    reader.finish();
    return { loaded: true, meta, bytes };
  } catch (error) {
    if (error instanceof ShortRead) return refuse(`${path} ends early (torn or short)`);
    throw error;
  } finally {
    reader.close();
  }
}

/** Reads the file against the entries; with apply, into them. Returns what does not match, or null. */
function walk(reader: FileReader, entries: readonly StateEntry[], apply: boolean): string | null {
  if (!reader.take(MAGIC.length).equals(MAGIC)) return 'the data file does not start with MNEMOMEM';
  const format = reader.u32();
  if (format !== MEMORY_FILE_FORMAT) return `data format ${format}, this build reads ${MEMORY_FILE_FORMAT}`;
  const count = reader.u32();
  for (let i = 0; i < count; i++) {
    const name = reader.take(reader.u16()).toString('utf8');
    const entry = entries[i];
    if (entry === undefined) return `the file has state '${name}' this build does not`;
    if (entry.name !== name) return `the file has state '${name}' where this build has '${entry.name}'`;
    const kind = KIND_NAMES[reader.u8()];
    if (kind !== entry.kind) return `'${name}' is a ${kind ?? 'unknown kind'} in the file, a ${entry.kind} in this build`;
    switch (entry.kind) {
      case 'scalar': {
        const value = reader.f64();
        if (apply) entry.set(value);
        break;
      }
      case 'array': {
        const type = reader.take(reader.u8()).toString('latin1');
        const length = reader.f64();
        const array = entry.array;
        if (type !== array.constructor.name || length !== array.length) {
          return `'${name}' is ${length} of ${type} in the file, ${array.length} of ${array.constructor.name} in this build`;
        }
        readArray(reader, array, apply);
        break;
      }
      case 'table': {
        const type = reader.take(reader.u8()).toString('latin1');
        const length = reader.f64();
        const expected = entry.create(0).constructor.name;
        if (type !== expected || !(length === -1 || (Number.isSafeInteger(length) && length >= 0))) return `'${name}' is ${length} of ${type} in the file, ${expected} in this build`;
        if (length === -1) {
          if (apply) entry.set(null);
          break;
        }
        const bytesPer = entry.create(0).BYTES_PER_ELEMENT;
        if (!apply) {
          reader.skip(length * bytesPer);
          break;
        }
        const array = entry.create(length);
        readArray(reader, array, true);
        entry.set(array);
        break;
      }
      case 'blocks': {
        const blockSize = reader.u32();
        const blocks = reader.u32();
        if (blockSize !== entry.blockSize) return `'${name}' has blocks of ${blockSize} bytes in the file, ${entry.blockSize} in this build`;
        if (!apply) {
          reader.skip(blocks * blockSize);
          break;
        }
        for (const block of entry.allocate(blocks)) reader.into(block);
      }
    }
  }
  if (count < entries.length) return `the file lacks state '${entries[count]!.name}'`;
  if (!reader.take(END.length).equals(END)) return 'the data file does not end with MNEMOEND';
  if (reader.remaining !== 0) return 'the data file has bytes after MNEMOEND';
  return null;
}

function readArray(reader: FileReader, array: StateArray, apply: boolean): void {
  if (apply) reader.into(new Uint8Array(array.buffer, array.byteOffset, array.byteLength));
  else reader.skip(array.byteLength);
}

class ShortRead extends Error {}

/** Sequential reads through a buffer, from the start again on start(), with a running CRC and progress lines. */
class FileReader {
  private readonly fd: number;
  readonly size: number;
  private readonly buffer = Buffer.allocUnsafe(IO_CHUNK);
  private at = 0;
  private end = 0;
  /** File offset of the buffer's end. */
  private offset = 0;
  crc = 0;
  private progress: Progress | null = null;

  constructor(
    private readonly path: string,
    private readonly log: MemoryFileLog,
  ) {
    this.fd = openSync(path, 'r');
    this.size = fstatSync(this.fd).size;
  }

  get remaining(): number {
    return this.size - this.offset + (this.end - this.at);
  }

  start(what: string): void {
    this.progress?.done();
    this.at = 0;
    this.end = 0;
    this.offset = 0;
    this.crc = 0;
    this.progress = new Progress(what, this.path, this.size, this.log);
  }

  close(): void {
    closeSync(this.fd);
  }

  u8(): number {
    return this.take(1)[0]!;
  }

  u16(): number {
    return this.take(2).readUInt16LE(0);
  }

  u32(): number {
    return this.take(4).readUInt32LE(0);
  }

  f64(): number {
    return this.take(8).readDoubleLE(0);
  }

  /** The next n bytes (n at most the buffer), valid until the next read. */
  take(n: number): Buffer {
    if (this.end - this.at < n) this.refill(n);
    const bytes = this.buffer.subarray(this.at, this.at + n);
    this.at += n;
    return bytes;
  }

  into(target: Uint8Array): void {
    let done = 0;
    while (done < target.byteLength) {
      if (this.at === this.end && target.byteLength - done >= IO_CHUNK) {
        // a page: read straight into it (one copy fewer)
        done += this.readInto(target.subarray(done, done + IO_CHUNK));
        continue;
      }
      if (this.at === this.end) this.refill(1);
      const n = Math.min(this.end - this.at, target.byteLength - done);
      target.set(this.buffer.subarray(this.at, this.at + n), done);
      this.at += n;
      done += n;
    }
  }

  skip(n: number): void {
    while (n > 0) {
      if (this.at === this.end) this.refill(1);
      const step = Math.min(this.end - this.at, n);
      this.at += step;
      n -= step;
    }
  }

  /** With the buffer empty: reads from the file into target; how many bytes. */
  private readInto(target: Uint8Array): number {
    const read = readSync(this.fd, target, 0, target.byteLength, this.offset);
    if (read === 0) throw new ShortRead();
    this.crc = crc32(target.subarray(0, read), this.crc);
    this.offset += read;
    this.progress?.at(this.offset);
    return read;
  }

  /** Ends the last pass's progress lines. */
  finish(): void {
    this.progress?.done();
    this.progress = null;
  }

  /** Keeps the unread bytes, reads more until at least n are there. */
  private refill(n: number): void {
    const left = this.end - this.at;
    this.buffer.copy(this.buffer, 0, this.at, this.end);
    this.at = 0;
    this.end = left;
    while (this.end < n) {
      const read = readSync(this.fd, this.buffer, this.end, this.buffer.length - this.end, this.offset);
      if (read === 0) throw new ShortRead();
      this.crc = crc32(this.buffer.subarray(this.end, this.end + read), this.crc);
      this.end += read;
      this.offset += read;
      this.progress?.at(this.offset);
    }
  }
}

/** "saving memory file: 512/2048 MB, 800 MB/s" at most once a second, and a last line with the total and rate. */
class Progress {
  private readonly started = Date.now();
  private last = this.started;

  constructor(
    private readonly what: string,
    private readonly path: string,
    private readonly total: number,
    private readonly log: MemoryFileLog,
  ) {}

  at(bytes: number): void {
    const now = Date.now();
    if (now - this.last < PROGRESS_MS) return;
    this.last = now;
    const rate = bytes / ((now - this.started) / 1000);
    this.log.info(
      { path: this.path, bytes, total: this.total, bytesPerSecond: Math.round(rate) },
      `${this.what}: ${mb(bytes)}/${mb(this.total)} MB, ${mb(rate)} MB/s`,
    );
  }

  done(): void {
    const seconds = (Date.now() - this.started) / 1000;
    // Small files (every test) finish in silence; a large one ends with its total.
    if (seconds * 1000 < PROGRESS_MS) return;
    this.log.info(
      { path: this.path, bytes: this.total, seconds, bytesPerSecond: Math.round(this.total / seconds) },
      `${this.what}: ${mb(this.total)} MB in ${seconds.toFixed(1)} s, ${mb(this.total / seconds)} MB/s`,
    );
  }
}

function mb(bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(0);
}

function syncDirectory(path: string): void {
  try {
    const fd = openSync(path, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // some file systems refuse fsync on a directory; the rename is done either way
  }
}
