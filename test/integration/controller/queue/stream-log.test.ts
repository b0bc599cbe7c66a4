import { describe, expect, it } from 'vitest';
import {
  compareCursors,
  cursorAfterTokens,
  type LogEntry,
  StreamLog,
  StreamLogError,
} from '../../../../controller/queue/stream-log.ts';
import { FinishReason, type GenerateEvent } from '../../../../proto/gen/corral/v1/inference.ts';
import { testPrefix } from '../../../helpers/redis.ts';
import { useRedis } from '../../../helpers/use-redis.ts';

const redis = useRedis();

const started = (id: string): GenerateEvent => ({
  requestId: id,
  event: { $case: 'started', value: { model: 'llama', promptTokens: 3, promptTokenIds: [1, 2, 3] } },
});
const delta = (id: string, index: number, text: string, tokenIds: number[]): GenerateEvent => ({
  requestId: id,
  event: { $case: 'delta', value: { text, index, tokenIds, tokenCount: tokenIds.length } },
});
const finished = (id: string): GenerateEvent => ({
  requestId: id,
  event: { $case: 'finished', value: { reason: FinishReason.FINISH_REASON_STOP, stopReason: '' } },
});

function texts(entries: LogEntry[]): string[] {
  return entries.map((e) => {
    if (e.t === 'error') return `error:${e.code}`;
    const ev = e.event.event;
    return ev?.$case === 'delta' ? ev.value.text : (ev?.$case ?? '?');
  });
}

/** Script calls (EVAL and EVALSHA) Redis has run, from INFO commandstats. */
function scriptCalls(info: string): number {
  let calls = 0;
  for (const m of info.matchAll(/cmdstat_eval(?:sha)?:calls=(\d+)/g)) calls += Number(m[1]);
  return calls;
}

function log(name: string, extra: { ttlMs?: number; endedTtlMs?: number } = {}) {
  return new StreamLog({ redis: redis.client, prefix: testPrefix(name), deployment: 'llama-405b', ...extra });
}

