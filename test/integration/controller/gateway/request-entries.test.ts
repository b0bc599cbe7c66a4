/**
 * requestEntries on a real Redis: a reader takes the events a run in this process publishes (LiveFeed) when
 * they continue exactly where it is, even before it could read them back from the log; anything else comes
 * from the log; either way every entry is yielded once, in log order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LogWriter } from '../../../../controller/dispatch/log-writer.ts';
import { requestEntries } from '../../../../controller/gateway/request-entries.ts';
import { LiveFeed } from '../../../../controller/queue/live-feed.ts';
import { type Cursor, cursorOf, StreamLog } from '../../../../controller/queue/stream-log.ts';
import { FinishReason, type GenerateEvent } from '../../../../proto/gen/corral/v1/inference.ts';
import { testPrefix } from '../../../helpers/redis.ts';
import { useRedis } from '../../../helpers/use-redis.ts';
import { until } from '../fake-worker.ts';

const redis = useRedis();
let log: StreamLog;

beforeAll(() => {
  log = new StreamLog({ redis: redis.client, deployment: 'm', prefix: testPrefix('request-entries') });
});

afterAll(() => {
  log?.close();
});

const started = (id: string): GenerateEvent => ({
  requestId: id,
  event: { $case: 'started', value: { model: 'm', promptTokens: 2, promptTokenIds: [1, 2] } },
});
const delta = (id: string, index: number): GenerateEvent => ({
  requestId: id,
  event: { $case: 'delta', value: { text: `t${index} `, index, tokenIds: [100 + index], tokenCount: 1 } },
});
const finished = (id: string): GenerateEvent => ({
  requestId: id,
  event: { $case: 'finished', value: { reason: FinishReason.FINISH_REASON_STOP, stopReason: '' } },
});
const linked = (event: GenerateEvent, after: Cursor) => ({
  entry: { t: 'event' as const, cursor: cursorOf(event), event },
  after,
});

/** XREADs the server has run so far. */
async function xreadCalls(): Promise<number> {
  return Number(/cmdstat_xread:calls=(\d+)/.exec(await redis.client.info('commandstats'))?.[1] ?? 0);
}

/** Reads the request's entries (from the start) into `cursors` until the terminal one. */
function read(live: LiveFeed, id: string): { cursors: Cursor[]; done: Promise<void>; stop: () => void } {
  const cursors: Cursor[] = [];
  const ac = new AbortController();
  const done = (async () => {
    for await (const e of requestEntries(log, live, id, '0-0', ac.signal)) cursors.push(e.cursor);
  })();
  return { cursors, done, stop: () => ac.abort() };
}

describe('requestEntries', () => {
  it('takes live entries that continue its cursor before the log has them; the rest from the log, once each', async () => {
    const live = new LiveFeed();
    const r = read(live, 'a');
    live.begin('a');
    live.publish('a', [linked(started('a'), '0-0'), linked(delta('a', 0), '0-1')]);
    await until('the live entries', () => (r.cursors.length === 2 ? true : undefined));
    expect(await log.read('a')).toEqual([]);
    expect(r.cursors).toEqual(['0-1', '1-0']);
    // The log gets the same entries and more; the run here ends without publishing the rest.
    await log.appendMany('a', [started('a'), delta('a', 0), delta('a', 1), finished('a')]);
    live.end('a');
    await r.done;
    expect(r.cursors).toEqual(['0-1', '1-0', '1-1', '2-0']);
    expect(live.size).toEqual({ runs: 0, listened: 0 });
  });

  it('leaves a live entry that does not continue its cursor to the log', async () => {
    const live = new LiveFeed();
    const r = read(live, 'b');
    live.begin('b');
    live.publish('b', [linked(delta('b', 1), '1-0')]); // the reader has not seen Started nor token 0
    await log.appendMany('b', [started('b'), delta('b', 0), delta('b', 1), finished('b')]);
    await r.done;
    expect(r.cursors).toEqual(['0-1', '1-0', '1-1', '2-0']);
    live.end('b');
  });

  it("a LogWriter's events reach a reader in this process once each, in order, whichever source is first", async () => {
    const live = new LiveFeed();
    const r = read(live, 'c');
    const w = new LogWriter(log, 'c', false, undefined, live);
    live.begin('c');
    w.push(started('c'));
    for (let i = 0; i < 20; i++) {
      w.push(delta('c', i));
      if (i % 5 === 0) await w.drain();
    }
    w.push(finished('c'));
    await w.drain();
    live.end('c');
    await r.done;
    expect(r.cursors).toEqual(['0-1', ...Array.from({ length: 20 }, (_, i) => `1-${i}`), '2-0']);
  });

  it('a reader of a run that began here on an empty log waits for the run: no XREAD at all', async () => {
    const live = new LiveFeed();
    live.begin('e', '0-0'); // dispatched here (Dispatcher.submit) before its client started reading
    const xreadsBefore = await xreadCalls();
    const r = read(live, 'e');
    const w = new LogWriter(log, 'e', false, undefined, live);
    w.push(started('e'));
    w.push(delta('e', 0));
    w.push(finished('e'));
    await w.drain();
    await r.done;
    live.end('e');
    expect(r.cursors).toEqual(['0-1', '1-0', '2-0']);
    expect(await xreadCalls()).toBe(xreadsBefore);
  });

  it("a run's position that was wrong (its first entry does not link) sets the log follower going", async () => {
    const live = new LiveFeed();
    await log.appendMany('f', [started('f'), delta('f', 0)]); // an earlier attempt's entries
    live.begin('f', '0-0');
    const r = read(live, 'f');
    await log.append('f', delta('f', 1));
    live.publish('f', [linked(delta('f', 1), '1-0')]);
    await until('the log read back', () => (r.cursors.length === 3 ? true : undefined));
    await log.append('f', finished('f'));
    await r.done;
    live.end('f');
    expect(r.cursors).toEqual(['0-1', '1-0', '1-1', '2-0']);
  });

  it('a reader that goes away while the follower holds off ends, and stops listening', async () => {
    const live = new LiveFeed();
    const r = read(live, 'd');
    live.begin('d');
    await log.append('d', started('d'));
    live.publish('d', [linked(started('d'), '0-0')]);
    await until('Started', () => (r.cursors.length === 1 ? true : undefined));
    r.stop();
    await r.done;
    expect(live.size).toEqual({ runs: 1, listened: 0 });
    live.end('d');
  });
});
