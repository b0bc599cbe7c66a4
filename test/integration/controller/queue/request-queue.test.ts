import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../../common/clock.ts';
import {
  QueueFullError,
  RequestExpiredError,
  RequestIdConflictError,
} from '../../../../controller/queue/errors.ts';
import { MemoryQueue } from '../../../../controller/queue/memory-queue.ts';
import type { PriorityClass } from '../../../../controller/queue/priority-class.ts';
import { RequestQueue, type RequestQueueOptions } from '../../../../controller/queue/request-queue.ts';
import { StreamLog } from '../../../../controller/queue/stream-log.ts';
import { FinishReason } from '../../../../proto/gen/corral/v1/inference.ts';
import { testPrefix } from '../../../helpers/redis.ts';
import { until } from '../../../helpers/until.ts';
import { useRedis } from '../../../helpers/use-redis.ts';

const redis = useRedis();
const T0 = 1_767_225_600_000; // 2026-01-01, a realistic epoch-ms magnitude for the Lua arithmetic

function queue(name: string, extra: Partial<RequestQueueOptions> = {}) {
  const clock = new ManualClock(T0);
  const prefix = testPrefix(name);
  const q = new RequestQueue({ redis: redis.client, clock, prefix, deployment: 'llama-405b', ...extra });
  const log = new StreamLog({ redis: redis.client, prefix, deployment: 'llama-405b' });
  return { q, clock, log };
}

const req = (id: string, cls: PriorityClass = 'standard', tenant = 't1', weight = 1) => ({
  id,
  tenant,
  weight,
  cls,
  body: JSON.stringify({ prompt: `prompt of ${id}` }),
});

function shareOf(tenant: string, ids: { tenant: string }[]): number {
  return ids.filter((r) => r.tenant === tenant).length / ids.length;
}

