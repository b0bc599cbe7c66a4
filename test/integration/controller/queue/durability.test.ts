/**
 * Accepted requests survive a Redis restart: the server is stopped (cleanly, then by SIGKILL as in a crash)
 * and started again on the same dir, loading its AOF. redis-server write()s the AOF before it replies, so even
 * a killed process loses no acknowledged write; appendfsync everysec only risks the last second when the
 * machine itself goes down, which a test cannot simulate.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../../common/clock.ts';
import { RequestQueue } from '../../../../controller/queue/request-queue.ts';
import { StreamLog } from '../../../../controller/queue/stream-log.ts';
import { testPrefix } from '../../../helpers/redis.ts';
import { useRedis } from '../../../helpers/use-redis.ts';

const redis = useRedis();

const req = (id: string, cls: 'interactive' | 'batch' = 'batch') => ({
  id,
  tenant: 't',
  weight: 1,
  cls,
  body: `{"prompt":"${id}"}`,
});

describe.each([
  ['a clean shutdown', false],
  ['SIGKILL', true],
])('queue after a Redis restart from its AOF (%s)', (_name, kill) => {
  it('still holds queued, dispatched and streamed state', async () => {
    const clock = new ManualClock(1_767_225_600_000);
    const prefix = testPrefix(`aof-${kill}`);
    const q = new RequestQueue({ redis: redis.client, clock, prefix, deployment: 'd' });
    const log = new StreamLog({ redis: redis.client, prefix, deployment: 'd' });
    await q.submit(req('q1'));
    await q.submit(req('q2'));
    await q.submit(req('d1', 'interactive'));
    await q.take('ctl-a', 1);
    await log.append('d1', {
      requestId: 'd1',
      event: { $case: 'delta', value: { text: 'x', index: 0, tokenIds: [7], tokenCount: 1 } },
    });

    await redis.server.restart({ kill });

    expect(await q.get('d1')).toMatchObject({ state: 'dispatched', owner: 'ctl-a' });
    expect(await log.nextTokenIndex('d1')).toBe(1);
    expect(await q.submit(req('q1'))).toEqual({ t: 'attached', state: 'queued' });
    expect((await q.take('ctl-b', 10)).map((r) => [r.id, r.body])).toEqual([
      ['q1', '{"prompt":"q1"}'],
      ['q2', '{"prompt":"q2"}'],
    ]);
  });
});
