/**
 * Writes one attempt's events to the request's stream log without a round trip per event: events that arrive
 * while a write is in flight are appended together by the next one, and the writers of every stream that got
 * events in the same turn of the event loop append them in one script call (StreamLog.turn). An engine sends
 * Started and the first token in one chunk, so this takes a Redis round trip off time-to-first-token, and
 * several off every busy stream.
 *
 * Order is kept: one write in flight at a time, each with the events in arrival order. Backpressure: push()
 * reports a backlog past maxBacklog, and the caller waits for drain() before reading more from the worker.
 * `ended`: the log already had its terminal entry (another owner finished the request): stop.
 * With a LiveFeed, every event is published there once its append was acknowledged (a client streamed by this
 * process gets it without reading it back from Redis).
 * With `finishAs`, the append of the Finished also marks the request finished in its queue when that owner
 * still holds it (`finishedInQueue`): the settlement's round trip saved.
 */
import type { GenerateEvent } from '../../proto/gen/corral/v1/inference.ts';
import type { LiveFeed } from '../queue/live-feed.ts';
import type { FinishAs, LinkedEntry, LogTip, StreamLog } from '../queue/stream-log.ts';

export class LogWriter {
  private pending: GenerateEvent[] = [];
  private inFlight: Promise<void> | undefined;
  private failure: unknown;
  private sawEnd = false;
  private finished = false;
  /** A token (or the end) was pushed: the first one hurried its write (see push()). */
  private pastFirstToken = false;
  /** The log's tip after this writer's last append (see StreamLog.appendLinked). */
  private tip: LogTip | undefined;

  constructor(
    private readonly log: StreamLog,
    private readonly requestId: string,
    private readonly returnTokenIds: boolean,
    private readonly maxBacklog = 64,
    private readonly live?: LiveFeed,
    private readonly finishAs?: () => FinishAs,
  ) {}

  /** The Finished went in with finishAs, and its owner's queue entry is finished. */
  get finishedInQueue(): boolean {
    return this.finished;
  }

  /** The log's end was there before ours: another writer owns the request now. */
  get ended(): boolean {
    return this.sawEnd;
  }

  /** A write is in flight (drain() waits for it). */
  get writing(): boolean {
    return this.inFlight !== undefined;
  }

  /** Queues an event; true when the caller should drain() before pushing more. Throws a failed write's error. */
  push(event: GenerateEvent): boolean {
    if (this.failure) throw this.failure;
    // The log has its end (another owner finished the request): nothing more goes in.
    if (this.sawEnd) return false;
    this.pending.push(event);
    // Cleared in a .finally, which runs after this assignment: a flush that ended without awaiting anything
    // must not leave a settled promise here, or drain() would await it forever without yielding the loop.
    this.inFlight ??= this.flush().finally(() => {
      this.inFlight = undefined;
    });
    // The first token (or an end without one) is what the client waits for: it goes once the events handed
    // over with it are in. Later tokens wait for the turn's end, to go in one call with every other stream's.
    if (!this.pastFirstToken && event.event?.$case !== 'started') {
      this.pastFirstToken = true;
      this.log.hurry();
    }
    return this.pending.length >= this.maxBacklog;
  }

  /** Resolves once everything pushed is in the log (or throws the write's error). */
  async drain(): Promise<void> {
    while (this.inFlight) await this.inFlight;
    if (this.failure) throw this.failure;
  }

  private async flush(): Promise<void> {
    try {
      // Events that arrive together (an engine's Started and first token come in one chunk; the for-await
      // over the worker call hands them over one by one) wait for the rest of that I/O turn: one write for all,
      // with every other stream's. A first token ends the wait sooner (push()): once the microtasks that hand
      // over what came with it have run, not after every other callback of this I/O turn has.
      await this.log.turn();
      while (this.pending.length > 0 && !this.sawEnd) {
        const batch = this.pending;
        this.pending = [];
        const terminal = batch[batch.length - 1]?.event?.$case === 'finished';
        const finishAs = terminal ? this.finishAs?.() : undefined;
        const results = await this.log.appendLinked(this.requestId, batch, this.returnTokenIds, {
          finishAs,
          tip: this.tip,
        });
        this.tip = results[results.length - 1]?.tip;
        const appended: LinkedEntry[] = [];
        for (const r of results) {
          if (r.outcome === 'ended') this.sawEnd = true;
          if (r.finished) this.finished = true;
          if (r.linked) appended.push(r.linked);
        }
        this.live?.publish(this.requestId, appended);
      }
    } catch (e) {
      this.failure = e;
    }
  }
}
