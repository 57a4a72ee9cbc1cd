/**
 * The servers and the ketama ring over the live ones. An ejected server's points
 * leave the ring, so its keys fall to the next point (another server) while the
 * other keys stay put; when its retry time passes the ring is rebuilt with it.
 */
import { NoServerError } from './errors.js';
import { buildContinuum, ketamaKeyHash, lookup, type Continuum } from './ketama.js';
import type { ServerNode } from './server-node.js';

export class Cluster {
  private live: ServerNode[] = [];
  private continuum: Continuum | undefined;
  private stale = true;
  /** The earliest time an ejected server rejoins. */
  private nextRejoin = Infinity;

  constructor(readonly nodes: readonly ServerNode[]) {}

  /** The ring must be rebuilt: a server was ejected. */
  invalidate(): void {
    this.stale = true;
  }

  /** The live server a key goes to now. */
  nodeFor(key: Buffer): ServerNode {
    const live = this.liveNodes();
    if (live.length === 1) return live[0]!;
    if (live.length === 0) throw new NoServerError(`no live server: all ${this.nodes.length} are ejected`);
    return live[lookup(this.continuum!, ketamaKeyHash(key))]!;
  }

  /** The servers in the ring now, in list order. */
  liveNodes(): ServerNode[] {
    const now = Date.now();
    if (this.stale || now >= this.nextRejoin) this.rebuild(now);
    return this.live;
  }

  private rebuild(now: number): void {
    this.live = [];
    this.nextRejoin = Infinity;
    for (const node of this.nodes) {
      if (node.isLive(now)) {
        node.retryAt = 0;
        this.live.push(node);
      } else if (node.retryAt < this.nextRejoin) {
        this.nextRejoin = node.retryAt;
      }
    }
    this.continuum = this.live.length > 1 ? buildContinuum(this.live.map((node) => ({ label: node.label, weight: node.server.weight }))) : undefined;
    this.stale = false;
  }
}
