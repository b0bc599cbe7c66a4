import { describe, expect, it } from 'vitest';
import { SheddingLoad } from '../../../../controller/queue/queue-load.ts';
import type { QueueLoad } from '../../../../controller/queue/shed-policy.ts';

function load(standard: number): QueueLoad {
  return {
    waiting: { interactive: 0, standard, batch: 0 },
    dispatchedInWindow: 10,
    windowMs: 1000,
    roundMs: 100,
  };
}

/** A read that answers when told to, counting the reads made. */
function manualRead() {
  const pending: ((l: QueueLoad) => void)[] = [];
  return {
    reads: () => pending.length,
    read: () => new Promise<QueueLoad>((resolve) => pending.push(resolve)),
    answer: (i: number, l: QueueLoad) => pending[i]?.(l),
  };
}

/** A policy admitting while fewer than `bound` standard requests wait, recording the counts it saw. */
function boundPolicy(bound: number) {
  const seen: number[] = [];
  return {
    seen,
    policy: (l: QueueLoad) => {
      seen.push(l.waiting.standard);
      return { t: l.waiting.standard < bound ? 'admit' : 'shed' };
    },
  };
}

describe('SheddingLoad', () => {
  it('shares one read between the submits that find the load stale meanwhile', async () => {
    const r = manualRead();
    const shed = new SheddingLoad(r.read, 250);
    const p = boundPolicy(100);
    const asked = [0, 1, 2].map((now) => shed.decide(now, 'standard', p.policy));
    expect(r.reads()).toBe(1);
    r.answer(0, load(3));
    await Promise.all(asked);
    expect(p.seen).toEqual([3, 4, 5]);
  });

  it('reads again once the load is maxAgeMs old, and counts what was queued here meanwhile', async () => {
    const r = manualRead();
    const shed = new SheddingLoad(r.read, 250);
    const p = boundPolicy(100);
    const first = shed.decide(0, 'standard', p.policy);
    r.answer(0, load(3));
    await first;
    shed.settle('standard', true);
    await shed.decide(100, 'standard', p.policy);
    shed.settle('standard', true);
    await shed.decide(249, 'standard', p.policy);
    expect(p.seen).toEqual([3, 4, 5]);
    expect(r.reads()).toBe(1);
    shed.settle('standard', true);
    const second = shed.decide(250, 'standard', p.policy);
    expect(r.reads()).toBe(2);
    r.answer(1, load(1));
    await second;
    expect(p.seen.at(-1)).toBe(1);
  });

  it('admits a burst that arrives together only up to the bound', async () => {
    const r = manualRead();
    const shed = new SheddingLoad(r.read, 250);
    const p = boundPolicy(32);
    const burst = Array.from({ length: 50 }, () => shed.decide(0, 'standard', p.policy));
    r.answer(0, load(0));
    const decisions = await Promise.all(burst);
    expect(decisions.filter((d) => d.t === 'admit')).toHaveLength(32);
    // Their submits answer: queued, they count from the cached load; one was a retry that attached.
    for (let i = 0; i < 31; i++) shed.settle('standard', true);
    shed.settle('standard', false);
    expect((await shed.decide(1, 'standard', p.policy)).t).toBe('admit');
    expect(p.seen.at(-1)).toBe(31);
  });

  it('with maxAgeMs 0 reads on every submit, still counting the admitted in flight', async () => {
    const r = manualRead();
    const shed = new SheddingLoad(r.read, 0);
    const p = boundPolicy(100);
    const asked = [shed.decide(0, 'standard', p.policy), shed.decide(0, 'standard', p.policy)];
    expect(r.reads()).toBe(2);
    r.answer(0, load(1));
    r.answer(1, load(2));
    await Promise.all(asked);
    expect(p.seen).toEqual([1, 3]);
  });
});
