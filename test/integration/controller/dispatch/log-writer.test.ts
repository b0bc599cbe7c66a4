/** LogWriter and StreamLog.appendMany on a real Redis: batched appends keep order and position rules. */
import { beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../../common/clock.ts';
import { LogWriter } from '../../../../controller/dispatch/log-writer.ts';
import { RequestQueue } from '../../../../controller/queue/request-queue.ts';
import { StreamLog, StreamLogError } from '../../../../controller/queue/stream-log.ts';
import { FinishReason, type GenerateEvent } from '../../../../proto/gen/corral/v1/inference.ts';
import { testPrefix } from '../../../helpers/redis.ts';
import { useRedis } from '../../../helpers/use-redis.ts';

const redis = useRedis();
let log: StreamLog;

beforeAll(() => {
  log = new StreamLog({ redis: redis.client, deployment: 'm', prefix: testPrefix('log-writer') });
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

describe('StreamLog.appendMany', () => {
  it('appends in order in one round trip, with the same outcomes as one by one', async () => {
    const events = [started('a'), delta('a', 0), delta('a', 1), delta('a', 0)];
    expect(await log.appendMany('a', events, true)).toEqual([
      'appended',
      'appended',
      'appended',
      'duplicate',
    ]);
    const p = await log.progress('a');
    expect(p).toMatchObject({ text: 't0 t1 ', tokenIds: [100, 101], nextTokenIndex: 2, ended: false });
    expect((await log.read('a'))[0]).toMatchObject({ returnTokenIds: true });
  });

  it('refuses a gap like append does', async () => {
    await expect(log.appendMany('b', [started('b'), delta('b', 3)])).rejects.toBeInstanceOf(StreamLogError);
  });
});

describe('LogWriter', () => {
  it('writes the events pushed in one turn together (Started and the first token: one round trip)', async () => {
    const batches: number[] = [];
    const appendLinked = log.appendLinked.bind(log);
    const spy = Object.assign(Object.create(log) as StreamLog, {
      appendLinked: (...a: Parameters<StreamLog['appendLinked']>) => {
        batches.push(a[1].length);
        return appendLinked(...a);
      },
    });
    const together = new LogWriter(spy, 'g', false);
    together.push(started('g'));
    together.push(delta('g', 0));
    await together.drain();
    together.push(delta('g', 1));
    together.push(finished('g'));
    await together.drain();
    expect(batches).toEqual([2, 2]);
    expect((await log.read('g')).map((e) => e.cursor)).toEqual(['0-1', '1-0', '1-1', '2-0']);
  });

  it('sends a first token with what came with it before the I/O turn ends; a lone Started waits for it', async () => {
    const sent: { events: number; turnOver: boolean }[] = [];
    let turnOver = false;
    const appendLinked = log.appendLinked.bind(log);
    const spy = Object.assign(Object.create(log) as StreamLog, {
      appendLinked: (...a: Parameters<StreamLog['appendLinked']>) => {
        sent.push({ events: a[1].length, turnOver });
        return appendLinked(...a);
      },
    });
    setImmediate(() => {
      turnOver = true;
    });
    const w = new LogWriter(spy, 'h', false);
    w.push(started('h'));
    await Promise.resolve(); // the worker's next message comes a microtask later, as grpc-js hands them over
    w.push(delta('h', 0));
    w.push(delta('h', 1));
    await w.drain();
    expect(sent).toEqual([{ events: 3, turnOver: false }]);

    turnOver = false;
    setImmediate(() => {
      turnOver = true;
    });
    const alone = new LogWriter(spy, 'i', false);
    alone.push(started('i'));
    await alone.drain();
    expect(sent[1]).toEqual({ events: 1, turnOver: true });
    expect((await log.read('h')).map((e) => e.cursor)).toEqual(['0-1', '1-0', '1-1']);
  });

  it('appends the events of every stream that got some in one I/O turn in one script call', async () => {
    const scriptCalls = async () => {
      const info = await redis.client.info('commandstats');
      return [...info.matchAll(/cmdstat_eval(?:sha)?:calls=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
    };
    const writers = ['s1', 's2', 's3'].map((id) => new LogWriter(log, id, false));
    await log.appendMany('s1', [started('s1'), delta('s1', 0)]);
    await log.appendMany('s2', [started('s2'), delta('s2', 0)]);
    await log.appendMany('s3', [started('s3'), delta('s3', 0)]);
    const before = await scriptCalls();
    // Later tokens of three streams, as one read of the worker connection hands them over.
    for (const [i, w] of writers.entries()) w.push(delta(`s${i + 1}`, 1));
    await Promise.all(writers.map((w) => w.drain()));
    expect((await scriptCalls()) - before).toBe(1);
    for (const id of ['s1', 's2', 's3']) expect((await log.progress(id)).nextTokenIndex).toBe(2);
  });

  it('everything pushed is in the log, in order, after drain()', async () => {
    const w = new LogWriter(log, 'c', false);
    w.push(started('c'));
    for (let i = 0; i < 10; i++) w.push(delta('c', i));
    w.push(finished('c'));
    await w.drain();
    expect(w.ended).toBe(false);
    const p = await log.progress('c');
    expect(p).toMatchObject({ nextTokenIndex: 10, ended: true });
    expect(p.text).toBe(Array.from({ length: 10 }, (_, i) => `t${i} `).join(''));
  });

  it('passes the tip its last append left, so the script does not read the top entry back each time', async () => {
    const xrevranges = async () =>
      Number((await redis.client.info('commandstats')).match(/cmdstat_xrevrange:calls=(\d+)/)?.[1] ?? 0);
    const before = await xrevranges();
    const w = new LogWriter(log, 'tip', false);
    w.push(started('tip'));
    for (let i = 0; i < 5; i++) {
      w.push(delta('tip', i));
      await w.drain();
    }
    w.push(finished('tip'));
    await w.drain();
    expect(await xrevranges()).toBe(before);
    expect(await log.progress('tip')).toMatchObject({ nextTokenIndex: 5, ended: true });
  });

  it('reports a backlog past its bound, and ended when the log had its end already', async () => {
    await log.appendMany('d', [started('d'), finished('d')]);
    const w = new LogWriter(log, 'd', false, 2);
    expect(w.push(delta('d', 0))).toBe(false); // backlog 1: written once this I/O turn is over
    expect(w.push(delta('d', 1))).toBe(true); // backlog 2: the bound
    await w.drain();
    expect(w.ended).toBe(true);
  });

  it('an event pushed after it saw the end starts no write, and drain() returns (it spun forever)', async () => {
    await log.appendMany('f', [started('f'), finished('f')]);
    const w = new LogWriter(log, 'f', false);
    w.push(delta('f', 0));
    await w.drain();
    expect(w.ended).toBe(true);
    // A run's next event can arrive before it checks ended; its flush ended at once, and the writer kept that
    // settled flush as "in flight": drain() then awaited it in a loop that never yielded, freezing the process.
    expect(w.push(delta('f', 1))).toBe(false);
    await new Promise((r) => setTimeout(r, 0));
    expect(w.writing).toBe(false);
    await w.drain();
    expect((await log.progress('f')).nextTokenIndex).toBe(0);
  });

  it('with finishAs, the Finished finishes the request in its queue, for the owner holding it only', async () => {
    const prefix = testPrefix('log-writer-finish');
    const clock = new ManualClock(1_767_225_600_000);
    const q = new RequestQueue({ redis: redis.client, clock, deployment: 'm', prefix });
    const shared = new StreamLog({ redis: redis.client, deployment: 'm', prefix });
    const submit = (id: string) => q.submit({ id, tenant: 't', weight: 1, cls: 'standard', body: '{}' });
    await submit('mine');
    await submit('theirs');
    await q.take('ctl-a', 2);
    const finishAs = () => ({ owner: 'ctl-a', now: clock.now(), retainMs: 60_000 });
    const mine = new LogWriter(shared, 'mine', false, undefined, undefined, finishAs);
    mine.push(started('mine'));
    await mine.drain();
    expect(mine.finishedInQueue).toBe(false); // no Finished yet
    mine.push(finished('mine'));
    await mine.drain();
    expect(mine.finishedInQueue).toBe(true);
    expect(await q.get('mine')).toMatchObject({ state: 'finished', body: undefined });
    // another owner's writer appends the end, but the queue entry is left to its holder
    const other = new LogWriter(shared, 'theirs', false, undefined, undefined, () => ({
      ...finishAs(),
      owner: 'ctl-b',
    }));
    other.push(started('theirs'));
    other.push(finished('theirs'));
    await other.drain();
    expect(other.finishedInQueue).toBe(false);
    expect(await q.get('theirs')).toMatchObject({ state: 'dispatched', owner: 'ctl-a' });
    expect(await q.finish('ctl-a', 'theirs')).toBe(true);
  });

  it('drain() throws a failed write, and push() refuses after it', async () => {
    const w = new LogWriter(log, 'e', false);
    w.push(started('e'));
    w.push(delta('e', 5));
    await expect(w.drain()).rejects.toBeInstanceOf(StreamLogError);
    expect(() => w.push(delta('e', 6))).toThrow(StreamLogError);
  });
});
