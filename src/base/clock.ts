/**
 * A coarse clock in unix seconds, advanced once a second as memcached's is.
 * Expiry compares against this value, so a whole batch of commands sees one time
 * and the hot path never calls Date.now().
 */
export const MAX_RELATIVE_EXPTIME = 60 * 60 * 24 * 30;

export class Clock {
  /** Unix seconds when the process started (or the one a warm restart continues); absolute exptimes at or before it are already past. */
  started: number;
  now: number;
  /** Seconds added by `debugtime` (--test-clock only), so tests can expire items without waiting. */
  private skew = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly listeners: Array<(now: number) => void> = [];

  constructor() {
    this.now = Math.floor(Date.now() / 1000);
    this.started = this.now;
  }

  /** Starts ticking; each tick calls the listeners once, after the clock moved. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  onTick(listener: (now: number) => void): void {
    this.listeners.push(listener);
  }

  tick(): void {
    this.now = Math.floor(Date.now() / 1000) + this.skew;
    for (const listener of this.listeners) listener(this.now);
  }

  /** Moves the clock forward by seconds at once (memcached's debug-build `debugtime`). */
  advance(seconds: number): void {
    this.skew += seconds;
    this.tick();
  }

  /**
   * A warm restart (-e): time goes on from the saved clock, as memcached's
   * does: `now` is the saved time plus the seconds the server was stopped, and
   * a `debugtime` skew carries over with it.
   */
  restore(now: number, started: number): void {
    this.skew = now - Math.floor(Date.now() / 1000);
    this.started = started;
    this.now = now;
  }

  /**
   * memcached's realtime(): 0 never expires, a negative value is already expired,
   * up to 30 days is relative to now, anything larger is an absolute unix time.
   * Returns an absolute unix time, 0 for "never", or 1 for "already expired".
   */
  expiryFrom(exptime: number): number {
    if (exptime === 0) return 0;
    if (exptime < 0) return 1;
    if (exptime > MAX_RELATIVE_EXPTIME) return exptime <= this.started ? 1 : exptime;
    return this.now + exptime;
  }
}
