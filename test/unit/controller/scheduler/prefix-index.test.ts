import { describe, expect, it } from 'vitest';
import {
  chainBlockHash,
  promptBlockHashes,
  ROOT_BLOCK_HASH,
} from '../../../../controller/scheduler/block-hashes.ts';
import { PrefixIndex } from '../../../../controller/scheduler/prefix-index.ts';
import { seededRandom, uniformInt } from '../../../../sim/cluster/random.ts';

/** A chain of `n` block hashes under `parent`, content named by `salt`. */
function chain(n: number, salt: number, parent = ROOT_BLOCK_HASH): number[] {
  const out: number[] = [];
  let h = parent;
  for (let i = 0; i < n; i++) {
    h = chainBlockHash(h, [salt, i]);
    out.push(h);
  }
  return out;
}

describe('promptBlockHashes', () => {
  it('hashes full blocks only, chained: equal heads give equal hashes, a changed token changes every later one', () => {
    const a = Array.from({ length: 50 }, (_, i) => i);
    const b = [...a];
    b[20] = 999;
    const ha = promptBlockHashes(a);
    const hb = promptBlockHashes(b);
    expect(ha).toHaveLength(3);
    expect(hb[0]).toBe(ha[0]);
    expect(hb[1]).not.toBe(ha[1]);
    expect(hb[2]).not.toBe(ha[2]);
    expect(promptBlockHashes(a.slice(0, 15))).toEqual([]);
    for (const h of ha) expect(Number.isSafeInteger(h)).toBe(true);
  });

  it('refuses a block size that is not a positive integer', () => {
    expect(() => promptBlockHashes([1, 2], 0)).toThrow(/blockSize/);
  });
});

