import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../../common/clock.ts';
import { ArrivalSignal } from '../../../../controller/queue/arrival-signal.ts';
import { RequestQueue } from '../../../../controller/queue/request-queue.ts';
import { testPrefix } from '../../../helpers/redis.ts';
import { useRedis } from '../../../helpers/use-redis.ts';

const redis = useRedis();

const req = (id: string) => ({ id, tenant: 't', weight: 1, cls: 'standard' as const, body: '{}' });

describe('ArrivalSignal', () => {
  it('wakes a waiting dispatcher on submit and on hand-back, relays cancels, times out when nothing comes', async () => {
    const clock = new ManualClock(1_767_225_600_000);
    const prefix = testPrefix('wake');
    const q = new RequestQueue({ redis: redis.client, clock, prefix, deployment: 'd' });
    const signal = await ArrivalSignal.open(redis.client, 'd', prefix);
    try {
      expect(await signal.after(signal.generation, 20)).toBe(false);
      let seen = signal.generation;
      const woke = signal.after(seen, 30_000);
      await q.submit(req('x'));
      expect(await woke).toBe(true);

      seen = signal.generation;
      await q.take('ctl-a', 1);
      await q.release('ctl-a', 'x', 'group lost');
      // the arrival may already be counted: after() then returns at once
      expect(await signal.after(seen, 30_000)).toBe(true);

      // a cancel of a dispatched request reaches the listeners at once
      await q.take('ctl-a', 1);
      const cancelled = new Promise<string>((resolve) => signal.onCancel(resolve));
      await q.cancel('x');
      expect(await cancelled).toBe('x');

      // another deployment's arrivals do not wake this one
      const other = new RequestQueue({ redis: redis.client, clock, prefix, deployment: 'other' });
      seen = signal.generation;
      await other.submit(req('y'));
      expect(await signal.after(seen, 200)).toBe(false);
    } finally {
      await signal.close();
    }
  });
});
