import { describe, expect, it } from 'vitest';
import {
  decideShed,
  drainOf,
  expectedWaitMs,
  type QueueLoad,
} from '../../../../controller/queue/shed-policy.ts';

const load = (
  waiting: Partial<QueueLoad['waiting']>,
  dispatchedInWindow: number,
  more?: Partial<QueueLoad>,
) =>
  ({
    waiting: { interactive: 0, standard: 0, batch: 0, ...waiting },
    dispatchedInWindow,
    windowMs: 10_000,
    ...more,
  }) satisfies QueueLoad;

describe('shed policy', () => {
  it('estimates the wait from the requests ahead (and itself) and the measured drain rate', () => {
    // 100 per 10 s = 10/s; 49 standard + 1 ahead -> 5 s; no round measured
    expect(expectedWaitMs(load({ interactive: 19, standard: 30, batch: 500 }, 100), 'standard')).toBe(5000);
    expect(expectedWaitMs(load({ interactive: 19, standard: 30, batch: 500 }, 100), 'interactive')).toBe(
      2000,
    );
    expect(expectedWaitMs(load({}, 0), 'batch')).toBe(0);
    expect(expectedWaitMs(load({ batch: 3 }, 0), 'batch')).toBeUndefined();
  });

  it('adds one round of the drain: a queue that drains in bursts serves a request up to a round late', () => {
    // 8 every 400 ms = 20/s: 19 ahead -> 1 s, + 400 ms; refused 1400 - 0.9 x 1200 ms past what admits
    const bursty = load({ standard: 19 }, 200, { roundMs: 400 });
    expect(expectedWaitMs(bursty, 'standard')).toBe(1400);
    expect(decideShed(bursty, 'standard', { maxWaitMs: 1200, maxDepth: 1000 })).toEqual({
      t: 'shed',
      expectedWaitMs: 1400,
      retryAfterMs: 320,
      reason: 'wait',
    });
  });

  it('before any drain is measured, expects the ready sequences to turn over once per service time', () => {
    const cold = load({ standard: 15 }, 0, { windowMs: 0, slots: 8 });
    expect(drainOf(cold, 400)).toEqual({ perMs: 8 / 400, roundMs: 400 });
    // 16 / (8 per 400 ms) + 400 ms
    expect(expectedWaitMs(cold, 'standard', 400)).toBe(1200);
    expect(decideShed(cold, 'standard', { maxWaitMs: 1000, maxDepth: 1000, serviceMs: 400 })).toMatchObject({
      t: 'shed',
      reason: 'wait',
    });
    // a measured rate wins over the capacity's
    expect(drainOf({ ...cold, dispatchedInWindow: 10, windowMs: 1000, roundMs: 100 }, 400)).toEqual({
      perMs: 0.01,
      roundMs: 100,
    });
    // ... once it covers a few rounds; before that it may have counted part of a batch in no time: the slower
    expect(drainOf({ ...cold, dispatchedInWindow: 13, windowMs: 401, roundMs: 398 }, 400)).toEqual({
      perMs: 8 / 400,
      roundMs: 400,
    });
    expect(drainOf({ ...cold, dispatchedInWindow: 5, windowMs: 401, roundMs: 398 }, 400)).toEqual({
      perMs: 5 / 401,
      roundMs: 400,
    });
    // no ready group, or no service time configured: unknown
    expect(drainOf({ ...cold, slots: 0 }, 400)).toBeUndefined();
    expect(drainOf(cold, undefined)).toBeUndefined();
  });

  it('lets a second request wait until a drain is measured, however long the estimate: a backlog to measure', () => {
    // 4 sequences at 50.8 s each: one ahead is expected to wait 2 / (4 per 50.8 s) + 50.8 s = 76.2 s > 60 s
    const options = { maxWaitMs: 60_000, maxDepth: 1000, serviceMs: 50_800 };
    const cold = load({ standard: 1 }, 0, { windowMs: 0, slots: 4 });
    expect(decideShed(cold, 'standard', options)).toEqual({ t: 'admit', expectedWaitMs: 76_200 });
    // a third is refused: two waiting are enough for the queue to measure its drain
    expect(
      decideShed({ ...cold, waiting: { ...cold.waiting, standard: 2 } }, 'standard', options),
    ).toMatchObject({
      t: 'shed',
      reason: 'wait',
    });
    // still so while the measurement is young (1 round of 300 ms measured), no longer once it has matured
    const young = { ...cold, dispatchedInWindow: 1, windowMs: 300, roundMs: 300 };
    expect(decideShed(young, 'standard', options)).toMatchObject({ t: 'admit' });
    const mature = { ...young, dispatchedInWindow: 1, windowMs: 300, roundMs: 50 };
    expect(decideShed(mature, 'standard', { ...options, maxWaitMs: 500 })).toMatchObject({ t: 'shed' });
  });

  it.each([
    // [case, waiting, dispatched, expected]
    ['under the bound', { standard: 29 }, 100, { t: 'admit', expectedWaitMs: 3000 }],
    [
      'under the bound but in its headroom (the last tenth)',
      { standard: 46 },
      100,
      { t: 'shed', expectedWaitMs: 4700, retryAfterMs: 200, reason: 'wait' },
    ],
    [
      'over the wait bound',
      { standard: 79 },
      100,
      { t: 'shed', expectedWaitMs: 8000, retryAfterMs: 3500, reason: 'wait' },
    ],
    [
      'at the depth bound',
      { standard: 1000 },
      1_001_000,
      { t: 'shed', expectedWaitMs: 10, retryAfterMs: 100, reason: 'depth' },
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
