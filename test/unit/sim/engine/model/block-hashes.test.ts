import { describe, expect, it } from 'vitest';
import { BlockHashes } from '../../../../../sim/engine/model/block-hashes.ts';

describe('BlockHashes', () => {
  it('a hash has one holder, the first to claim it; a forgotten block holds nothing and its hash is free', () => {
    const cache = new BlockHashes(4);
    expect(cache.claim(0, 11)).toBe(true);
    expect(cache.claim(1, 11)).toBe(false);
    expect(cache.hashOf(1)).toBeNaN();
    expect(cache.blockOf(11)).toBe(0);
    cache.forget(0);
    expect(cache.hashOf(0)).toBeNaN();
    expect(cache.blockOf(11)).toBeUndefined();
    expect(cache.claim(1, 11)).toBe(true);
    expect(cache.blockOf(11)).toBe(1);
    cache.forget(2); // holds nothing: no change
    expect(cache.blockOf(11)).toBe(1);
  });

  it('answers as a map would through thousands of claims and forgets in a small, crowded table', () => {
    // 64 blocks in 128 slots, hashes from a set of 200: probe runs wrap and shift back on every forget.
    const blocks = 64;
    const cache = new BlockHashes(blocks);
    const holder = new Map<number, number>();
    const held = new Array<number | undefined>(blocks);
    let seed = 7;
    const next = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    for (let step = 0; step < 20_000; step++) {
      const b = next(blocks);
      const h = held[b];
      if (h !== undefined) {
        cache.forget(b);
        holder.delete(h);
        held[b] = undefined;
      } else {
        const hash = 2 ** 40 + next(200) * 2 ** 20;
        const claimed = cache.claim(b, hash);
        expect(claimed).toBe(!holder.has(hash));
        if (claimed) {
          holder.set(hash, b);
          held[b] = hash;
        }
      }
      if (step % 97 === 0)
        for (let k = 0; k < 200; k++) {
          const hash = 2 ** 40 + k * 2 ** 20;
          expect(cache.blockOf(hash)).toBe(holder.get(hash));
        }
    }
    for (let b = 0; b < blocks; b++) expect(cache.hashOf(b)).toBe(held[b] ?? Number.NaN);
  });
});
