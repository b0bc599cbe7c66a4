import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../../common/clock.ts';
import { OverBudgetError, RequestTooLargeForBudgetError } from '../../../../controller/tenancy/errors.ts';
import { RateLimiter } from '../../../../controller/tenancy/rate-limiter.ts';
import type { Tenant } from '../../../../controller/tenancy/tenant-config.ts';
import { testPrefix } from '../../../helpers/redis.ts';
import { useRedis } from '../../../helpers/use-redis.ts';

const redis = useRedis();

const tenant = (extra: Partial<Tenant>): Tenant => ({
  id: 'acme',
  weight: 1,
  classes: new Set(['standard']),
  defaultClass: 'standard',
  requests: undefined,
  tokens: undefined,
  disabled: false,
  ...extra,
});

function limiter(name: string) {
  const clock = new ManualClock(1_767_225_600_000);
  return { clock, rl: new RateLimiter({ redis: redis.client, clock, prefix: testPrefix(name) }) };
}

async function refusal(p: Promise<void>): Promise<OverBudgetError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  if (!(e instanceof OverBudgetError)) throw new Error(`expected OverBudgetError, got ${String(e)}`);
  return e;
}

describe('RateLimiter on Redis', () => {
  it('admits a burst, then refuses with the wait until a request is refilled', async () => {
    const { rl, clock } = limiter('requests');
    const t = tenant({ requests: { perSecond: 2, burst: 3 } });
    for (let i = 0; i < 3; i++) await rl.admit(t, 0);
    const e = await refusal(rl.admit(t, 0));
    expect(e).toMatchObject({ code: 'resource_exhausted', budget: 'requests', retryAfterMs: 500 });
    clock.advance(499);
    expect((await refusal(rl.admit(t, 0))).retryAfterMs).toBe(1);
    clock.advance(1);
    await rl.admit(t, 0);
    clock.advance(60_000); // refills only up to the burst
    for (let i = 0; i < 3; i++) await rl.admit(t, 0);
    await refusal(rl.admit(t, 0));
  });

  it('takes from both buckets or from neither', async () => {
    const { rl, clock } = limiter('both');
    const t = tenant({ requests: { perSecond: 1, burst: 10 }, tokens: { perSecond: 100, burst: 1000 } });
    await rl.admit(t, 900);
    const e = await refusal(rl.admit(t, 300)); // 100 tokens left, 200 missing at 100/s
    expect(e).toMatchObject({ budget: 'tokens', retryAfterMs: 2000 });
    // the refused request spent no request budget: 9 requests are left
    for (let i = 0; i < 9; i++) await rl.admit(t, 1);
    expect((await refusal(rl.admit(t, 1))).budget).toBe('requests');
    clock.advance(2000);
    await rl.admit(t, 1);
  });

  it('refuses outright a request larger than the whole token budget', async () => {
    const { rl } = limiter('too-large');
    const t = tenant({ tokens: { perSecond: 10, burst: 100 } });
    await expect(rl.admit(t, 101)).rejects.toThrow(RequestTooLargeForBudgetError);
  });

  it('keeps budgets per tenant, shared by every limiter on the same Redis', async () => {
    const a = limiter('shared');
    const prefix = testPrefix('shared-both');
    const rl1 = new RateLimiter({ redis: redis.client, clock: a.clock, prefix });
    const rl2 = new RateLimiter({ redis: redis.client, clock: a.clock, prefix });
    const t = tenant({ requests: { perSecond: 1, burst: 2 } });
    await rl1.admit(t, 0);
    await rl2.admit(t, 0);
    await refusal(rl1.admit(t, 0));
    await rl1.admit({ ...t, id: 'other' }, 0);
  });

  it('lets an unlimited tenant through without touching Redis', async () => {
    const { rl } = limiter('unlimited');
    for (let i = 0; i < 5; i++) await rl.admit(tenant({}), 1_000_000);
  });
});
