import { describe, expect, it } from 'vitest';
import { MemoryQueue } from '../../../../controller/queue/memory-queue.ts';
import type { PriorityClass } from '../../../../controller/queue/priority-class.ts';

function counts(items: { tenant: string }[]): Record<string, number> {
  const c: Record<string, number> = {};
  for (const i of items) c[i.tenant] = (c[i.tenant] ?? 0) + 1;
  return c;
}

describe('MemoryQueue (the policy over time)', () => {
  it('splits a contended class by weight, whatever each tenant submits', () => {
    const q = new MemoryQueue();
    // heavy submits 10x as many as light; light has weight 2, heavy 1
    for (let i = 0; i < 1000; i++) q.submit({ id: `h${i}`, tenant: 'heavy', weight: 1, cls: 'standard' });
    for (let i = 0; i < 100; i++) q.submit({ id: `l${i}`, tenant: 'light', weight: 2, cls: 'standard' });
    const taken = q.take(120, 0);
    expect(counts(taken)).toEqual({ light: 80, heavy: 40 });
  });

  it('serves a tenant that arrives late from the virtual time, not behind the backlog', () => {
    const q = new MemoryQueue();
    for (let i = 0; i < 100; i++) q.submit({ id: `a${i}`, tenant: 'a', weight: 1, cls: 'batch' });
    expect(q.take(50, 0).every((i) => i.tenant === 'a')).toBe(true);
    q.submit({ id: 'b0', tenant: 'b', weight: 1, cls: 'batch' });
    expect(q.take(2, 0).map((i) => i.id)).toContain('b0');
  });

  it('hands out by class priority and still serves lower classes their reserve', () => {
    const q = new MemoryQueue();
    const classes: PriorityClass[] = ['batch', 'standard', 'interactive'];
    for (const cls of classes)
      for (let i = 0; i < 100; i++) q.submit({ id: `${cls}${i}`, tenant: 't', weight: 1, cls });
    const first = q.take(9, 0);
    expect(first.every((i) => i.cls === 'interactive')).toBe(true);
    const next20 = q.take(20, 0);
    expect(next20.filter((i) => i.cls === 'standard').length).toBe(2);
    expect(next20.filter((i) => i.cls === 'batch').length).toBe(1);
  });

  it('never hands out an item past its deadline, and cancel removes an item', () => {
    const q = new MemoryQueue();
    q.submit({ id: 'late', tenant: 't', weight: 1, cls: 'standard', deadline: 100 });
    q.submit({ id: 'ok', tenant: 't', weight: 1, cls: 'standard', deadline: 1000 });
    q.submit({ id: 'gone', tenant: 't', weight: 1, cls: 'standard' });
    expect(q.cancel('gone')).toBe(true);
    expect(q.take(10, 100).map((i) => i.id)).toEqual(['ok']);
    expect(q.depth).toBe(0);
  });

  it('refuses an id it already holds', () => {
    const q = new MemoryQueue();
    expect(q.submit({ id: 'x', tenant: 't', weight: 1, cls: 'standard' })).toBe(true);
    expect(q.submit({ id: 'x', tenant: 't', weight: 1, cls: 'standard' })).toBe(false);
  });
});
