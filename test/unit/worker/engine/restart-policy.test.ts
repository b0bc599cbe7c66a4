import { describe, expect, it } from 'vitest';
import { backoffDelay, decideRestart, type RestartPolicy } from '../../../../worker/engine/restart-policy.ts';

const policy: RestartPolicy = {
  initialDelayMs: 1000,
  maxDelayMs: 30_000,
  jitter: 0.2,
  resetAfterMs: 60_000,
  maxRestarts: 5,
};
const mid = () => 0.5; // no jitter

describe('restart policy', () => {
  it('doubles from the initial delay up to the cap', () => {
    expect([1, 2, 3, 4, 5, 6, 7].map((n) => backoffDelay(policy, n, mid))).toEqual([
      1000, 2000, 4000, 8000, 16000, 30000, 30000,
    ]);
  });

  it('applies jitter within +-jitter of the base', () => {
    expect(backoffDelay(policy, 2, () => 0)).toBe(1600);
    expect(backoffDelay(policy, 2, () => 0.999999)).toBe(2400);
  });

  it('counts consecutive restarts and gives up after the budget', () => {
    expect(decideRestart(policy, 0, 0, mid)).toEqual({ t: 'restart', delayMs: 1000, consecutive: 1 });
    expect(decideRestart(policy, 3, 5000, mid)).toEqual({ t: 'restart', delayMs: 8000, consecutive: 4 });
    const d = decideRestart(policy, 5, 0, mid);
    expect(d.t).toBe('give-up');
    expect(d.t === 'give-up' && d.reason).toBe('restart budget spent: 5 consecutive restarts (max 5)');
  });

  it('resets the budget after the engine stayed ready long enough', () => {
    expect(decideRestart(policy, 5, 60_000, mid)).toEqual({ t: 'restart', delayMs: 1000, consecutive: 1 });
  });

  it('gives up at once with a zero budget', () => {
    expect(decideRestart({ ...policy, maxRestarts: 0 }, 0, 0, mid).t).toBe('give-up');
  });
});
