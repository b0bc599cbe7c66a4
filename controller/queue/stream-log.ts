/**
 * Per-request log of GenerateEvents in a Redis Stream, so any controller replica can serve any client and a
 * client that reconnects resumes where it stopped. Entry ids encode the position, which is what makes
 * appends idempotent:
 *
 *   0-1            Started (field ids = 1 when the client asked for token ids: readers strip them otherwise)
 *   1-<i>          the TextDelta whose first generated token has index i (fields i, n = token count)
 *   2-0            the terminal entry: Finished, or an error (k=error, code, msg) written by the queue
 *
 * A delta is appended only when i equals the next token index (last delta's i + n; 0 after Started). A delta
 * already covered (i + n <= next) is a duplicate and is dropped: that is what lets a re-dispatched request
 * (failover) or a retried write replay from an earlier point without the client ever seeing a token twice.
 * A delta starting past the next index (a gap) or straddling it (an overlap) is refused with StreamLogError:
 * the writer must continue exactly at nextTokenIndex().
 * The check and the XADD run in one Lua script, so two writers racing for the same index cannot both win.
 *
 * TTL: ttlMs while the request runs, refreshed by each writer's first append and every few tokens (a writer
 * that died leaves no garbage forever), then endedTtlMs once the terminal entry is in.
 */
import type { Redis } from 'ioredis';
import { CorralError } from '../../common/errors.ts';
import { GenerateEvent, type Started } from '../../proto/gen/corral/v1/inference.ts';
import { logKey, queueBase } from './keys.ts';
import { FINISH_OWNED } from './queue-scripts.ts';

/**
 * KEYS[r]: request r's log. ARGV: ttl endedTtl base, then per request: ids id owner now retainMs tipLength tipTop
 * tipNext count, then count x (kind idx cnt payload) -> per request, per event in order, one
 * {outcome, nextIdx, after, finished, length} (after: the entry the appended event follows; length: the log's
 * after it). Several events of one request go in one call (what arrived while its writer's previous call was in
 * flight), each checked as if appended alone; the requests of one call are those whose appends were asked for
 * in the same turn of the event loop (StreamLog.appendLinked). With an owner, an appended Finished also marks
 * the request finished in its queue when that owner holds it (finished: 1; FINISH_OWNED, queue-scripts.ts).
 *
 * The tip (LogTip: length, top entry, next token index) is what each check needs. A writer that knows it from
 * its previous append's reply passes it, and the script trusts it when XLEN still equals its length: the log is
 * append-only, so an unchanged length means nobody appended since. That costs an XLEN instead of reading and
 * parsing the top entry (XREVRANGE). Otherwise (tipTop '': not known, or another writer appended meanwhile) the
 * script reads the top entry.
 * The TTL is refreshed by a writer's first append and whenever the next token index passes a multiple of
 * TTL_EVERY_TOKENS, not on every token: a running log expires only after that many tokens took longer than ttl.
 */
