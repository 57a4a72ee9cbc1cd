import type { ItemView, StoredRecord } from './store.js';

/**
 * The one door changes leave the store by (Redis's call() -> propagate model): the
 * store reports each change it accepts once, here, and the subscribers (persistence
 * first, then replication) each take what concerns them.
 *
 * A change is passed as arguments (kind, key, item, time), never as an object, so
 * the memory-only path, which has no feed at all, pays one null check per change.
 */

/** A new value (set, add, replace, append, prepend, cas, incr/decr, a meta vivify): item holds its new state. */
export const CHANGE_STORED = 1;
/** A client's delete (or a peer's, applied here): item is null. */
export const CHANGE_DELETED = 2;
/** Gone without a delete: expired, flushed when read, or lost when a store found no room. item is null. */
export const CHANGE_REMOVED = 3;
/** flush_all without delay: every item is gone now. */
export const CHANGE_FLUSHED = 4;
/** flush_all with a delay: time is the absolute unix second it comes due (CHANGE_FLUSH_DUE follows then). */
export const CHANGE_FLUSH_SCHEDULED = 5;
/** A delayed flush_all came due: every item is gone now. Not a new change for peers (they keep their own clock). */
export const CHANGE_FLUSH_DUE = 6;
/** Only the expiry changed (touch, gat, meta T): item holds the new exptime; the value did not change. */
export const CHANGE_TOUCHED = 7;
/** Meta `md I`: item is marked stale with a new CAS. Local to this node's memory (see README). */
export const CHANGE_INVALIDATED = 8;
/**
 * Memory let go of the item to make room. Not a change (the tier below may keep it),
 * but persistence in tiered mode must hear it.
 */
export const CHANGE_EVICTED = 9;

export type ChangeKind = number;

/** One subscriber of the feed. */
export interface ChangeSubscriber {
  /**
   * item: the item's state after the change (valid only during the call), or null.
   * time: for CHANGE_FLUSH_SCHEDULED, when it comes due; 0 otherwise.
   */
  change(kind: ChangeKind, key: string, item: ItemView | null, time: number): void;
}

/**
 * The subscribers, in a fixed order: persistence first (a change is on its way to
 * disk before it is on its way to peers), then replication.
 */
export class ChangeFeed {
  private readonly subscribers: ChangeSubscriber[] = [];
  /** Subscribers that hear only this node's own changes (replication): never a peer's. */
  private readonly localOnly: boolean[] = [];
  /**
   * True while a peer's change is applied. Such a change is still a change here (it
   * goes to disk) but is not this node's to ship: the rule that keeps changes from
   * looping between peers lives here and nowhere else.
   */
  fromPeer = false;

  /** Adds a subscriber after those already there. localOnly: it does not hear changes applied for peers. */
  subscribe(subscriber: ChangeSubscriber, localOnly = false): void {
    this.subscribers.push(subscriber);
    this.localOnly.push(localOnly);
  }

  emit(kind: ChangeKind, key: string, item: ItemView | null, time: number): void {
    const subscribers = this.subscribers;
    for (let i = 0; i < subscribers.length; i++) {
      if (this.fromPeer && this.localOnly[i]) continue;
      subscribers[i]!.change(kind, key, item, time);
    }
  }
}

/**
 * What the store asks of the tier below it (the disk), apart from the feed: a read,
 * not a change. It answers misses, and says whether changes may be accepted.
 */
export interface LowerTier {
  /** The record for a key memory does not hold, or null. */
  fetch(key: string): StoredRecord | null;
  /** False while the tier refuses writes (a full disk): the store refuses changes too. */
  readonly writable: boolean;
}

/** What a connection asks before it answers a batch of commands (--sync always). */
export interface Durability {
  /** Bumped on every write: a batch that began at the same generation wrote nothing. */
  readonly generation: number;
  /** True when a reply to a write must wait until the write is on disk. */
  readonly mustWait: boolean;
  /** Resolves true once every write so far is on disk; false when one may be lost. */
  durable(): Promise<boolean>;
}
