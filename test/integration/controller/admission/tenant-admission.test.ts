/**
 * Budgets through admission on a real Redis, with an injected clock: the retry-after a refusal gives is honest
 * (one millisecond sooner is still refused; that long later the same request is admitted).
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../../common/clock.ts';
import type { Admission } from '../../../../controller/admission/admission.ts';
import { tenantAdmission } from '../../../../controller/admission/tenant-admission.ts';
import { OverBudgetError } from '../../../../controller/tenancy/errors.ts';
import { RateLimiter } from '../../../../controller/tenancy/rate-limiter.ts';
import type { TenantOptions } from '../../../../controller/tenancy/tenant-config.ts';
import { sha256Hex, TenantDirectory } from '../../../../controller/tenancy/tenant-directory.ts';
import { testPrefix } from '../../../helpers/redis.ts';
import { useRedis } from '../../../helpers/use-redis.ts';

const redis = useRedis();

const KEY = 'sk-acme-0123456789abcdef';

function admissionFor(name: string, tenant: Omit<TenantOptions, 'id' | 'keySha256'>) {
  const clock = new ManualClock(1_767_225_600_000);
  const directory = TenantDirectory.fromOptions({
    tenants: [{ id: 'acme', keySha256: [sha256Hex(KEY)], ...tenant }],
  });
  const admission = tenantAdmission(
    directory,
    new RateLimiter({ redis: redis.client, clock, prefix: testPrefix(name) }),
  );
  return { clock, admission };
}

async function refusal(admission: Admission, tokens: number): Promise<OverBudgetError> {
  const e = await admission.charge(admission.identify(KEY, undefined), tokens).then(
    () => undefined,
    (x: unknown) => x,
  );
  if (!(e instanceof OverBudgetError)) throw new Error(`expected OverBudgetError, got ${String(e)}`);
  return e;
}

describe('tenant admission budgets on Redis', () => {
  it('over the request budget: refused with a retry-after that, waited out, admits', async () => {
    const { clock, admission } = admissionFor('requests', { requests: { perSecond: 4, burst: 2 } });
    const who = admission.identify(KEY, undefined);
    await admission.charge(who, 10);
    await admission.charge(who, 10);
    const e = await refusal(admission, 10);
    expect(e).toMatchObject({ code: 'resource_exhausted', tenant: 'acme', budget: 'requests' });
    expect(e.retryAfterMs).toBe(250);
    clock.advance(e.retryAfterMs - 1);
    await refusal(admission, 10);
    clock.advance(1);
    await admission.charge(who, 10);
  });

  it('over the token budget: refused with the time the missing tokens take to refill', async () => {
    const { clock, admission } = admissionFor('tokens', { tokens: { perSecond: 100, burst: 1000 } });
    const who = admission.identify(KEY, undefined);
    await admission.charge(who, 800);
    const e = await refusal(admission, 500); // 200 left, 300 missing at 100/s
    expect(e).toMatchObject({ budget: 'tokens', retryAfterMs: 3000 });
    clock.advance(2999);
    await refusal(admission, 500);
    clock.advance(1);
    await admission.charge(who, 500);
  });

  it('a request larger than the whole token budget is refused as invalid, not as retryable', async () => {
    const { admission } = admissionFor('too-large', { tokens: { perSecond: 100, burst: 1000 } });
    await expect(admission.charge(admission.identify(KEY, undefined), 1001)).rejects.toMatchObject({
      code: 'invalid_argument',
      name: 'RequestTooLargeForBudgetError',
    });
  });
});
