import { describe, expect, it } from 'vitest';
import { serviceTimeMs, TPOT_BOUND_MS, TTFT_BOUND_MS } from '../../../../controller/dispatch/service-time.ts';
import { drainOf, expectedWaitMs, type QueueLoad } from '../../../../controller/queue/shed-policy.ts';

describe('serviceTimeMs', () => {
  it('is the first-token bound plus the default output at the per-token bound, per deployment', () => {
    expect(serviceTimeMs({ defaultMaxTokens: 256 }, undefined)).toBe(50_800);
    expect(serviceTimeMs({ defaultMaxTokens: 32 }, undefined)).toBe(TTFT_BOUND_MS + 32 * TPOT_BOUND_MS);
    // a configured queue.serviceMs replaces it
    expect(serviceTimeMs({ defaultMaxTokens: 256 }, 400)).toBe(400);
  });

  it('stands in for the drain until one is measured, then the measured drain replaces it', () => {
    const serviceMs = serviceTimeMs({ defaultMaxTokens: 256 }, undefined);
    const cold: QueueLoad = {
      waiting: { interactive: 0, standard: 31, batch: 0 },
      dispatchedInWindow: 0,
      windowMs: 0,
      slots: 16,
    };
    // 16 sequences per 50.8 s: 32 / (16 / 50.8 s) + one round of 50.8 s
    expect(expectedWaitMs(cold, 'standard', serviceMs)).toBeCloseTo(3 * 50_800, 6);
    // 40 taken in 2 s of backlog, every 50 ms: 40 rounds, a mature measurement
    const measured = { ...cold, dispatchedInWindow: 40, windowMs: 2000, roundMs: 50 };
    expect(drainOf(measured, serviceMs)).toEqual({ perMs: 40 / 2000, roundMs: 50 });
    expect(expectedWaitMs(measured, 'standard', serviceMs)).toBe(32 / (40 / 2000) + 50);
  });
});
