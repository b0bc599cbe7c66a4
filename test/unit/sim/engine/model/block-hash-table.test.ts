import { describe, expect, it } from 'vitest';
import { seededRandom, uniformInt } from '../../../../../sim/cluster/random.ts';
import { BlockHashTable } from '../../../../../sim/engine/model/block-hash-table.ts';

describe('BlockHashTable', () => {
  it('answers as a Map does through random sets, replacements and deletes (long probe runs, wrap-around)', () => {
    const random = seededRandom(11);
    for (const max of [1, 3, 50, 1000]) {
      const table = new BlockHashTable(max);
      const ref = new Map<number, number>();
      // Few distinct keys, so most operations hit present keys; 53-bit and small ones.
      const pool = Array.from({ length: 2 * max + 3 }, (_, i) =>
        i % 3 === 0 ? i : Math.floor(random() * 2 ** 53),
      );
      for (let op = 0; op < 20 * max + 200; op++) {
        const key = pool[uniformInt(random, 0, pool.length - 1)] as number;
        const r = random();
        if (r < 0.45 && (ref.size < max || ref.has(key))) {
          const block = uniformInt(random, 0, 1_000_000);
          table.set(key, block);
          ref.set(key, block);
        } else if (r < 0.8) expect(table.delete(key)).toBe(ref.delete(key));
        expect(table.get(key)).toBe(ref.get(key));
        expect(table.size).toBe(ref.size);
      }
      for (const key of pool) expect(table.has(key)).toBe(ref.has(key));
    }
  });

  it('addIfAbsent adds a missing key and leaves a present one as it was', () => {
    const table = new BlockHashTable(4);
    expect(table.addIfAbsent(2 ** 52 + 1, 3)).toBe(true);
    expect(table.addIfAbsent(2 ** 52 + 1, 9)).toBe(false);
    expect(table.get(2 ** 52 + 1)).toBe(3);
    expect(table.size).toBe(1);
  });

  it('refuses more entries than it was sized for, a NaN key and a negative block', () => {
    const table = new BlockHashTable(2);
    table.set(1, 0);
    table.set(2, 1);
    table.set(2, 5);
    expect(() => table.set(3, 2)).toThrow(/full \(2 entries\)/);
    expect(() => table.set(Number.NaN, 2)).toThrow(/NaN/);
    expect(() => table.set(4, -1)).toThrow(/index >= 0/);
    expect(() => new BlockHashTable(0)).toThrow(/at least one entry/);
  });
});
