/** A connection whose replies can be written now. */
export interface Flushable {
  flush(): void;
}

/**
 * Writes the replies of every connection that ran commands in one turn of the
 * event loop together, once libuv has delivered all of that turn's reads
 * (setImmediate runs right after the poll phase), instead of one write after
 * each read.
 *
 * Why: over loopback the kernel runs the receiving side inside the sender's
 * write, and waking a client that sleeps in epoll_wait on another core costs
 * the writer an inter-processor interrupt, dear on a VM. Written one per read,
 * with a command's work between them, nearly every reply found its client
 * asleep again; written back to back, most find it already awake. Under
 * memcaslap's 50 connections (bench scenario a) this took the server's kernel
 * time per get from ~15 µs to ~11 µs (bench/NOTES.md). A reply waits at most
 * for the other reads of the same turn.
 */
class ReplyBatch {
  private readonly due: Flushable[] = [];
  private scheduled = false;
  private readonly flushAll = (): void => {
    this.scheduled = false;
    const due = this.due;
    for (let i = 0; i < due.length; i++) due[i]!.flush();
    due.length = 0;
  };

  /** Writes connection's replies with the rest of this turn's; once per turn is enough. */
  add(connection: Flushable): void {
    this.due.push(connection);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushAll);
    }
  }
}

/** One event loop per process, so one batch. */
export const replyBatch = new ReplyBatch();
