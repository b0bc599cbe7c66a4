import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../common/log.ts';
import { redactRedisUrl, redisRetryDelayMs, waitForRedis } from '../../../controller/redis-wait.ts';

/** A Redis that answers from its `answersAt`-th ping on, on a clock that only the sleeps move. */
function harness(answersAt: number) {
  let t = 0;
  let pings = 0;
  const lines: { level: string; msg: string }[] = [];
  const log = createLogger('test', { level: 'info', sink: (l) => lines.push(JSON.parse(l)) });
  const options = {
    url: 'redis://:secret@127.0.0.1:6379',
    log,
    now: () => t,
    sleep: async (ms: number) => {
      t += ms;
    },
    ping: async () => {
      pings += 1;
      if (pings < answersAt) throw new Error('connect ECONNREFUSED');
    },
  };
  return { options, lines, pings: () => pings, now: () => t };
}

describe('waitForRedis', () => {
  it('returns at once, silently, when Redis answers', async () => {
    const h = harness(1);
    await waitForRedis(h.options);
    expect(h.lines).toEqual([]);
  });

  it('retries with backoff until Redis answers, warning every 10 s, never giving up by default', async () => {
    const h = harness(30);
    await waitForRedis(h.options);
    expect(h.pings()).toBe(30);
    const warns = h.lines.filter((l) => l.level === 'warn');
    // 29 failures over ~2 min of 5 s pauses: one warning per 10 s, not one per attempt
    expect(warns.length).toBeGreaterThan(1);
    expect(warns.length).toBeLessThanOrEqual(Math.ceil(h.now() / 10_000) + 1);
    expect(h.lines.at(-1)?.msg).toBe('redis answers; starting');
    expect(JSON.stringify(h.lines)).not.toContain('secret');
  });

  it('gives up after maxWaitMs with the last error', async () => {
    const h = harness(Number.POSITIVE_INFINITY);
    await expect(waitForRedis({ ...h.options, maxWaitMs: 20_000 })).rejects.toThrow(
      /did not answer within 20000 ms: connect ECONNREFUSED/,
    );
    expect(h.now()).toBeGreaterThanOrEqual(20_000);
  });

  it('backs off from 200 ms, doubling, to at most 5 s; logs no password', () => {
    expect([1, 2, 3, 4, 5, 6, 20].map(redisRetryDelayMs)).toEqual([200, 400, 800, 1600, 3200, 5000, 5000]);
    expect(redactRedisUrl('redis://:pw@h:1')).toBe('redis://:***@h:1');
  });
});
