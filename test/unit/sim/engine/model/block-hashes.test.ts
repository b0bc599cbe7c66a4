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

describe('BlockHashes with chained hashes', () => {
  // A child's hash is parent x 4 + 0..3 and a first block's is 1..3: each hash names one chain, as
  // common/block-hash.ts's do, and the few choices make blocks claim the same hashes and branch.
  const childHash = (parent: number, x: number) => parent * 4 + x;

  it.each([
    ['only childless blocks are forgotten and no block chains on one that lost its claim', false],
    ['any block is forgotten (orphaning its children) or chained on', true],
  ])('answers as a map would when %s', (_, orphans) => {
    const blocks = 48;
    const cache = new BlockHashes(blocks);
    const holder = new Map<number, number>();
    /** The hash each block last claimed, whether it won or not (a request's block chains on it either way). */
    const claimed = new Array<number | undefined>(blocks);
    const children = new Array<number>(blocks).fill(0);
    const parentOf = new Array<number | undefined>(blocks);
    let seed = 11;
    const next = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const forget = (b: number) => {
      const h = cache.hashOf(b);
      cache.forget(b);
      if (!Number.isNaN(h)) holder.delete(h);
      const p = parentOf[b];
      if (p !== undefined && !Number.isNaN(h)) children[p] = (children[p] as number) - 1;
      claimed[b] = undefined;
      parentOf[b] = undefined;
    };
    for (let step = 0; step < 20_000; step++) {
      const b = next(blocks);
      if (claimed[b] !== undefined) {
        if (orphans || children[b] === 0) forget(b);
        continue;
      }
      const p = next(blocks);
      const parentHash = claimed[p];
      // Without orphans, a block also chains only on a block that won its claim: after one that lost, the
      // holder of its parent hash is unknown and the table takes every hash, as after an orphan.
      const chained =
        p !== b &&
        parentHash !== undefined &&
        parentHash < 4 ** 8 &&
        (orphans || cache.hashOf(p) === parentHash);
      const hash = chained ? childHash(parentHash, next(4)) : 1 + next(3);
      const won = cache.claim(b, hash, chained ? p : undefined);
      expect(won).toBe(!holder.has(hash));
      claimed[b] = hash;
      if (won) {
        holder.set(hash, b);
        if (chained) {
          parentOf[b] = p;
          children[p] = (children[p] as number) + 1;
        }
      }
      if (step % 97 === 0) {
        for (let h = 1; h <= 3; h++) expect(cache.blockOf(h)).toBe(holder.get(h));
        for (let q = 0; q < blocks; q++) {
          const held = cache.hashOf(q);
          if (Number.isNaN(held)) continue;
          for (let x = 0; x < 4; x++)
            expect(cache.childOf(q, childHash(held, x))).toBe(holder.get(childHash(held, x)));
        }
      }
    }
    for (let b = 0; b < blocks; b++)
      expect(cache.hashOf(b)).toBe(holder.get(claimed[b] as number) === b ? claimed[b] : Number.NaN);
  });
});