describe('PrefixIndex', () => {
  it('answers the leading blocks each group holds', () => {
    const index = new PrefixIndex({ defaultCapacityBlocks: 100, stride: 1, slack: 0 });
    const head = chain(10, 1);
    index.record('g1', head, 0);
    index.record('g2', head.slice(0, 4), 0);
    const request = [...head, ...chain(3, 2, head[9])];
    expect(Object.fromEntries(index.matches(request))).toEqual({ g1: 10, g2: 4 });
    expect(index.matches(chain(5, 3)).size).toBe(0);
    expect(index.matches([]).size).toBe(0);
  });

  it('evicts least recently routed blocks first, the tail of a prompt before its head', () => {
    const index = new PrefixIndex({ defaultCapacityBlocks: 12, stride: 1, slack: 0 });
    const a = chain(8, 1);
    const b = chain(8, 2);
    index.record('g', a, 0);
    index.record('g', b, 0);
    // 16 blocks into 12: a's 4 oldest go, its tail first, so a still matches on its first 4 blocks.
    expect(index.heldBlocks('g')).toBe(12);
    expect(index.matches(a).get('g')).toBe(4);
    expect(index.matches(b).get('g')).toBe(8);
    // Routing a again makes it the most recent: now b loses its tail.
    index.record('g', a, 4);
    expect(index.matches(a).get('g')).toBe(8);
    expect(index.matches(b).get('g')).toBe(4);
  });

  it('shrinks a group whose reported hit rate is below the predicted one, and grows it back when they agree', () => {
    const index = new PrefixIndex({ defaultCapacityBlocks: 1000, minTokens: 100, stride: 1 });
    index.setCapacity('g', 1000);
    const p = chain(50, 1);
    index.record('g', p, 0);
    index.record('g', p, 50); // predicted: 50 of 100 blocks hit
    expect(index.correct('g', 400, 1600)).toBeCloseTo(0.5); // reported 25% against 50% predicted
    expect(index.believedCapacity('g')).toBe(700); // x max(0.7, 0.5)
    index.record('g', p, 50);
    index.record('g', p, 50);
    expect(index.correct('g', 1600, 1600)).toBeCloseTo(1);
    expect(index.believedCapacity('g')).toBe(770);
  });

  it('does not judge on too little evidence, and never believes more than the physical capacity', () => {
    const index = new PrefixIndex({ defaultCapacityBlocks: 100, minTokens: 10_000, stride: 1, slack: 0 });
    index.record('g', chain(10, 1), 5);
    expect(index.correct('g', 0, 160)).toBeUndefined();
    expect(index.believedCapacity('g')).toBe(100);
    index.setCapacity('g', 6);
    expect(index.heldBlocks('g')).toBe(6);
  });

  it('a shrunk capacity evicts at once', () => {
    const index = new PrefixIndex({ defaultCapacityBlocks: 100, minTokens: 1, stride: 1, slack: 0 });
    const p = chain(40, 1);
    index.record('g', p, 40);
    expect(index.correct('g', 0, 640)).toBe(0);
    expect(index.believedCapacity('g')).toBe(70);
    index.record('g', chain(40, 2), 0);
    index.record('g', chain(40, 3), 0);
    expect(index.heldBlocks('g')).toBe(70);
  });

  it('keeps every stride-th block: a prefix is known to stride x 16 tokens', () => {
    const index = new PrefixIndex({ defaultCapacityBlocks: 100, stride: 4 });
    const p = chain(10, 1);
    index.record('g', p.slice(0, 7), 0);
    expect(index.heldBlocks('g')).toBe(4);
    // Holds blocks 0-6; block 7 ends the second kept stride, not routed: known to 4 blocks.
    expect(index.matches(p).get('g')).toBe(4);
    index.record('g', p, 0);
    expect(index.matches(p).get('g')).toBe(8);
    expect(index.matches(p.slice(0, 3)).size).toBe(0);
  });

  it('with slack, evicts in batches down to the capacity', () => {
    const index = new PrefixIndex({ defaultCapacityBlocks: 100, stride: 1, slack: 0.5 });
    index.record('g', chain(140, 1), 0);
    expect(index.heldBlocks('g')).toBe(140);
    index.record('g', chain(20, 2), 0);
    expect(index.heldBlocks('g')).toBe(100);
    expect(index.matches(chain(20, 2)).get('g')).toBe(20);
  });

  it('keeps exactly the most recently routed blocks through many batched evictions (against an LRU by sorting)', () => {
    const random = seededRandom(21);
    const index = new PrefixIndex({ defaultCapacityBlocks: 60, stride: 1, slack: 0.25 });
    const lastRouted = new Map<number, number>();
    let clock = 0;
    const prompts = Array.from({ length: 12 }, (_, i) => chain(5 + ((i * 7) % 23), 10 + i));
    for (let round = 0; round < 300; round++) {
      const p = prompts[Math.floor(random() * prompts.length)] as number[];
      index.record('g', p, 0);
      for (let k = p.length - 1; k >= 0; k--) lastRouted.set(p[k] as number, ++clock);
      if (lastRouted.size > 60 * 1.25)
        for (const [h] of [...lastRouted].sort((a, b) => a[1] - b[1]).slice(0, lastRouted.size - 60))
          lastRouted.delete(h);
      expect(index.heldBlocks('g')).toBe(lastRouted.size);
      for (const q of prompts) {
        let held = 0;
        while (held < q.length && lastRouted.has(q[held] as number)) held++;
        expect(index.matches(q).get('g') ?? 0).toBe(held);
      }
    }
  });

  it('keeps exactly an LRU by sorting with shared heads, diverging tails, several groups and odd prompts', () => {
    const random = seededRandom(33);
    const capacity = { g0: 90, g1: 70, g2: 120 } as Record<string, number>;
    const index = new PrefixIndex({ defaultCapacityBlocks: 200, stride: 1, slack: 0.1 });
    for (const [g, c] of Object.entries(capacity)) index.setCapacity(g, c);
    const reference = new Map(Object.keys(capacity).map((g) => [g, new Map<number, number>()]));
    let clock = 0;
    const heads = Array.from({ length: 6 }, (_, i) => chain(4 + ((i * 5) % 17), 100 + i));
    const pool: number[] = heads.flat();
    const prompt = (): number[] => {
      const r = random();
      if (r < 0.05) return []; // nothing kept
      if (r < 0.15) {
        // Not a chain: hashes from anywhere, some repeated, some held after one that is not.
        return Array.from(
          { length: uniformInt(random, 1, 12) },
          () => pool[uniformInt(random, 0, pool.length - 1)] as number,
        );
      }
      const head = heads[uniformInt(random, 0, heads.length - 1)] as number[];
      const cut = uniformInt(random, 1, head.length);
      // A tail of 0-8 blocks, from a small set so later prompts repeat some tails whole.
      const tail = chain(uniformInt(random, 0, 8), 1000 + uniformInt(random, 0, 20), head[cut - 1]);
      pool.push(...tail);
      return [...head.slice(0, cut), ...tail];
    };
    for (let round = 0; round < 600; round++) {
      const g = `g${uniformInt(random, 0, 2)}`;
      const lastRouted = reference.get(g) as Map<number, number>;
      // A new capacity evicts down to it at once; a routed prompt only past the slack.
      let evict = random() < 0.05;
      if (evict) {
        const physical = uniformInt(random, 30, 120);
        index.setCapacity(g, physical);
        capacity[g] = Math.min(capacity[g] as number, physical); // the belief never grows by it
      } else {
        const p = prompt();
        index.record(g, p, 0);
        for (let k = p.length - 1; k >= 0; k--) lastRouted.set(p[k] as number, ++clock);
        evict = lastRouted.size > (capacity[g] as number) * 1.1;
      }
      const cap = capacity[g] as number;
      if (evict)
        for (const [h] of [...lastRouted]
          .sort((a, b) => a[1] - b[1])
          .slice(0, Math.max(0, lastRouted.size - cap)))
          lastRouted.delete(h);
      for (const [group, held] of reference) expect(index.heldBlocks(group), group).toBe(held.size);
      for (const q of heads) {
        const expected: Record<string, number> = {};
        for (const [group, held] of reference) {
          if (!held.has(q[0] as number)) continue;
          // The index's binary search: after odd prompts a group may hold a later block and not an earlier one.
          let lo = 1;
          let hi = q.length;
          while (lo < hi) {
            const mid = (lo + hi) >> 1;
            if (held.has(q[mid] as number)) lo = mid + 1;
            else hi = mid;
          }
          expected[group] = lo;
        }
        expect(Object.fromEntries(index.matches(q))).toEqual(expected);
      }
    }
  });

  it('refuses a NaN hash before recording anything of its prompt', () => {
    const index = new PrefixIndex({ defaultCapacityBlocks: 100, stride: 1, slack: 0 });
    const p = chain(6, 1);
    index.record('g', p.slice(0, 3), 0);
    expect(() => index.record('g', [...p.slice(0, 4), Number.NaN, p[5] as number], 0)).toThrow(/NaN/);
    expect(index.heldBlocks('g')).toBe(3);
    index.record('g', p, 0);
    expect(Object.fromEntries(index.matches(p))).toEqual({ g: 6 });
  });

  it('forgets a group that lost its cache', () => {
    const index = new PrefixIndex({ defaultCapacityBlocks: 100, stride: 1, slack: 0 });
    const p = chain(5, 1);
    index.record('g1', p, 0);
    index.record('g2', p, 0);
    index.forget('g1');
    expect(Object.fromEntries(index.matches(p))).toEqual({ g2: 5 });
  });

  it("records another replica's decision from its kept hashes exactly as its own decision", () => {
    const own = new PrefixIndex({ defaultCapacityBlocks: 100 });
    const shared = new PrefixIndex({ defaultCapacityBlocks: 100 });
    const p = chain(18, 4);
    own.record('g1', p, 0);
    const kept = own.kept(p);
    expect(kept).toEqual([p[3], p[7], p[11], p[15]]);
    shared.recordKept('g1', kept, p.length, 0);
    const request = [...p, ...chain(6, 5, p[17])];
    expect(Object.fromEntries(shared.matches(request))).toEqual(Object.fromEntries(own.matches(request)));
    expect(Object.fromEntries(shared.matches(request))).toEqual({ g1: 16 });
  });
});
