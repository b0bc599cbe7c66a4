/**
 * A request's stream-log entries after a cursor, each exactly once and in log order, from whichever source has
 * them first: this process's dispatcher (LiveFeed: published as soon as their append was acknowledged) or the
 * log itself (StreamLog.follow). A request this controller runs reaches its client without the follower's
 * XREAD round trip; one that runs elsewhere, or whose run here ended without its terminal entry (handed back,
 * cancelled, failed), is read from the log as before.
 *
 * Exactly once: the reader keeps the cursor of the last entry it yielded. A log entry is taken when it comes
 * after that cursor (the log is contiguous, read from at most that cursor); a live entry only when it follows
 * that very cursor in the log (LinkedEntry.after). A live entry past it (the reader missed something, e.g. it
 * attached to a request already running) is left to the log.
 * Cost: once the reader took a live entry, and while that run goes on here, the log follower holds off (no
 * XREAD pending), so a stream costs Redis one read (the first, which waits for the request to start anywhere),
 * not one per batch of tokens; none when the run here began on an empty log before the reader started (a
 * request taken in its submit, Dispatcher.submit: LiveFeed.continuesFrom). A live entry that does not link, or
 * the run's end, sets the follower going.
 */
import type { LiveFeed, LiveNote } from '../queue/live-feed.ts';
import {
  type Cursor,
  compareCursors,
  isTerminal,
  type LinkedEntry,
  type LogEntry,
  type StreamLog,
} from '../queue/stream-log.ts';

/** Something changed (entries arrived, a run ended, the reader moved, the stream ended): look again. */
class Changes {
  private waiters: (() => void)[] = [];
  fire(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
  next(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

type Item = { from: 'log'; entry: LogEntry } | { from: 'live'; linked: LinkedEntry };

/** Why a reader's log follower stops when the reader is done (one object, made once). */
const READER_DONE = new Error('the reader is done');

export async function* requestEntries(
  log: StreamLog,
  live: LiveFeed | undefined,
  id: string,
  after: Cursor,
  signal: AbortSignal,
): AsyncGenerator<LogEntry> {
  if (!live) {
    yield* log.follow(id, after, signal);
    return;
  }
  let cursor = after;
  /**
   * The run here feeds this reader: its last live entry continued the reader's cursor, or (before any) the
   * run's position is the reader's (a request dispatched here before its client started reading: no XREAD).
   */
  let linked = live.continuesFrom(id, after);
  const inbox: Item[] = [];
  const changes = new Changes();
  const done = new AbortController();
  const onAbort = () => {
    done.abort();
    changes.fire();
  };
  signal.addEventListener('abort', onAbort, { once: true });
  const unlisten = live.listen(id, (note: LiveNote) => {
    if (note.t === 'entries') for (const linked of note.entries) inbox.push({ from: 'live', linked });
    changes.fire();
  });
  // The follower holds off while a run here feeds this reader; it resumes from where the reader is.
  const hold = async (at: Cursor): Promise<Cursor> => {
    while (linked && live.isRunning(id) && !done.signal.aborted) await changes.next();
    return compareCursors(cursor, at) > 0 ? cursor : at;
  };
  let logEnded = false;
  let logError: unknown;
  const pump = (async () => {
    try {
      for await (const entry of log.follow(id, after, done.signal, undefined, hold)) {
        inbox.push({ from: 'log', entry });
        changes.fire();
        // Backpressure: read on only once the reader took what is waiting.
        while (inbox.length > 0 && !done.signal.aborted) await changes.next();
      }
    } catch (e) {
      logError = e;
    } finally {
      logEnded = true;
      changes.fire();
    }
  })();
  try {
    for (;;) {
      const item = inbox.shift();
      if (!item) {
        if (done.signal.aborted) return;
        if (logEnded) {
          if (logError) throw logError;
          return;
        }
        changes.fire(); // the pump waits for an empty inbox
        await changes.next();
        continue;
      }
      const entry = take(item, cursor);
      if (entry === 'seen') continue;
      if (item.from === 'live') linked = entry !== 'gap';
      if (entry === 'gap') {
        changes.fire();
        continue;
      }
      cursor = entry.cursor;
      yield entry;
      if (isTerminal(entry)) return;
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    unlisten();
    // With a reason: abort() without one builds a DOMException and its stack trace, on every stream's end.
    done.abort(READER_DONE);
    changes.fire();
    await pump;
  }
}

/** The item's entry when it is the reader's next one; 'seen' when it already had it; 'gap' for a live one ahead. */
function take(item: Item, cursor: Cursor): LogEntry | 'seen' | 'gap' {
  const entry = item.from === 'log' ? item.entry : item.linked.entry;
  if (compareCursors(entry.cursor, cursor) <= 0) return 'seen';
  if (item.from === 'log' || item.linked.after === cursor) return entry;
  return 'gap';
}
