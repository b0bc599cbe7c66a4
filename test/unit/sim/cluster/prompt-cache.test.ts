import { describe, expect, it } from 'vitest';
import { promptBlockHashes } from '../../../../controller/scheduler/block-hashes.ts';
import { type Prompt, PromptCache } from '../../../../sim/cluster/prompt-cache.ts';
import { seededRandom, uniformInt } from '../../../../sim/cluster/random.ts';
import {
  contentKey,
  promptTokenIds,
  type Segment,
  segmentIds,
  splitKey,
  tokenOf,
  tokenOfSplit,
  writePromptIds,
} from '../../../../sim/cluster/workloads/prompt-segments.ts';

/** Where an array's memory is: its buffer and offset (prompts share slabs). */
const region = (a: Float64Array) => ({ buffer: a.buffer, at: a.byteOffset });

const plain = (p: Prompt) => ({ length: p.length, blocks: Array.from(p.blocks), tail: Array.from(p.tail) });

/** The prompt from its whole token ids: their count, their blocks' hashes, the ids after the last full block. */
const direct = (segments: readonly Segment[], blockSize = 16) => {
  const tokens = promptTokenIds(segments);
  return {
    length: tokens.length,
    blocks: promptBlockHashes(tokens, blockSize),
    tail: tokens.slice(Math.floor(tokens.length / blockSize) * blockSize),
  };
};

describe('PromptCache', () => {
  it("hands out the length, block hashes and tail that the prompt's whole token ids give", () => {
    const random = seededRandom(5);
    const cache = new PromptCache();
    // Few distinct heads and histories, segment lengths on and off block boundaries (some shorter than a
    // block), so nodes are reused, straddling blocks are hashed across several segments and a key reappears
    // with another length.
    for (let i = 0; i < 300; i++) {
      const segments: Segment[] = [];
      const depth = uniformInt(random, 1, 4);
      for (let j = 0; j < depth; j++)
        segments.push({
          key: contentKey(j, uniformInt(random, 0, 2)),
          tokens: 16 * uniformInt(random, 0, 3) + uniformInt(random, 0, 1) * uniformInt(random, 1, 15),
        });
      segments.push({ key: contentKey(9, i), tokens: uniformInt(random, 1, 70) });
      expect(plain(cache.prompt(segments))).toEqual(direct(segments));
    }
  });

  it('gives a tail of the ids after the last full block, even where it starts in an earlier segment', () => {
    const cache = new PromptCache();
    // 20 + 5 + 3 tokens: the last full block ends at 16, so the tail spans all three segments.
    const three = [
      { key: contentKey(1), tokens: 20 },
      { key: contentKey(2), tokens: 5 },
      { key: contentKey(3), tokens: 3 },
    ];
    const p = cache.prompt(three);
    expect(p.tail).toHaveLength(12);
    expect(plain(p)).toEqual(direct(three));
    // On a block boundary: no tail.
    const whole = [{ key: contentKey(1), tokens: 32 }];
    expect(plain(cache.prompt(whole))).toEqual({ ...direct(whole), tail: [] });
  });

  it("reuses a released prompt's memory for a later prompt, with that prompt's own hashes", () => {
    const cache = new PromptCache();
    const first = [{ key: contentKey(1), tokens: 900 }];
    const second = [{ key: contentKey(2), tokens: 1020 }];
    const a = cache.prompt(first);
    const kept = cache.prompt(first);
    cache.release(a);
    const b = cache.prompt(second);
    expect(region(b.blocks)).toEqual(region(a.blocks));
    expect(plain(b)).toEqual(direct(second));
    // A prompt still in use is never handed out again.
    const c = cache.prompt(first);
    expect(region(c.blocks)).not.toEqual(region(kept.blocks));
    expect(plain(kept)).toEqual(direct(first));
  });

  it('handles a single segment, an empty prompt and another block size', () => {
    const one = [{ key: contentKey(1), tokens: 100 }];
    expect(plain(new PromptCache().prompt(one))).toEqual(direct(one));
    expect(plain(new PromptCache().prompt([]))).toEqual({ length: 0, blocks: [], tail: [] });
    const two = [
      { key: contentKey(1), tokens: 50 },
      { key: contentKey(2), tokens: 30 },
      { key: contentKey(3), tokens: 7 },
    ];
    expect(plain(new PromptCache(8).prompt(two))).toEqual(direct(two, 8));
    expect(() => new PromptCache(0)).toThrow(/blockSize must be a positive integer/);
  });

  it('writePromptIds writes any range of a prompt, across its segments', () => {
    const segments = [
      { key: contentKey(1), tokens: 7 },
      { key: contentKey(2), tokens: 0 },
      { key: contentKey(3), tokens: 30 },
      { key: contentKey(4), tokens: 5 },
    ];
    const all = promptTokenIds(segments);
    for (const [from, to] of [
      [0, 42],
      [3, 9],
      [7, 37],
      [36, 42],
      [10, 10],
    ] as const)
      expect(Array.from(writePromptIds(segments, from, to, new Int32Array(to - from)))).toEqual(
        all.slice(from, to),
      );
  });

  it('tokenOf is the mix it always was (taken modulo the vocabulary in floating point)', () => {
    const reference = (key: number, index: number) => {
      let x = (Math.floor(key / 4096) ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
      x = Math.imul(x ^ (x >>> 16), 0x85ebca6b) >>> 0;
      x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35 ^ (key & 4095)) >>> 0;
      return ((x ^ (x >>> 16)) >>> 0) % 128_000;
    };
    const random = seededRandom(9);
    for (let k = 0; k < 200; k++) {
      const key = k < 3 ? ([0, 4095, 2 ** 53 - 1][k] as number) : contentKey(k, uniformInt(random, 0, 1e6));
      const ids = segmentIds(key, 500);
      for (let i = 0; i < 500; i++) expect(ids[i]).toBe(reference(key, i));
    }
  });

  it("segmentIds and tokenOfSplit give tokenOf's tokens", () => {
    for (const key of [0, 4095, 4096, contentKey(1), contentKey(2, 3), 2 ** 53 - 1]) {
      const { high, salt } = splitKey(key);
      const ids = segmentIds(key, 40);
      for (let i = 0; i < 40; i++) {
        expect(ids[i]).toBe(tokenOf(key, i));
        expect(tokenOfSplit(high, salt, i)).toBe(tokenOf(key, i));
      }
    }
  });
});
