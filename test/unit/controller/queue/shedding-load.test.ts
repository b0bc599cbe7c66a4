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

describe('SheddingLoad', () => {
  it('shares one read between the submits that find the load stale meanwhile', async () => {
    const r = manualRead();
    const shed = new SheddingLoad(r.read, 250);
    const asked = [shed.get(0), shed.get(1), shed.get(2)];
    expect(r.reads()).toBe(1);
    r.answer(0, load(3));
    expect(await Promise.all(asked)).toEqual([load(3), load(3), load(3)]);
  });

  it('reads again once the load is maxAgeMs old, and counts what was queued here meanwhile', async () => {
    const r = manualRead();
    const shed = new SheddingLoad(r.read, 250);
    const first = shed.get(0);
    r.answer(0, load(3));
    await first;
    shed.queued('standard');
    shed.queued('standard');
    expect((await shed.get(249)).waiting.standard).toBe(5);
    expect(r.reads()).toBe(1);
    const second = shed.get(250);
    expect(r.reads()).toBe(2);
    r.answer(1, load(1));
    expect((await second).waiting.standard).toBe(1);
  });

  it('with maxAgeMs 0 reads on every submit', async () => {
    const r = manualRead();
    const shed = new SheddingLoad(r.read, 0);
    const asked = [shed.get(0), shed.get(0)];
    expect(r.reads()).toBe(2);
    r.answer(0, load(1));
    r.answer(1, load(2));
    expect(await Promise.all(asked)).toEqual([load(1), load(2)]);
  });
});