const TTL_EVERY_TOKENS = 32;
const APPEND = `${FINISH_OWNED}
local ttl, endedTtl, base = ARGV[1], ARGV[2], ARGV[3]
local function readTip(key, length)
  if length == 0 then return nil, 0 end
  local top = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)[1]
  local topId = top[1]
  local nextIdx = 0
  if string.sub(topId, 1, 2) == '1-' then
    local f = top[2]
    local i, n = 0, 0
    for j = 1, #f, 2 do
      if f[j] == 'i' then i = tonumber(f[j + 1]) elseif f[j] == 'n' then n = tonumber(f[j + 1]) end
    end
    nextIdx = i + n
  end
  return topId, nextIdx
end
local function reply(tip, after, outcome, finished) return {outcome, tip.next, after, finished or 0, tip.length} end
-- tip: {length, top (nil: empty), next}, moved past the event when it is appended; returns the event's reply.
local function appendOne(key, tip, ids, id, owner, now, retainMs, kind, idx, cnt, payload)
  local after = tip.top or '0-0'
  local finished = 0
  if tip.top == '2-0' then return reply(tip, after, 'ended') end
  if kind == 'started' then
    if tip.top then return reply(tip, after, 'duplicate') end
    redis.call('XADD', key, '0-1', 'k', 'event', 'e', payload, 'ids', ids)
    tip.top = '0-1'
  elseif kind == 'delta' then
    if idx + cnt <= tip.next then return reply(tip, after, 'duplicate') end
    if idx > tip.next then return reply(tip, after, 'gap') end
    if idx < tip.next then return reply(tip, after, 'overlap') end
    redis.call('XADD', key, '1-' .. idx, 'k', 'event', 'i', idx, 'n', cnt, 'e', payload)
    tip.top = '1-' .. idx
    tip.next = idx + cnt
  else
    redis.call('XADD', key, '2-0', 'k', 'event', 'e', payload)
    redis.call('PEXPIRE', key, endedTtl)
    tip.top = '2-0'
    if owner ~= '' then finished = finishOwned(base, owner, id, now, retainMs) end
  end
  tip.length = tip.length + 1
  return reply(tip, after, 'appended', finished)
end
local out = {}
local a = 4
for r = 1, #KEYS do
  local key = KEYS[r]
  local ids, id, owner, now, retainMs = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local length = redis.call('XLEN', key)
  local tip = {length = length}
  -- A writer's first append (the tip read, not given) refreshes the TTL too: a new log, or one continued here.
  local refresh = false
  if length > 0 and ARGV[a + 6] ~= '' and length == tonumber(ARGV[a + 5]) then
    tip.top, tip.next = ARGV[a + 6], tonumber(ARGV[a + 7])
  else
    tip.top, tip.next = readTip(key, length)
    refresh = true
  end
  local fromNext = tip.next
  local count = tonumber(ARGV[a + 8])
  a = a + 9
  local replies = {}
  for e = 1, count do
    replies[e] = appendOne(key, tip, ids, id, owner, now, retainMs, ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), ARGV[a + 3])
    a = a + 4
  end
  refresh = refresh or math.floor(fromNext / ${TTL_EVERY_TOKENS}) ~= math.floor(tip.next / ${TTL_EVERY_TOKENS})
  -- An ended log keeps the ended TTL its terminal entry set.
  if refresh and tip.top ~= '2-0' then redis.call('PEXPIRE', key, ttl) end
  out[r] = replies
end
return out
`;

/** The writer is not continuing at the log's next token index. */
export class StreamLogError extends CorralError {
  override name = 'StreamLogError';
  constructor(
    readonly requestId: string,
    readonly problem: 'gap' | 'overlap' | 'empty_delta',
    readonly nextTokenIndex: number,
    readonly deltaIndex: number,
  ) {
    super(
      'failed_precondition',
      `stream log of ${requestId}: delta at token ${deltaIndex} is a ${problem}; the next token index is ${nextTokenIndex}`,
      { requestId, problem, nextTokenIndex, deltaIndex },
    );
  }
}

export interface Progress {
  started: Started | undefined;
  /** Generated token ids so far (present when the request asked for return_token_ids). */
  tokenIds: number[];
  text: string;
  nextTokenIndex: number;
  /** The terminal entry is in: nothing more to run. */
  ended: boolean;
}

export type AppendOutcome = 'appended' | 'duplicate' | 'ended';

/** An event as it went into the log, with the id of the entry it follows there: a reader at `after` takes it next. */
export interface LinkedEntry {
  entry: EventEntry;
  after: Cursor;
}

/** Where a reader is: the id of the last entry it saw. START: nothing seen yet. */
export type Cursor = string;
export const START: Cursor = '0-0';

/** A client that has Started and tokens [0, received) resumes after this cursor. */
export function cursorAfterTokens(received: number): Cursor {
  return received <= 0 ? '0-1' : `1-${received - 1}`;
}

export interface EventEntry {
  t: 'event';
  cursor: Cursor;
  event: GenerateEvent;
  /** Started only: the client asked for token ids. */
  returnTokenIds?: boolean;
}

export type LogEntry = EventEntry | { t: 'error'; cursor: Cursor; code: string; message: string };

/** The log entry id an event is appended under (see the top of this file). */
export function cursorOf(event: GenerateEvent): Cursor {
  const ev = event.event;
  if (ev?.$case === 'started') return '0-1';
  if (ev?.$case === 'delta') return `1-${ev.value.index}`;
  return '2-0';
}

/** Orders two cursors as the log orders its entries: < 0 when a comes first. */
export function compareCursors(a: Cursor, b: Cursor): number {
  // Without splitting into arrays: the gateway compares every event it relays.
  const a1 = a.indexOf('-');
  const b1 = b.indexOf('-');
  return cursorMajor(a, a1) - cursorMajor(b, b1) || cursorMinor(a, a1) - cursorMinor(b, b1);
}

const cursorMajor = (c: Cursor, dash: number) => Number(dash < 0 ? c : c.slice(0, dash));
const cursorMinor = (c: Cursor, dash: number) => (dash < 0 ? 0 : Number(c.slice(dash + 1)));