describe('StreamLog on Redis', () => {
  it('keeps the events in order and round-trips them exactly', async () => {
    const l = log('roundtrip');
    const events = [started('r'), delta('r', 0, 'Hel', [10, 11]), delta('r', 2, 'lo', [12]), finished('r')];
    for (const e of events) expect(await l.append('r', e)).toBe('appended');
    const entries = await l.read('r');
    expect(entries.map((e) => e.cursor)).toEqual(['0-1', '1-0', '1-2', '2-0']);
    expect(entries.map((e) => (e.t === 'event' ? e.event : undefined))).toEqual(events);
  });

  it('drops deltas already in the log, so a replayed attempt never duplicates a token', async () => {
    const l = log('dupes');
    await l.append('r', started('r'));
    await l.append('r', delta('r', 0, 'a', [1, 2]));
    await l.append('r', delta('r', 2, 'b', [3]));
    // attempt 2 (failover) replays from the start before producing new tokens
    expect(await l.append('r', started('r'))).toBe('duplicate');
    expect(await l.append('r', delta('r', 0, 'a', [1, 2]))).toBe('duplicate');
    expect(await l.append('r', delta('r', 2, 'b', [3]))).toBe('duplicate');
    expect(await l.nextTokenIndex('r')).toBe(3);
    expect(await l.append('r', delta('r', 3, 'c', [4]))).toBe('appended');
    expect(texts(await l.read('r'))).toEqual(['started', 'a', 'b', 'c']);
  });

  it('refuses a gap or an overlap, naming the index to continue at', async () => {
    const l = log('gaps');
    await l.append('r', delta('r', 0, 'ab', [1, 2]));
    await expect(l.append('r', delta('r', 3, 'x', [9]))).rejects.toThrow(
      new StreamLogError('r', 'gap', 2, 3),
    );
    await expect(l.append('r', delta('r', 1, 'bc', [2, 3]))).rejects.toMatchObject({
      problem: 'overlap',
      nextTokenIndex: 2,
    });
    await expect(l.append('r', delta('r', 2, '', []))).rejects.toMatchObject({ problem: 'empty_delta' });
  });

  it('sends the appends of several requests asked for in one turn in one script call, each with its own outcome', async () => {
    const l = log('one-call');
    await l.append('b', delta('b', 0, 'x', [1]));
    const calls = () => redis.client.info('commandstats').then(scriptCalls);
    const before = await calls();
    const [a, b, c] = await Promise.allSettled([
      l.appendMany('a', [started('a'), delta('a', 0, 'hi', [7])]),
      l.append('b', delta('b', 3, 'gap', [9])),
      l.append('c', started('c')),
    ]);
    // INFO itself is no script call; the three appends were one.
    expect((await calls()) - before).toBe(1);
    expect(a).toEqual({ status: 'fulfilled', value: ['appended', 'appended'] });
    expect(b).toMatchObject({ status: 'rejected', reason: { problem: 'gap', nextTokenIndex: 1 } });
    expect(c).toEqual({ status: 'fulfilled', value: 'appended' });
    expect(texts(await l.read('a'))).toEqual(['started', 'hi']);
    expect(texts(await l.read('b'))).toEqual(['x']);
  });

  it("trusts a writer's tip only while nobody else appended: then it reads the log's top entry again", async () => {
    const l = log('tip');
    const xrevranges = async () =>
      Number((await redis.client.info('commandstats')).match(/cmdstat_xrevrange:calls=(\d+)/)?.[1] ?? 0);
    let [r] = await l.appendLinked('r', [started('r'), delta('r', 0, 'a', [1])]);
    r = (await l.appendLinked('r', [delta('r', 1, 'b', [2])], false, { tip: r?.tip }))[0];
    expect(r?.tip).toEqual({ length: 3, top: '1-1', nextTokenIndex: 2 });
    const before = await xrevranges();
    const [c] = await l.appendLinked('r', [delta('r', 2, 'c', [3])], false, { tip: r?.tip });
    expect(c?.linked?.after).toBe('1-1');
    expect(await xrevranges()).toBe(before);
    // Another writer (this request's lease ran out under the first) appends: the first one's tip is stale.
    expect(await l.append('r', delta('r', 3, 'd', [4]))).toBe('appended');
    const [stale] = await l.appendLinked('r', [delta('r', 3, 'd', [4])], false, { tip: c?.tip });
    expect(stale?.outcome).toBe('duplicate');
    expect(stale?.tip).toEqual({ length: 5, top: '1-3', nextTokenIndex: 4 });
    await expect(
      l.appendLinked('r', [delta('r', 5, 'gap', [6])], false, { tip: c?.tip }),
    ).rejects.toMatchObject({ problem: 'gap', nextTokenIndex: 4 });
    expect(texts(await l.read('r'))).toEqual(['started', 'a', 'b', 'c', 'd']);
  });

  it("refreshes a running log's TTL on a writer's first append and every 32 tokens, not on every token", async () => {
    const l = log('ttl-refresh', { ttlMs: 60_000 });
    let [r] = await l.appendLinked('r', [started('r')]);
    expect(await redis.client.pttl(l.key('r'))).toBeGreaterThan(1000);
    await redis.client.pexpire(l.key('r'), 30_000);
    for (let i = 0; i < 31; i++)
      r = (await l.appendLinked('r', [delta('r', i, 'x', [i])], false, { tip: r?.tip }))[0];
    expect(await redis.client.pttl(l.key('r'))).toBeLessThanOrEqual(30_000);
    await l.appendLinked('r', [delta('r', 31, 'x', [31])], false, { tip: r?.tip });
    expect(await redis.client.pttl(l.key('r'))).toBeGreaterThan(30_000);
  });

  it('orders cursors as the log orders its entries', () => {
    const inLogOrder = ['0-0', '0-1', '1-0', '1-2', '1-10', '2-0'];
    for (const [i, a] of inLogOrder.entries())
      for (const [j, b] of inLogOrder.entries())
        expect(Math.sign(compareCursors(a, b))).toBe(Math.sign(i - j));
  });

  it('lets a reader resume after the tokens it has', async () => {
    const l = log('resume');
    await l.append('r', started('r'));
    await l.append('r', delta('r', 0, 'a', [1]));
    await l.append('r', delta('r', 1, 'bc', [2, 3]));
    await l.append('r', delta('r', 3, 'd', [4]));
    expect(texts(await l.read('r', cursorAfterTokens(0)))).toEqual(['a', 'bc', 'd']);
    expect(texts(await l.read('r', cursorAfterTokens(3)))).toEqual(['d']);
    expect(texts(await l.read('r', cursorAfterTokens(4)))).toEqual([]);
  });

  it('follows a live stream from a cursor until the terminal entry', async () => {
    const l = log('follow');
    await l.append('r', started('r'));
    await l.append('r', delta('r', 0, 'a', [1]));
    const seen: string[] = [];
    const reader = (async () => {
      for await (const e of l.follow('r', cursorAfterTokens(1), undefined, 200)) seen.push(...texts([e]));
    })();
    await new Promise((r) => setTimeout(r, 50)); // let the reader block, so it waits for new entries
    await l.append('r', delta('r', 1, 'b', [2]));
    await l.append('r', finished('r'));
    await reader;
    expect(seen).toEqual(['b', 'finished']);
  });

  it('stops following when aborted', async () => {
    const l = log('abort');
    const ac = new AbortController();
    const seen: LogEntry[] = [];
    const reader = (async () => {
      for await (const e of l.follow('r', undefined, ac.signal, 60_000)) seen.push(e);
    })();
    await new Promise((r) => setTimeout(r, 50));
    ac.abort();
    await reader;
    expect(seen).toEqual([]);
  });

  it('accepts nothing after the end and expires once ended', async () => {
    const l = log('ttl', { ttlMs: 60_000, endedTtlMs: 1000 });
    await l.append('r', delta('r', 0, 'a', [1]));
    expect(await redis.client.pttl(l.key('r'))).toBeGreaterThan(1000);
    await l.append('r', finished('r'));
    expect(await l.append('r', delta('r', 1, 'late', [2]))).toBe('ended');
    const ttl = await redis.client.pttl(l.key('r'));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(1000);
  });

  it('reports the progress a continuation on another group starts from', async () => {
    const l = log('progress');
    expect(await l.progress('r')).toEqual({
      started: undefined,
      tokenIds: [],
      text: '',
      nextTokenIndex: 0,
      ended: false,
    });
    await l.append('r', started('r'));
    await l.append('r', delta('r', 0, 'Hel', [10, 11]));
    await l.append('r', delta('r', 2, 'lo', [12]));
    expect(await l.progress('r')).toEqual({
      started: { model: 'llama', promptTokens: 3, promptTokenIds: [1, 2, 3] },
      tokenIds: [10, 11, 12],
      text: 'Hello',
      nextTokenIndex: 3,
      ended: false,
    });
    await l.append('r', finished('r'));
    expect((await l.progress('r')).ended).toBe(true);
  });
});
