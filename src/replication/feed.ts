import type {
  ClassStats,
  DeltaResult,
  ItemDump,
  ItemView,
  Store,
  StoreBacking,
  StoreMode,
  StoreResult,
  StoredRecord,
} from '../store/store.js';

/** Where the changes clients make go (the replicator), and whether a peer's change is being applied. */
export interface LocalChanges {
  /** True while a peer's change is applied: it is not a local change and is not shipped again. */
  readonly applying: boolean;
  localItem(key: string, item: ItemView): void;
  localDelete(key: string): void;
  localFlush(delay: number): void;
}

/**
 * The memory store's backing when replication is on: forwards everything to the
 * tier below (persistence, when there is one) and reports stored items as local
 * changes. Removals are not reported here (expiry and flushes remove too): the
 * store wrapper below reports deletes and flush_all where clients make them.
 */
export class ReplicationBacking implements StoreBacking {
  constructor(
    private readonly below: StoreBacking | null,
    private readonly changes: LocalChanges,
  ) {}

  stored(key: string, item: ItemView): void {
    this.below?.stored(key, item);
    if (!this.changes.applying) this.changes.localItem(key, item);
  }

  removed(key: string): void {
    this.below?.removed(key);
  }

  cleared(): void {
    this.below?.cleared();
  }

  evicted(key: string, item: ItemView): void {
    this.below?.evicted(key, item);
  }

  get writable(): boolean {
    return this.below === null || this.below.writable;
  }

  fetch(key: string): StoredRecord | null {
    return this.below === null ? null : this.below.fetch(key);
  }
}

/** The store the protocols see when replication is on: the memory store, reporting deletes and flush_all. */
export class ReplicatedStore implements Store {
  constructor(
    private readonly inner: Store,
    private readonly changes: LocalChanges,
  ) {}

  delete(key: Buffer, keyStart: number, keyEnd: number): boolean {
    const deleted = this.inner.delete(key, keyStart, keyEnd);
    if (deleted) this.changes.localDelete(key.toString('latin1', keyStart, keyEnd));
    return deleted;
  }

  flushAll(delay: number): void {
    this.inner.flushAll(delay);
    this.changes.localFlush(delay);
  }

  get(key: Buffer, keyStart: number, keyEnd: number): ItemView | null {
    return this.inner.get(key, keyStart, keyEnd);
  }
  getAndTouch(key: Buffer, keyStart: number, keyEnd: number, exptime: number): ItemView | null {
    return this.inner.getAndTouch(key, keyStart, keyEnd, exptime);
  }
  peek(key: Buffer, keyStart: number, keyEnd: number): ItemView | null {
    return this.inner.peek(key, keyStart, keyEnd);
  }
  markAccessed(item: ItemView): void {
    this.inner.markAccessed(item);
  }
  setExptime(item: ItemView, exptime: number): void {
    this.inner.setExptime(item, exptime);
  }
  setTokenSent(item: ItemView): void {
    this.inner.setTokenSent(item);
  }
  invalidate(item: ItemView): void {
    this.inner.invalidate(item);
  }
  vivify(key: Buffer, keyStart: number, keyEnd: number, exptime: number, binaryKey: boolean): ItemView | null {
    return this.inner.vivify(key, keyStart, keyEnd, exptime, binaryKey);
  }
  store(
    mode: StoreMode,
    key: Buffer, keyStart: number, keyEnd: number,
    data: Buffer, dataStart: number, dataEnd: number,
    flags: number, exptime: number, casUnique: number, options?: number,
  ): StoreResult {
    return this.inner.store(mode, key, keyStart, keyEnd, data, dataStart, dataEnd, flags, exptime, casUnique, options);
  }
  get lastCas(): number {
    return this.inner.lastCas;
  }
  get writable(): boolean {
    return this.inner.writable;
  }
  applyDelta(key: Buffer, keyStart: number, keyEnd: number, delta: bigint, incr: boolean, casUnique?: number): DeltaResult {
    return this.inner.applyDelta(key, keyStart, keyEnd, delta, incr, casUnique);
  }
  fits(keyLength: number, valueLength: number, flags: number): boolean {
    return this.inner.fits(keyLength, valueLength, flags);
  }
  setMemoryLimit(bytes: number): void {
    this.inner.setMemoryLimit(bytes);
  }
  sizeClassStats(): readonly ClassStats[] {
    return this.inner.sizeClassStats();
  }
  dump(visit: (item: ItemDump) => boolean): void {
    this.inner.dump(visit);
  }
  get itemCount(): number {
    return this.inner.itemCount;
  }
  get bytesUsed(): number {
    return this.inner.bytesUsed;
  }
  get bytesLimit(): number {
    return this.inner.bytesLimit;
  }
}