export function isTerminal(entry: LogEntry): boolean {
  return entry.cursor === '2-0';
}

export interface StreamLogOptions {
  /** For appends and non-blocking reads. Blocking reads use their own duplicate() connection. */
  redis: Redis;
  deployment: string;
  prefix?: string;
  /** Expiry while the request runs, refreshed on every append. Default 1 h. */
  ttlMs?: number;
  /** Expiry once the request ended: how long a client can still come back for the end. Default 10 min. */
  endedTtlMs?: number;
}

type AppendReply = [outcome: string, nextTokenIndex: number, after: string, finished: number, length: number];

/** With the terminal event, also mark the request finished in its queue for `owner` (see APPEND). */
export interface FinishAs {
  owner: string;
  now: number;
  /** The queue's retainMs. */
  retainMs: number;
}
/** One call: [key count, keys..., ttl, endedTtl, base, each request's part] (ioredis flattens the array). */
type AppendCommand = { corralLogAppend(args: (string | number)[]): Promise<AppendReply[][]> };

export interface AppendResult {
  outcome: AppendOutcome;
  linked?: LinkedEntry;
  finished?: boolean;
  /** The log's tip after this event: what the writer's next append passes (see APPEND). */
  tip: LogTip;
}

/** What APPEND checks an event against: the log's length, its top entry and the next token index. */
export interface LogTip {
  length: number;
  top: Cursor;
  nextTokenIndex: number;
}

/** An appendLinked waiting for its turn's script call. */
interface QueuedAppend {
  id: string;
  events: readonly GenerateEvent[];
  /** Its part of APPEND's ARGV: ids id owner now retainMs tip (3) count, then kind idx cnt payload per event. */
  args: (string | number)[];
  resolve(results: AppendResult[]): void;
  reject(e: unknown): void;
}

/** Requests in one script call: bounds how long a call holds Redis (all of them are sent in the same turn). */
const MAX_REQUESTS_PER_CALL = 128;

/** Idle follower connections kept for the next follow() (a connection per stream costs a TCP handshake). */
const MAX_IDLE_FOLLOWERS = 1024;

export class StreamLog {
  private readonly base: string;
  private readonly idle: Redis[] = [];
  /** Appends asked for in this turn of the event loop, sent together once its microtasks have run. */
  private queued: QueuedAppend[] = [];
  /** The shared wait of writers gathering a turn's events (turn()), and how to end it sooner. */
  private turnWait: Promise<void> | undefined;
  private endTurn: (() => void) | undefined;

  constructor(private readonly options: StreamLogOptions) {
    this.base = queueBase(options.prefix ?? 'corral', options.deployment);
    options.redis.defineCommand('corralLogAppend', { lua: APPEND });
  }

  key(id: string): string {
    return logKey(this.base, id);
  }

  /**
   * Append one event; idempotent by position (see the top of this file). The log keeps token ids whatever the
   * client asked (a continuation needs them); `returnTokenIds` on Started records what the client asked.
   */
  async append(id: string, event: GenerateEvent, returnTokenIds = false): Promise<AppendOutcome> {
    const [appended] = await this.appendLinked(id, [event], returnTokenIds);
    return appended?.outcome ?? 'duplicate';
  }

  /**
   * Appends several events of one request in one round trip (one script call, each event in order as if
   * appended alone): what a writer does with the events that arrived while its previous write was in flight.
   */
  async appendMany(
    id: string,
    events: readonly GenerateEvent[],
    returnTokenIds = false,
  ): Promise<AppendOutcome[]> {
    return (await this.appendLinked(id, events, returnTokenIds)).map((r) => r.outcome);
  }

  /**
   * appendMany, also saying for each appended event which entry it follows in the log: what lets a reader on
   * this process take the events from the writer instead of from Redis without ever skipping or repeating one
   * (live-feed.ts). `linked` is absent for events not appended (duplicates, or the log had ended).
   * `tip`: the log's tip as the writer's previous append left it (its last result's), which spares the script
   * reading the top entry when nobody else appended since.
   */
  async appendLinked(
    id: string,
    events: readonly GenerateEvent[],
    returnTokenIds = false,
    options: { finishAs?: FinishAs | undefined; tip?: LogTip | undefined } = {},
  ): Promise<AppendResult[]> {
    if (events.length === 0) return [];
    const { finishAs, tip } = options;
    const args: (string | number)[] = [
      returnTokenIds ? '1' : '0',
      id,
      finishAs?.owner ?? '',
      finishAs?.now ?? 0,
      finishAs?.retainMs ?? 0,
      tip?.length ?? 0,
      tip?.top ?? '',
      tip?.nextTokenIndex ?? 0,
      events.length,
    ];
    for (const e of events) args.push(...eventArgs(id, e));
    return new Promise((resolve, reject) => {
      this.queued.push({ id, events, args, resolve, reject });
      // After the microtasks already queued: the other writers resumed by the same turn() append too.
      if (this.queued.length === 1) process.nextTick(() => this.sendQueued());
    });
  }

