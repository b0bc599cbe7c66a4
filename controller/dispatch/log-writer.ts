/**
 * Writes one attempt's events to the request's stream log without a round trip per event: events that arrive
 * while a write is in flight are appended together by the next one (StreamLog.appendMany, one pipeline). An
 * engine sends Started and the first token in one chunk, so this takes a Redis round trip off
 * time-to-first-token, and several off every busy stream.
 *
 * Order is kept: one write in flight at a time, each with the events in arrival order. Backpressure: push()
 * reports a backlog past maxBacklog, and the caller waits for drain() before reading more from the worker.
 * `ended`: the log already had its terminal entry (another owner finished the request): stop.
 */
import type { GenerateEvent } from '../../proto/gen/corral/v1/inference.ts';
import type { StreamLog } from '../queue/stream-log.ts';

export class LogWriter {
  private pending: GenerateEvent[] = [];
  private inFlight: Promise<void> | undefined;
  private failure: unknown;
  private sawEnd = false;

  constructor(
    private readonly log: StreamLog,
    private readonly requestId: string,
    private readonly returnTokenIds: boolean,
    private readonly maxBacklog = 64,
  ) {}

  /** The log's end was there before ours: another writer owns the request now. */
  get ended(): boolean {
    return this.sawEnd;
  }

  /** Queues an event; true when the caller should drain() before pushing more. Throws a failed write's error. */
  push(event: GenerateEvent): boolean {
    if (this.failure) throw this.failure;
    this.pending.push(event);
    this.inFlight ??= this.flush();
    return this.pending.length >= this.maxBacklog;
  }

  /** Resolves once everything pushed is in the log (or throws the write's error). */
  async drain(): Promise<void> {
    while (this.inFlight) await this.inFlight;
    if (this.failure) throw this.failure;
  }

  private async flush(): Promise<void> {
    try {
      while (this.pending.length > 0 && !this.sawEnd) {
        const batch = this.pending;
        this.pending = [];
        const outcomes = await this.log.appendMany(this.requestId, batch, this.returnTokenIds);
        if (outcomes.includes('ended')) this.sawEnd = true;
      }
    } catch (e) {
      this.failure = e;
    } finally {
      this.inFlight = undefined;
    }
  }
}
