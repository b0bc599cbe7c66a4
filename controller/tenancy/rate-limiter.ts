/**
 * Per-tenant budgets as token buckets in Redis, shared by every controller replica.
 *
 *   level(now) = min(burst, level(t) + (now - t) * perSecond / 1000)
 *   take n:   level(now) >= n  ->  level -= n, admitted
 *             otherwise        ->  wait = ceil((n - level(now)) * 1000 / perSecond) ms, nothing taken
 *
 * Two buckets per tenant: requests (n = 1) and tokens (n = prompt tokens + max_tokens). One Lua script checks
 * both and takes from both or from neither, so a request refused for tokens does not also spend a request, and
 * two replicas admitting at once cannot both spend the last token (a script runs atomically in Redis).
 * Idle buckets expire once full again (PEXPIRE = time to refill), so dormant tenants cost no memory.
 * `now` comes from the injected Clock; replicas' clocks are NTP-close, and a clock behind the stored time
 * refills nothing (elapsed is clamped at 0) rather than going negative.
 */
import type { Redis } from 'ioredis';
import type { Clock } from '../../common/clock.ts';
import { OverBudgetError, RequestTooLargeForBudgetError } from './errors.ts';
import type { Budget, Tenant } from './tenant-config.ts';

const TAKE_SCRIPT = `
local now = tonumber(ARGV[1])
local level = {}
local wait = {0, 0}
for i = 1, 2 do
  local rate = tonumber(ARGV[2 + (i - 1) * 3])
  local burst = tonumber(ARGV[3 + (i - 1) * 3])
  local n = tonumber(ARGV[4 + (i - 1) * 3])
  if rate > 0 then
    local stored = redis.call('HMGET', KEYS[i], 'level', 't')
    local l = tonumber(stored[1]) or burst
    local t = tonumber(stored[2]) or now
    local elapsed = now - t
    if elapsed < 0 then elapsed = 0 end
    l = math.min(burst, l + elapsed * rate / 1000)
    level[i] = l
    if l < n then
      -- the epsilon keeps float noise (0.002 * 500 = 1.0000000000000009) from adding a millisecond
      wait[i] = math.max(1, math.ceil((n - l) * 1000 / rate - 1e-6))
    end
  end
end
if wait[1] > 0 or wait[2] > 0 then
  return {0, wait[1], wait[2]}
end
for i = 1, 2 do
  local rate = tonumber(ARGV[2 + (i - 1) * 3])
  if rate > 0 then
    local burst = tonumber(ARGV[3 + (i - 1) * 3])
    local n = tonumber(ARGV[4 + (i - 1) * 3])
    local l = level[i] - n
    redis.call('HSET', KEYS[i], 'level', tostring(l), 't', tostring(now))
    redis.call('PEXPIRE', KEYS[i], math.ceil((burst - l) * 1000 / rate) + 1000)
  end
end
return {1, 0, 0}
`;

export interface RateLimiterOptions {
  redis: Redis;
  clock: Clock;
  /** Key prefix, e.g. `corral` -> `corral:tb:<tenant>:requests`. */
  prefix: string;
}

export class RateLimiter {
  constructor(private readonly options: RateLimiterOptions) {
    options.redis.defineCommand('corralTakeBudget', { numberOfKeys: 2, lua: TAKE_SCRIPT });
  }

  /**
   * Spend one request and `tokens` tokens of the tenant's budgets, or throw OverBudgetError with the time
   * after which the same request would be admitted (the larger wait of the two buckets).
   */
  async admit(tenant: Tenant, tokens: number): Promise<void> {
    if (tenant.tokens && tokens > tenant.tokens.burst)
      throw new RequestTooLargeForBudgetError(tenant.id, tokens, tenant.tokens.burst);
    if (!tenant.requests && !tenant.tokens) return;
    const { prefix, redis, clock } = this.options;
    const args = [clock.now(), ...bucketArgs(tenant.requests, 1), ...bucketArgs(tenant.tokens, tokens)];
    const r = (await (redis as unknown as TakeCommand).corralTakeBudget(
      `${prefix}:tb:${tenant.id}:requests`,
      `${prefix}:tb:${tenant.id}:tokens`,
      ...args,
    )) as [number, number, number];
    if (r[0] === 1) return;
    const budget = r[1] >= r[2] ? 'requests' : 'tokens';
    throw new OverBudgetError(tenant.id, budget, Math.max(r[1], r[2]));
  }
}

type TakeCommand = { corralTakeBudget(...args: (string | number)[]): Promise<unknown> };

function bucketArgs(b: Budget | undefined, n: number): number[] {
  return b ? [b.perSecond, b.burst, n] : [0, 0, 0];
}