  /**
   * Resolves once the I/O callbacks of this turn of the event loop have run (setImmediate), or sooner when
   * hurry() is called. Every writer waiting on it resumes at once, so the events they gathered go to Redis in
   * one script call (appendLinked): one round trip and one write for a turn's tokens of every stream, not one
   * per token.
   */
  turn(): Promise<void> {
    if (this.turnWait) return this.turnWait;
    let end = () => {};
    const wait = new Promise<void>((resolve) => {
      end = () => {
        // A hurry() of a turn that has ended already must not end the next one.
        if (this.turnWait !== wait) return;
        clearImmediate(later);
        this.turnWait = undefined;
        this.endTurn = undefined;
        resolve();
      };
    });
    const later = setImmediate(end);
    this.turnWait = wait;
    this.endTurn = end;
    return wait;
  }

  /**
   * Ends the current turn() once the microtasks queued so far have run (those handing over the events that
   * came with a first token), not after every other callback of this I/O turn.
   */
  hurry(): void {
    const end = this.endTurn;
    if (end) process.nextTick(end);
  }

  /** Sends the appends asked for in this turn: one script call for up to MAX_REQUESTS_PER_CALL requests. */
  private sendQueued(): void {
    const queued = this.queued;
    this.queued = [];
    for (let from = 0; from < queued.length; from += MAX_REQUESTS_PER_CALL)
      void this.send(queued.slice(from, from + MAX_REQUESTS_PER_CALL));
  }

  private async send(batch: QueuedAppend[]): Promise<void> {
    const args: (string | number)[] = [batch.length];
    for (const q of batch) args.push(this.key(q.id));
    args.push(this.options.ttlMs ?? 3_600_000, this.options.endedTtlMs ?? 600_000, this.base);
    for (const q of batch) for (const a of q.args) args.push(a);
    let replies: AppendReply[][];
    try {
      replies = await (this.options.redis as unknown as AppendCommand).corralLogAppend(args);
    } catch (e) {
      for (const q of batch) q.reject(e);
      return;
    }
    batch.forEach((q, r) => {
      try {
        q.resolve(this.results(q, replies[r] ?? []));
      } catch (e) {
        q.reject(e);
      }
    });
  }

  private results({ id, events }: QueuedAppend, replies: AppendReply[]): AppendResult[] {
    return events.map((event, i) => {
      const r = replies[i];
      if (!r) throw new Error(`stream log of ${id}: no append reply for event ${i}`);
      const outcome = this.outcome(id, event, r);
      const [, nextTokenIndex, after, finished, length] = r;
      if (outcome !== 'appended') return { outcome, tip: { length, top: after, nextTokenIndex } };
      const cursor = cursorOf(event);
      const tip = { length, top: cursor, nextTokenIndex };
      const linked: LinkedEntry = { entry: { t: 'event', cursor, event }, after };
      return finished === 1 ? { outcome, linked, finished: true, tip } : { outcome, linked, tip };
    });
  }

  private outcome(id: string, event: GenerateEvent, [outcome, next]: AppendReply): AppendOutcome {
    const index = event.event?.$case === 'delta' ? event.event.value.index : 0;
    if (outcome === 'gap' || outcome === 'overlap') throw new StreamLogError(id, outcome, next, index);
    return outcome as AppendOutcome;
  }

  /** The token index the next delta must start at (what a continuation on another group resumes from). */
  async nextTokenIndex(id: string): Promise<number> {
    const top = await this.options.redis.xrevrange(this.key(id), '(2-0', '1-0', 'COUNT', 1);
    const fields = top[0]?.[1];
    if (!fields) return 0;
    const get = (name: string) => Number(fields[fields.indexOf(name) + 1] ?? 0);
    return get('i') + get('n');
  }

