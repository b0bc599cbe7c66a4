/**
 * A controller started while Redis is down (a node reboot, Redis rescheduled) waits for it instead of exiting:
 * in Kubernetes an exit crash-loops the pod, with ever longer restart delays after Redis is back. The wait
 * retries with backoff, warns every warnEveryMs, and gives up only after maxWaitMs (default: never).
 */
import { Redis } from 'ioredis';
import type { Logger } from '../common/log.ts';

/** Pause before the attempt after `failures` failed ones: 200 ms, doubling, at most 5 s. */
export function redisRetryDelayMs(failures: number): number {
  return Math.min(5000, 200 * 2 ** Math.min(Math.max(0, failures - 1), 5));
}

/** The URL without its password, for logs. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable redis URL)';
  }
}

/** Connects, PINGs and disconnects once; throws when Redis does not answer. */
export async function pingRedis(url: string, connectTimeoutMs = 2000): Promise<void> {
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: connectTimeoutMs,
  });
  redis.on('error', () => {}); // the rejected connect() says it
  try {
    await redis.connect();
    await redis.ping();
  } finally {
    redis.disconnect();
  }
}

export interface RedisWaitOptions {
  url: string;
  log: Logger;
  /** Give up (throw) after this long without an answer. Undefined: wait for ever. */
  maxWaitMs?: number;
  warnEveryMs?: number;
  ping?: (url: string) => Promise<void>;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

/** Resolves once Redis answers a PING; throws after maxWaitMs without one. */
export async function waitForRedis(o: RedisWaitOptions): Promise<void> {
  const ping = o.ping ?? ((url: string) => pingRedis(url));
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const now = o.now ?? Date.now;
  const warnEveryMs = o.warnEveryMs ?? 10_000;
  const redis = redactRedisUrl(o.url);
  const since = now();
  let failures = 0;
  let warnedAt: number | undefined;
  for (;;) {
    try {
      await ping(o.url);
      if (failures > 0) o.log.info('redis answers; starting', { redis, waitedMs: now() - since });
      return;
    } catch (e) {
      failures += 1;
      const waitedMs = now() - since;
      const error = e instanceof Error ? e.message : String(e);
      if (o.maxWaitMs !== undefined && waitedMs >= o.maxWaitMs)
        throw new Error(`redis at ${redis} did not answer within ${o.maxWaitMs} ms: ${error}`, { cause: e });
      if (warnedAt === undefined || now() - warnedAt >= warnEveryMs) {
        warnedAt = now();
        o.log.warn('redis unreachable; waiting for it before serving', { redis, error, waitedMs, failures });
      }
    }
    await sleep(redisRetryDelayMs(failures));
  }
}
