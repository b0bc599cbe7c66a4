import { describe, expect, it } from 'vitest';
import { PromptMemory } from '../../../../sim/cluster/prompt-memory.ts';
import { seededRandom, uniformInt } from '../../../../sim/cluster/random.ts';

describe('PromptMemory', () => {
  it('never hands out memory in use, and hands released regions to later arrays of their size class', () => {
    const random = seededRandom(11);
    const memory = new PromptMemory();
    const live = new Map<Float64Array, number>();
    const released = new Map<ArrayBufferLike, Set<number>>();
    let reused = 0;
    let overlaps = 0;
    for (let i = 1; i <= 3000; i++) {
      if (live.size > 0 && random() < 0.45) {
        const views = [...live.keys()];
        const v = views[uniformInt(random, 0, views.length - 1)] as Float64Array;
        live.delete(v);
        memory.release(v);
        if (v.length > 0) released.set(v.buffer, (released.get(v.buffer) ?? new Set()).add(v.byteOffset));
        continue;
      }
      // Lengths from nothing to past a slab's eighth (those get a buffer of their own).
      const length = random() < 0.9 ? uniformInt(random, 0, 9000) : uniformInt(random, 60_000, 70_000);
      const v = memory.float64s(length);
      expect(v.length).toBe(length);
      if (released.get(v.buffer)?.delete(v.byteOffset)) reused++;
      v.fill(i);
      live.set(v, i);
      // Every live array still holds what its owner wrote: none overlaps another.
      for (const [w, value] of live)
        if (w.length > 0 && (w[0] !== value || w[w.length - 1] !== value)) overlaps++;
    }
    expect(overlaps).toBe(0);
    for (const [w, value] of live) expect(w.every((x) => x === value)).toBe(true);
    expect(reused).toBeGreaterThan(100);
  });
});
