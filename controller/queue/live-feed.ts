/**
 * The in-process twin of the stream log, for a request this controller both runs (its dispatcher) and streams
 * to a client (its gateway): the writer hands each event to the gateway as soon as Redis acknowledged its
 * append, so the client does not wait for a follower's XREAD to bring back what this process just wrote.
 *
 * The log stays the truth: an event is published only after its append succeeded (so a client never sees a
 * token the log could lack), and with the id of the entry it follows in the log (LinkedEntry), so a reader
 * takes it only when it continues exactly where the reader is; anything else (a gap, a run that ended without
 * its terminal entry, a request running on another controller) the reader reads from the log
 * (gateway/request-entries.ts).
 *
 * State lives only while a request runs here or a client listens here: begin/end bracket each run, and a
 * listener is removed by the function listen() returns.
 */
import type { Cursor, LinkedEntry } from './stream-log.ts';

export type LiveNote = { t: 'entries'; entries: readonly LinkedEntry[] } | { t: 'end' };

export class LiveFeed {
  private readonly listeners = new Map<string, Set<(note: LiveNote) => void>>();
  /** Requests running here, each with the log entry its next event will follow when that is known. */
  private readonly runs = new Map<string, Cursor | undefined>();

  /** Notes of the request's runs here from now on; returns the function that stops listening. */
  listen(id: string, listener: (note: LiveNote) => void): () => void {
    let set = this.listeners.get(id);
    if (!set) {
      set = new Set();
      this.listeners.set(id, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(id) === set) this.listeners.delete(id);
    };
  }

  /** A run of the request is going on in this process (its events will be published here). */
  isRunning(id: string): boolean {
    return this.runs.has(id);
  }

  /**
   * The run here will hand a reader at `cursor` its next entry: it is running and its last event (or the log's
   * end when it began) is that entry. A reader there can wait for the run instead of reading the log; if the
   * run's next event does not link after all, the reader learns it from that event (or from the run's end).
   */
  continuesFrom(id: string, cursor: Cursor): boolean {
    return this.runs.get(id) === cursor;
  }

  /** Requests with a run here or a listener here: what this process holds (bounded by what it serves). */
  get size(): { runs: number; listened: number } {
    return { runs: this.runs.size, listened: this.listeners.size };
  }

  /** The dispatcher starts a run of the request; `from`: the log's last entry then, when known. */
  begin(id: string, from?: Cursor): void {
    this.runs.set(id, from);
  }

  /** Events of the running request, in log order, each after Redis acknowledged its append. */
  publish(id: string, entries: readonly LinkedEntry[]): void {
    const last = entries[entries.length - 1];
    if (!last) return;
    if (this.runs.has(id)) this.runs.set(id, last.entry.cursor);
    this.notify(id, { t: 'entries', entries });
  }

  /** The run ended (whatever its ending): readers that still miss entries read them from the log. */
  end(id: string): void {
    this.runs.delete(id);
    this.notify(id, { t: 'end' });
  }

  private notify(id: string, note: LiveNote): void {
    const set = this.listeners.get(id);
    if (set) for (const l of [...set]) l(note);
  }
}
