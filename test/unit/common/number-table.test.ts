import { describe, expect, it } from 'vitest';
import { NumberTable } from '../../../common/number-table.ts';
import { seededRandom, uniformInt } from '../../../sim/cluster/random.ts';

describe('NumberTable', () => {
  it('answers as a Map does through random sets, replacements and deletes (long probe runs, wrap-around, growth)', () => {
    const random = seededRandom(11);
    for (const [expected, keys] of [
      [1, 3],
      [3, 9],
      [50, 103],
      [1000, 2003],
      [4, 600],
    ] as const) {
      const table = new NumberTable(expected);
      const ref = new Map<number, number>();
      // Few distinct keys, so most operations hit present keys; 53-bit and small ones.
      const pool = Array.from({ length: keys }, (_, i) => (i % 3 === 0 ? i : Math.floor(random() * 2 ** 53)));
      for (let op = 0; op < 10 * keys + 200; op++) {
        const key = pool[uniformInt(random, 0, pool.length - 1)] as number;
        const r = random();
        if (r < 0.45) {
          const value = uniformInt(random, 0, 1_000_000);
          expect(table.set(key, value)).toBe(!ref.has(key));
          ref.set(key, value);
        } else if (r < 0.8) expect(table.delete(key)).toBe(ref.delete(key));
        expect(table.get(key)).toBe(ref.get(key));
        expect(table.size).toBe(ref.size);
      }
      for (const key of pool) expect(table.has(key)).toBe(ref.has(key));
      const seen = new Map<number, number>();
      table.forEach((value, key) => {
        seen.set(key, value);
      });
      expect(seen).toEqual(ref);
    }
  });

  it('takes -0 and 0 for one key, as === does', () => {
    const table = new NumberTable(2);
    table.set(-0, 5);
    expect([table.get(0), table.has(-0), table.set(0, 6), table.get(-0), table.size]).toEqual([
      5,
      true,
      false,
      6,
      1,
    ]);
    expect(table.delete(0)).toBe(true);
    expect(table.size).toBe(0);
  });

  it('addIfAbsent adds a missing key and leaves a present one as it was', () => {
    const table = new NumberTable(4);
    expect(table.addIfAbsent(2 ** 52 + 1, 3)).toBe(true);
    expect(table.addIfAbsent(2 ** 52 + 1, 9)).toBe(false);
    expect(table.get(2 ** 52 + 1)).toBe(3);
    expect(table.size).toBe(1);
  });

  it("valueOrAdd answers a present key's value, or adds the key and answers undefined", () => {
    const table = new NumberTable(2);
    expect(table.valueOrAdd(9, 0)).toBeUndefined();
    expect(table.valueOrAdd(9, 4)).toBe(0);
    for (let k = 0; k < 20; k++) expect(table.valueOrAdd(100 + k, k)).toBeUndefined(); // through growth
    expect([table.get(9), table.valueOrAdd(119, 1), table.size]).toEqual([0, 19, 21]);
  });

  it('refuses a NaN key, a negative or fractional value and an empty expectation', () => {
    const table = new NumberTable(2);
    expect(() => table.set(Number.NaN, 2)).toThrow(/NaN/);
    expect(() => table.set(4, -1)).toThrow(/integer >= 0/);
    expect(() => table.set(4, 0.5)).toThrow(/integer >= 0/);
    expect(() => new NumberTable(0)).toThrow(/at least one entry/);
    expect(() => table.set(4, 2 ** 53 - 1)).toThrow(/below 2\^53 - 1/);
  });

  it('keeps 0 and the largest value it takes (a free slot is stored as 0, a value as itself + 1)', () => {
    const table = new NumberTable(2);
    table.set(0, 0);
    table.set(7, 2 ** 53 - 2);
    expect([table.get(0), table.get(7), table.has(0), table.get(1)]).toEqual([
      0,
      2 ** 53 - 2,
      true,
      undefined,
    ]);
    for (let k = 100; k < 140; k++) table.set(k, k - 100); // grows past its first size
    expect([table.get(0), table.get(7), table.get(139), table.size]).toEqual([0, 2 ** 53 - 2, 39, 42]);
  });
});