  /**
   * Everything a continuation on another group needs (VLLM.md, failover): the prompt's token ids from
   * Started, the generated token ids and text so far, and the index the next delta must start at. The new
   * attempt sends prompt ids + generated ids as the prompt, max_tokens minus what was generated, same seed.
   */
  async progress(id: string): Promise<Progress> {
    const p: Progress = { started: undefined, tokenIds: [], text: '', nextTokenIndex: 0, ended: false };
    let after: Cursor = START;
    for (;;) {
      const page = await this.read(id, after, 1000);
      for (const e of page) {
        after = e.cursor;
        if (isTerminal(e)) p.ended = true;
        if (e.t !== 'event') continue;
        const ev = e.event.event;
        if (ev?.$case === 'started') p.started = ev.value;
        if (ev?.$case === 'delta') {
          p.tokenIds.push(...ev.value.tokenIds);
          p.text += ev.value.text;
          p.nextTokenIndex = ev.value.index + ev.value.tokenCount;
        }
      }
      if (page.length < 1000) return p;
    }
  }

  /** Entries after `after`, without waiting. */
  async read(id: string, after: Cursor = START, count = 1000): Promise<LogEntry[]> {
    const rows = await this.options.redis.xrange(this.key(id), `(${after}`, '+', 'COUNT', count);
    return rows.map(([cursor, fields]) => parseEntry(cursor, fields));
  }

  /**
   * Every entry after `after`, waiting for new ones (XREAD BLOCK), until the terminal entry or the signal.
   * Each follower holds one Redis connection while it runs, taken from (and given back to) a pool of idle
   * ones; an aborted follower's connection is closed when an XREAD is pending on it, which is what ends it.
   * `hold`, when given, runs before every read: it may wait (no read is pending meanwhile) and returns the
   * cursor to read after, at or past the one it was given (a reader that got entries another way).
   */
  async *follow(
    id: string,
    after: Cursor = START,
    signal?: AbortSignal,
    blockMs = 5000,
    hold?: (cursor: Cursor) => Promise<Cursor>,
  ): AsyncGenerator<LogEntry> {
    const conn = this.idle.pop() ?? this.followerConnection();
    // A connection with an XREAD pending (or one that failed) cannot serve another follower.
    let reading = false;
    let closed = false;
    const onAbort = () => {
      if (!reading) return;
      closed = true;
      conn.disconnect();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    let cursor = after;
    try {
      while (!signal?.aborted) {
        if (hold) {
          cursor = await hold(cursor);
          if (signal?.aborted) return;
        }
        let res: [string, [string, string[]][]][] | null;
        reading = true;
        try {
          res = (await conn.xread(
            'COUNT',
            1000,
            'BLOCK',
            blockMs,
            'STREAMS',
            this.key(id),
            cursor,
          )) as typeof res;
        } catch (e) {
          if (signal?.aborted) return;
          throw e;
        }
        reading = false;
        for (const [entryId, fields] of res?.[0]?.[1] ?? []) {
          const entry = parseEntry(entryId, fields);
          cursor = entryId;
          yield entry;
          if (isTerminal(entry)) return;
        }
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (!reading && !closed && this.idle.length < MAX_IDLE_FOLLOWERS) this.idle.push(conn);
      else conn.disconnect();
    }
  }

  private followerConnection(): Redis {
    const conn = this.options.redis.duplicate();
    // Its XREAD fails or is resent after the reconnection; the error event itself says nothing more.
    conn.on('error', () => {});
    return conn;
  }

  /** Closes the idle follower connections. */
  close(): void {
    for (const conn of this.idle.splice(0)) conn.disconnect();
  }
}

/** One event's part of APPEND's arguments: kind idx cnt payload. */
function eventArgs(id: string, event: GenerateEvent): (string | number)[] {
  const ev = event.event;
  let kind = 'finished';
  let index = 0;
  let count = 0;
  if (ev?.$case === 'started') kind = 'started';
  else if (ev?.$case === 'delta') {
    kind = 'delta';
    index = ev.value.index;
    count = ev.value.tokenCount;
    if (count < 1) throw new StreamLogError(id, 'empty_delta', -1, index);
  } else if (ev?.$case !== 'finished') throw new Error(`stream log of ${id}: event without a case`);
  return [kind, index, count, JSON.stringify(GenerateEvent.toJSON(event))];
}

function parseEntry(cursor: string, fields: string[]): LogEntry {
  const get = (name: string) => {
    const i = fields.indexOf(name);
    return i >= 0 && i % 2 === 0 ? fields[i + 1] : undefined;
  };
  if (get('k') === 'error')
    return { t: 'error', cursor, code: get('code') ?? 'internal', message: get('msg') ?? '' };
  const event = GenerateEvent.fromJSON(JSON.parse(get('e') ?? '{}'));
  if (cursor === '0-1') return { t: 'event', cursor, event, returnTokenIds: get('ids') === '1' };
  return { t: 'event', cursor, event };
}
