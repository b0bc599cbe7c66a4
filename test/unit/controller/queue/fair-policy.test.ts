import { describe, expect, it } from 'vitest';
import {
  CREDIT_UNIT,
  DEFAULT_RESERVES,
  finishTag,
  pickClass,
  tagIncrement,
  validateReserves,
  zeroCredits,
} from '../../../../controller/queue/fair-policy.ts';

const all = { interactive: true, standard: true, batch: true };

describe('tags', () => {
  it('increment is cost over weight in integer milli-units, at least 1', () => {
    expect(tagIncrement(1, 1)).toBe(1000);
    expect(tagIncrement(1, 4)).toBe(250);
    expect(tagIncrement(1, 3)).toBe(334);
    expect(tagIncrement(2000, 1)).toBe(2_000_000);
    expect(tagIncrement(1, 1e9)).toBe(1);
  });

  it('a new tenant starts at the class virtual time, a backlogged one after its own last tag', () => {
    expect(finishTag(5000, 0, 1000)).toBe(6000);
    expect(finishTag(5000, 9000, 1000)).toBe(10000);
  });
});

describe('pickClass', () => {
  it('returns undefined when nothing waits', () => {
    expect(pickClass(zeroCredits(), { interactive: false, standard: false, batch: false })).toBeUndefined();
  });

  it('serves the highest non-empty class while no reserve is due', () => {
    const r = pickClass(zeroCredits(), all);
    expect(r?.cls).toBe('interactive');
    expect(r?.credits).toEqual({ interactive: 0, standard: 100_000, batch: 50_000 });
    expect(pickClass(zeroCredits(), { interactive: false, standard: true, batch: true })?.cls).toBe(
      'standard',
    );
  });

  it('gives standard 1 in 10 and batch 1 in 20 hand-outs under full interactive load', () => {
    let credits = zeroCredits();
    const counts = { interactive: 0, standard: 0, batch: 0 };
    for (let i = 0; i < 2000; i++) {
      const r = pickClass(credits, all);
      if (!r) throw new Error('nothing picked');
      credits = r.credits;
      counts[r.cls] += 1;
    }
    expect(counts.standard).toBe(200);
    // batch is due every 20th hand-out, but when it falls due together with standard it waits one turn
    expect(counts.batch).toBeGreaterThanOrEqual(95);
    expect(counts.batch).toBeLessThanOrEqual(100);
    expect(counts.interactive).toBe(2000 - counts.standard - counts.batch);
  });

  it('earns no credit while a class is empty, so it cannot burst when it returns', () => {
    let credits = zeroCredits();
    for (let i = 0; i < 100; i++) {
      const r = pickClass(credits, { interactive: true, standard: false, batch: false });
      credits = r?.credits ?? credits;
    }
    expect(credits).toEqual(zeroCredits());
  });

  it('caps credit at one hand-out', () => {
    const r = pickClass({ interactive: 0, standard: CREDIT_UNIT, batch: CREDIT_UNIT }, all, {
      interactive: 0,
      standard: 0.5,
      batch: 0.5,
    });
    expect(r?.cls).toBe('standard');
    expect(r?.credits.batch).toBe(CREDIT_UNIT);
  });
});

describe('validateReserves', () => {
  it('accepts the defaults and rejects out-of-range or oversubscribed shares', () => {
    expect(validateReserves(DEFAULT_RESERVES)).toEqual([]);
    expect(validateReserves({ interactive: 0, standard: -0.1, batch: 0 })).toEqual([
      'reserves.standard: must be in [0, 1]',
    ]);
    expect(validateReserves({ interactive: 0.5, standard: 0.4, batch: 0.2 })).toEqual([
      'reserves: must sum to at most 1',
    ]);
  });
});