describe('RequestQueue on Redis', () => {
  it('hands out by priority class, FIFO inside a class for one tenant', async () => {
    const { q } = queue('priority');
    await q.submit(req('b1', 'batch'));
    await q.submit(req('s1', 'standard'));
    await q.submit(req('i1', 'interactive'));
    await q.submit(req('s2', 'standard'));
    await q.submit(req('i2', 'interactive'));
    expect((await q.take('ctl-a', 2)).map((r) => r.id)).toEqual(['i1', 'i2']);
    expect((await q.take('ctl-a', 10)).map((r) => r.id)).toEqual(['s1', 's2', 'b1']);
    expect(await q.take('ctl-a', 10)).toEqual([]);
  });

  it('returns what the gateway submitted, leased to the owner', async () => {
    const { q, clock } = queue('taken');
    const trace = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    await q.submit({ ...req('r1'), cost: 7, deadline: T0 + 60_000, trace });
    const [r] = await q.take('ctl-a', 1);
    expect(r).toEqual({
      id: 'r1',
      body: JSON.stringify({ prompt: 'prompt of r1' }),
      tenant: 't1',
      cls: 'standard',
      attempt: 1,
      deadline: T0 + 60_000,
      submittedAt: T0,
      cost: 7,
      trace,
    });
    expect(await q.get('r1')).toMatchObject({
      state: 'dispatched',
      owner: 'ctl-a',
      leaseUntil: clock.now() + 5000,
    });
    // The take emptied the queue: arrivals set its pace, so no drain rate is measured.
    expect(await q.load()).toEqual({
      waiting: { interactive: 0, standard: 0, batch: 0 },
      leased: 1,
      dispatchedInWindow: 0,
      windowMs: 0,
      roundMs: 0,
    });
  });

  it('gives a tenant its weighted share under contention although another submits 10x as many', async () => {
    for (const [lightWeight, expected] of [
      [1, 0.5],
      [3, 0.75],
    ] as const) {
      const { q } = queue(`fair-${lightWeight}`);
      // heavy floods first, so arrival order alone would give it everything
      for (let i = 0; i < 1000; i++) await q.submit(req(`h${i}`, 'standard', 'heavy', 1));
      for (let i = 0; i < 100; i++) await q.submit(req(`l${i}`, 'standard', 'light', lightWeight));
      const taken = [];
      while (taken.length < 120) taken.push(...(await q.take('ctl-a', 8)));
      const share = shareOf('light', taken);
      expect(Math.abs(share - expected)).toBeLessThanOrEqual(0.1 * expected);
    }
  });

  it('keeps weighted shares while both tenants keep arriving (10 heavy per light)', async () => {
    const { q } = queue('fair-arrivals');
    const taken = [];
    let h = 0;
    let l = 0;
    for (let round = 0; round < 60; round++) {
      for (let i = 0; i < 10; i++) await q.submit(req(`h${h++}`, 'standard', 'heavy', 1));
      await q.submit(req(`l${l++}`, 'standard', 'light', 1));
      if (round >= 10) taken.push(...(await q.take('ctl-a', 2))); // both backlogged from here on
    }
    // light submitted 60 and had a backlog throughout: half of the 100 hand-outs are its own
    expect(Math.abs(shareOf('light', taken) - 0.5)).toBeLessThanOrEqual(0.05);
  });

  it('hands out exactly the sequence the pure policy (MemoryQueue) gives, also when a submit takes', async () => {
    const { q, clock } = queue('reference');
    const ref = new MemoryQueue();
    let seed = 42;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const tenants = [
      ['a', 1],
      ['b', 2],
      ['c', 0.5],
      ['d', 7],
    ] as const;
    const classes: PriorityClass[] = ['interactive', 'standard', 'batch'];
    const got: string[] = [];
    const want: string[] = [];
    for (let step = 0; step < 400; step++) {
      clock.advance(10);
      if (rand() < 0.7) {
        const [tenant, weight] = tenants[Math.floor(rand() * tenants.length)] ?? ['a', 1];
        const cls = classes[Math.floor(rand() * 3)] ?? 'standard';
        const cost = 1 + Math.floor(rand() * 50);
        const deadline = rand() < 0.2 ? clock.now() + Math.floor(rand() * 500) + 1 : undefined;
        const item = { id: `r${step}`, tenant, weight, cls, cost, deadline };
        ref.submit(item);
        if (rand() < 0.3) {
          // a dispatcher with room for one submits: the same script takes the queue's next request
          const o = await q.submit({ ...item, body: '{}' }, 'ctl-a');
          want.push(...ref.take(1, clock.now()).map((i) => i.id));
          got.push(...(o.t === 'enqueued' ? (o.taken ?? []) : []).map((r) => r.id));
        } else await q.submit({ ...item, body: '{}' });
      } else {
        const n = 1 + Math.floor(rand() * 4);
        want.push(...ref.take(n, clock.now()).map((i) => i.id));
        got.push(...(await q.take('ctl-a', n)).map((r) => r.id));
      }
    }
    expect(want.length).toBeGreaterThan(50);
    expect(got).toEqual(want);
  });

  it('a submit that takes gets its own request when nothing waits ahead, else the head; PUBLISHes only if queued', async () => {
    const { q } = queue('submit-takes');
    const sub = redis.client.duplicate();
    const woken: string[] = [];
    try {
      await sub.subscribe(`${q.base}:wake`);
      sub.on('message', (_channel: string, cls: string) => woken.push(cls));
      const alone = await q.submit(req('i1', 'interactive'), 'ctl-a');
      expect(alone).toEqual({
        t: 'enqueued',
        taken: [expect.objectContaining({ id: 'i1', attempt: 1 })],
        readyLeft: 0,
      });
      expect(await q.get('i1')).toMatchObject({ state: 'dispatched', owner: 'ctl-a' });
      await q.submit(req('s1', 'standard'));
      const behind = await q.submit(req('b1', 'batch'), 'ctl-a');
      expect(behind.t === 'enqueued' && behind.taken?.map((r) => r.id)).toEqual(['s1']);
      // what the take left ready: b1 (the submitting dispatcher must look again, nothing else will wake it)
      expect(behind.t === 'enqueued' && behind.readyLeft).toBe(1);
      expect(await q.get('b1')).toMatchObject({ state: 'queued' });
      // in order on one connection: s1 and b1 were queued (published), i1 never was
      await until('both wake-ups', () => (woken.length === 2 ? true : undefined));
      expect(woken).toEqual(['standard', 'batch']);
      expect(await q.submit(req('b1', 'batch'), 'ctl-a')).toEqual({ t: 'attached', state: 'queued' });
    } finally {
      await sub.quit();
    }
  });

  it('never hands out a request whose deadline passed, and tells its stream', async () => {
    const { q, clock, log } = queue('deadline');
    await q.submit({ ...req('soon'), deadline: T0 + 1000 });
    await q.submit({ ...req('later'), deadline: T0 + 5000 });
    clock.advance(1000);
    expect((await q.take('ctl-a', 10)).map((r) => r.id)).toEqual(['later']);
    expect(await q.get('soon')).toMatchObject({ state: 'expired', error: { code: 'deadline_exceeded' } });
    const entries = await log.read('soon');
    expect(entries).toEqual([
      { t: 'error', cursor: '2-0', code: 'deadline_exceeded', message: 'deadline passed before dispatch' },
    ]);
    await expect(q.submit({ ...req('past'), deadline: clock.now() })).rejects.toThrow(RequestExpiredError);
  });

  it('expires overdue requests in maintain() without taking any', async () => {
    const { q, clock } = queue('maintain');
    await q.submit({ ...req('x'), deadline: T0 + 10 });
    clock.advance(10);
    expect(await q.maintain()).toEqual({ leasesReclaimed: 0, deadlinesSwept: 1 });
    expect((await q.load()).waiting.standard).toBe(0);
  });

  it('removes a request cancelled before dispatch; flags one cancelled after', async () => {
    const { q, log } = queue('cancel');
    await q.submit(req('a'));
    await q.submit(req('b'));
    expect(await q.cancel('a')).toEqual({ t: 'removed' });
    expect((await q.take('ctl-a', 10)).map((r) => r.id)).toEqual(['b']);
    expect((await q.get('a'))?.state).toBe('cancelled');
    expect((await log.read('a'))[0]).toMatchObject({ t: 'error', code: 'cancelled' });
    expect(await q.cancel('b')).toEqual({ t: 'dispatched', owner: 'ctl-a' });
    expect(await q.renew('ctl-a', ['b'])).toEqual({ lost: [], cancelRequested: ['b'] });
    expect(await q.cancel('a')).toEqual({ t: 'ended', state: 'cancelled' });
    expect(await q.cancel('nope')).toEqual({ t: 'not_found' });
  });

  it('attaches a resubmission with the same body; refuses the id with another body or tenant', async () => {
    const { q } = queue('idempotent');
    expect(await q.submit(req('r1'))).toEqual({ t: 'enqueued' });
    expect(await q.submit(req('r1'))).toEqual({ t: 'attached', state: 'queued' });
    await expect(q.submit({ ...req('r1'), body: '{"prompt":"other"}' })).rejects.toThrow(
      new RequestIdConflictError('r1'),
    );
    await expect(q.submit(req('r1', 'standard', 'someone-else'))).rejects.toThrow(RequestIdConflictError);
    expect((await q.load()).waiting.standard).toBe(1);
    await q.take('ctl-a', 1);
    expect(await q.submit(req('r1'))).toEqual({ t: 'attached', state: 'dispatched' });
    expect(await q.finish('ctl-a', 'r1')).toBe(true);
    expect(await q.submit(req('r1'))).toEqual({ t: 'attached', state: 'finished' });
    expect(await q.take('ctl-a', 10)).toEqual([]);
  });

  it('hands a request back when its owner stops renewing the lease', async () => {
    const { q, clock } = queue('lease');
    await q.submit(req('r1'));
    await q.submit(req('r2'));
    await q.take('ctl-a', 2);
    clock.advance(3000);
    expect(await q.renew('ctl-a', ['r2'])).toEqual({ lost: [], cancelRequested: [] });
    clock.advance(2000); // r1's lease (5 s) ran out; r2 was renewed until 8 s
    const takenOver = await q.take('ctl-b', 10);
    expect(takenOver.map((r) => [r.id, r.attempt])).toEqual([['r1', 2]]);
    expect(await q.renew('ctl-a', ['r1', 'r2'])).toEqual({ lost: ['r1'], cancelRequested: [] });
    expect(await q.finish('ctl-a', 'r1')).toBe(false);
    expect(await q.finish('ctl-b', 'r1')).toBe(true);
  });

  it('fails a request after maxAttempts hand-outs, with a clear error in its stream', async () => {
    const { q, clock, log } = queue('attempts', { maxAttempts: 2, leaseMs: 1000 });
    await q.submit(req('r1'));
    await q.take('ctl-a', 1);
    clock.advance(1000);
    expect((await q.take('ctl-b', 1)).map((r) => r.attempt)).toEqual([2]);
    clock.advance(1000);
    expect(await q.maintain()).toEqual({ leasesReclaimed: 1, deadlinesSwept: 0 });
    expect(await q.get('r1')).toMatchObject({ state: 'failed', error: { code: 'unavailable' } });
    expect((await log.read('r1'))[0]).toMatchObject({
      t: 'error',
      code: 'unavailable',
      message: 'gave up after 2 attempts (lease expired)',
    });
  });

  it('release() puts a request back ahead of later arrivals in its class', async () => {
    const { q } = queue('release');
    await q.submit(req('first'));
    await q.take('ctl-a', 1);
    await q.submit(req('second'));
    expect(await q.release('ctl-a', 'first', 'group lost')).toBe(true);
    expect((await q.take('ctl-a', 2)).map((r) => [r.id, r.attempt])).toEqual([
      ['first', 2],
      ['second', 1],
    ]);
  });

  it('sheds new requests past the depth or wait bound with a retry hint, but never a retry', async () => {
    const { q } = queue('shed', { shed: { maxWaitMs: 2000, maxDepth: 5 }, loadMaxAgeMs: 0 });
    for (let i = 0; i < 5; i++) await q.submit(req(`r${i}`));
    const e = await q.submit(req('r5')).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(QueueFullError);
    expect(e).toMatchObject({ code: 'resource_exhausted', reason: 'depth', retryAfterMs: 2000 });
    expect(await q.submit(req('r0'))).toEqual({ t: 'attached', state: 'queued' });
  });

  it('admits submits that arrive together only up to the bound', async () => {
    const { q } = queue('shed-burst', { shed: { maxWaitMs: 2000, maxDepth: 32 } });
    const outcomes = await Promise.all(
      Array.from({ length: 50 }, (_, i) => q.submit(req(`b${i}`)).catch((e: unknown) => e)),
    );
    expect(outcomes.filter((o) => o instanceof QueueFullError)).toHaveLength(18);
    expect((await q.load()).waiting.standard).toBe(32);
  });

  it('sheds when the expected wait (waiting ahead / drain rate) passes the bound', async () => {
    const { q, clock } = queue('shed-wait', { shed: { maxWaitMs: 2000, maxDepth: 100 }, loadMaxAgeMs: 0 });
    for (let i = 0; i < 12; i++) await q.submit(req(`r${i}`));
    await q.take('ctl-a', 2);
    clock.advance(1000);
    await q.take('ctl-a', 2);
    // 2 taken 1 s after a take that left requests waiting -> drains 2/s in rounds of 1 s; 8 standard waiting
    // and this one -> 4.5 s + a round: 5.5 s, 3.7 s past what admits (0.9 x the bound)
    const e = await q.submit(req('more')).catch((x: unknown) => x);
    expect(e).toMatchObject({
      name: 'QueueFullError',
      reason: 'wait',
      expectedWaitMs: 5500,
      retryAfterMs: 3700,
    });
    // an interactive request has nobody ahead of it
    expect(await q.submit(req('urgent', 'interactive'))).toEqual({ t: 'enqueued' });
  });

  it('measures the drain rate only while a backlog waits, and remembers it through a quiet window', async () => {
    const { q, clock } = queue('drain-rate');
    await q.submit(req('a'));
    await q.take('ctl-a', 1);
    expect(await q.load()).toMatchObject({ dispatchedInWindow: 0, windowMs: 0 });
    for (let i = 0; i < 5; i++) await q.submit(req(`b${i}`));
    await q.take('ctl-a', 2);
    clock.advance(1000);
    await q.take('ctl-a', 2);
    expect(await q.load()).toMatchObject({ dispatchedInWindow: 2, windowMs: 1000, roundMs: 1000 });
    clock.advance(60_000);
    expect(await q.load()).toMatchObject({ dispatchedInWindow: 2, windowMs: 1000, roundMs: 1000 });
  });

  it('counts what it queued since it last read the load, so a burst is not admitted on a stale one', async () => {
    const { q, clock } = queue('stale-load', {
      shed: { maxWaitMs: 3400, maxDepth: 100 }, // admits an expected wait up to 0.9 x 3.4 = 3.06 s
      loadMaxAgeMs: 60_000,
    });
    for (let i = 0; i < 6; i++) await q.submit(req(`r${i}`));
    await q.take('ctl-a', 2);
    clock.advance(1000);
    await q.take('ctl-a', 2);
    await q.load(); // as any submit meanwhile would: measures (and remembers) the drain rate
    clock.advance(60_001);
    // Drains 2/s in rounds of 1 s. The load read now (2 waiting) stands for a minute; each admission counts
    // into it.
    expect(await q.submit(req('x0'))).toEqual({ t: 'enqueued' }); // 2 ahead: 3 / 2/s + 1 s = 2.5 s
    expect(await q.submit(req('x1'))).toEqual({ t: 'enqueued' }); // 3 ahead: 3 s, just admitted
    await expect(q.submit(req('x2'))).rejects.toMatchObject({ reason: 'wait', expectedWaitMs: 3500 });
  });

  it('does not run again a request whose earlier owner wrote its end but died before finish()', async () => {
    const { q, clock, log } = queue('ended-not-finished');
    await q.submit(req('r1'));
    await q.submit(req('r2'));
    await q.take('ctl-a', 2);
    await log.append('r1', {
      requestId: 'r1',
      event: { $case: 'finished', value: { reason: FinishReason.FINISH_REASON_STOP, stopReason: '' } },
    });
    clock.advance(5000); // ctl-a is gone: both leases lapse
    expect((await q.take('ctl-b', 10)).map((r) => r.id)).toEqual(['r2']);
    expect((await q.get('r1'))?.state).toBe('finished');
  });

  it('never hands one request to two replicas taking at the same time', async () => {
    const { q, clock } = queue('two-replicas');
    const other = new Redis(redis.url);
    try {
      await other.ping(); // connected, so both replicas start taking together
      const q2 = new RequestQueue({
        redis: other,
        clock,
        prefix: q.base.split(':{')[0] ?? '',
        deployment: 'llama-405b',
      });
      for (let i = 0; i < 300; i++) await q.submit(req(`r${i}`, 'standard', `t${i % 3}`));
      const got: string[][] = [[], []];
      await Promise.all(
        [q, q2].map(async (qq, k) => {
          for (;;) {
            const batch = await qq.take(`ctl-${k}`, 1 + k * 4);
            if (batch.length === 0) return;
            got[k]?.push(...batch.map((r) => r.id));
          }
        }),
      );
      const all = [...(got[0] ?? []), ...(got[1] ?? [])];
      expect(new Set(all).size).toBe(300);
      expect(all.length).toBe(300);
      expect(got[0]?.length).toBeGreaterThan(0);
      expect(got[1]?.length).toBeGreaterThan(0);
    } finally {
      await other.quit();
    }
  });
});
