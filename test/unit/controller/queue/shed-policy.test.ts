import { describe, expect, it } from 'vitest';
import { decideShed, expectedWaitMs, type QueueLoad } from '../../../../controller/queue/shed-policy.ts';

const load = (waiting: Partial<QueueLoad['waiting']>, dispatchedInWindow: number): QueueLoad => ({
  waiting: { interactive: 0, standard: 0, batch: 0, ...waiting },
  dispatchedInWindow,
  windowMs: 10_000,
});

describe('shed policy', () => {
  it('estimates the wait from the requests ahead and the recent dispatch rate', () => {
    // 100 per 10 s = 10/s; 50 ahead -> 5 s
    expect(expectedWaitMs(load({ interactive: 20, standard: 30, batch: 500 }, 100), 'standard')).toBe(5000);
    expect(expectedWaitMs(load({ interactive: 20, standard: 30, batch: 500 }, 100), 'interactive')).toBe(
      2000,
    );
    expect(expectedWaitMs(load({}, 0), 'batch')).toBe(0);
    expect(expectedWaitMs(load({ batch: 3 }, 0), 'batch')).toBeUndefined();
  });

  it.each([
    // [case, waiting, dispatched, expected]
    ['under the bound', { standard: 30 }, 100, { t: 'admit', expectedWaitMs: 3000 }],
    [
      'over the wait bound',
      { standard: 80 },
      100,
      { t: 'shed', expectedWaitMs: 8000, retryAfterMs: 3000, reason: 'wait' },
    ],
    [
      'at the depth bound',
      { standard: 1000 },
      100_000,
      { t: 'shed', expectedWaitMs: 100, retryAfterMs: 100, reason: 'depth' },
    ],
    [
      'nothing drains and the queue is full',
      { standard: 1000 },
      0,
      { t: 'shed', expectedWaitMs: undefined, retryAfterMs: 5000, reason: 'depth' },
    ],
    ['nothing drains yet, room left', { standard: 10 }, 0, { t: 'admit', expectedWaitMs: undefined }],
  ] as const)('%s', (_name, waiting, dispatched, expected) => {
    expect(decideShed(load(waiting, dispatched), 'standard', { maxWaitMs: 5000, maxDepth: 1000 })).toEqual(
      expected,
    );
  });

  it('does not count lower classes against a higher one', () => {
    const d = decideShed(load({ batch: 5000 }, 10), 'interactive', { maxWaitMs: 1000, maxDepth: 1000 });
    expect(d).toEqual({ t: 'admit', expectedWaitMs: 0 });
  });
});
