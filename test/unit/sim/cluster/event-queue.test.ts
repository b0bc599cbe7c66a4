import { describe, expect, it } from 'vitest';
import { EventQueue } from '../../../../sim/cluster/event-queue.ts';

describe('EventQueue (virtual time)', () => {
  it('pops in time order, same-time events in the order they were scheduled, and advances the clock', () => {
    const q = new EventQueue<string>();
    q.schedule(5, 'c');
    q.schedule(1, 'a');
    q.schedule(5, 'd');
    q.schedule(3, 'b');
    q.schedule(5, 'e');
    const seen: [number, string][] = [];
    for (let e = q.pop(); e !== undefined; e = q.pop()) seen.push([q.now, e]);
    expect(seen).toEqual([
      [1, 'a'],
      [3, 'b'],
      [5, 'c'],
      [5, 'd'],
      [5, 'e'],
    ]);
    expect(q.size).toBe(0);
  });

  it('keeps order over many interleaved events (heap invariant)', () => {
    const q = new EventQueue<number>();
    const times = Array.from({ length: 500 }, (_, i) => (i * 7919) % 101);
    times.forEach((t, i) => {
      q.schedule(t, i);
    });
    let last = -1;
    let lastIndexAtTime = -1;
    for (let e = q.pop(); e !== undefined; e = q.pop()) {
      expect(q.now).toBeGreaterThanOrEqual(last);
      if (q.now === last) expect(e).toBeGreaterThan(lastIndexAtTime);
      last = q.now;
      lastIndexAtTime = e;
    }
  });

  it('refuses an event in the past', () => {
    const q = new EventQueue<string>();
    q.schedule(10, 'x');
    q.pop();
    expect(() => q.schedule(9, 'late')).toThrow(/before now/);
    q.schedule(10, 'same time is fine');
    expect(q.peekTime()).toBe(10);
  });
});
