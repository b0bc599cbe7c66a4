import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../../common/clock.ts';
import { silentLogger } from '../../../../common/log.ts';
import { LeaseKeeper } from '../../../../controller/queue/lease-keeper.ts';
import { RequestQueue } from '../../../../controller/queue/request-queue.ts';
import { testPrefix } from '../../../helpers/redis.ts';
import { useRedis } from '../../../helpers/use-redis.ts';

const redis = useRedis();

const req = (id: string) => ({ id, tenant: 't', weight: 1, cls: 'standard' as const, body: '{}' });

describe('LeaseKeeper', () => {
  it('keeps held requests from being taken over, reports cancels once and losses', async () => {
    const clock = new ManualClock(1_767_225_600_000);
    const q = new RequestQueue({
      redis: redis.client,
      clock,
      prefix: testPrefix('keeper'),
      deployment: 'd',
      leaseMs: 5000,
    });
    const lost: string[] = [];
    const cancelled: string[] = [];
    const keeper = new LeaseKeeper(
      q,
      'ctl-a',
      { lost: (id) => lost.push(id), cancelRequested: (id) => cancelled.push(id) },
      silentLogger,
    );
    for (const id of ['a', 'b', 'c']) await q.submit(req(id));
    for (const r of await q.take('ctl-a', 3)) keeper.hold(r.id);

    clock.advance(4000);
    await keeper.renewNow();
    clock.advance(4000); // 8 s after take: held leases were renewed until 9 s
    expect(await q.take('ctl-b', 10)).toEqual([]);

    await q.cancel('b');
    await keeper.renewNow();
    await keeper.renewNow();
    expect(cancelled).toEqual(['b']);

    keeper.drop('c'); // e.g. this replica stalled on c: stop renewing it
    clock.advance(3000);
    await keeper.renewNow();
    clock.advance(2000); // c's last renewal was 5 s ago; a and b were renewed 2 s ago
    expect((await q.take('ctl-b', 10)).map((r) => r.id)).toEqual(['c']);
    keeper.hold('c'); // the stalled work resumes and tries to keep it
    await keeper.renewNow();
    expect(lost).toEqual(['c']);
    expect(keeper.size).toBe(2);
  });

  it('a slow take renews its leases before they are used; requests lost meanwhile are left out', async () => {
    const clock = new ManualClock(1_767_225_600_000);
    const options = {
      redis: redis.client,
      clock,
      prefix: testPrefix('slow-take'),
      deployment: 'd',
      leaseMs: 5000,
    };
    const a = new RequestQueue(options);
    const b = new RequestQueue(options);
    const events = { lost: () => {}, cancelRequested: () => {} };
    const keeper = new LeaseKeeper(a, 'ctl-a', events, silentLogger);
    // The take runs in Redis at once but answers 4.5 s after it was sent (Redis was unreachable meanwhile):
    // its leases were counted from when it was sent.
    const realTake = a.take.bind(a);
    let during: () => Promise<unknown> = async () => {};
    a.take = async (owner, n) => {
      const taken = await realTake(owner, n);
      clock.advance(4500);
      await during();
      return taken;
    };

    await a.submit(req('slow'));
    expect((await keeper.take(1, clock)).map((r) => r.id)).toEqual(['slow']);
    clock.advance(2000); // 6.5 s after the take was sent, 2 s after it answered
    expect(await b.take('ctl-b', 10)).toEqual([]);
    expect(await a.get('slow')).toMatchObject({ state: 'dispatched', owner: 'ctl-a' });

    // Slower still: the lease ran out before the take answered and another replica took the request over.
    expect(await a.finish('ctl-a', 'slow')).toBe(true);
    await a.submit(req('lapsed'));
    during = async () => {
      clock.advance(1000);
      expect((await b.take('ctl-b', 10)).map((r) => r.id)).toEqual(['lapsed']);
    };
    expect(await keeper.take(1, clock)).toEqual([]);
    expect(await a.get('lapsed')).toMatchObject({ state: 'dispatched', owner: 'ctl-b' });
  });
});
