import { describe, expect, it } from 'vitest';
import {
  chainBlockHash,
  chainBlockHashAt,
  promptBlockHashes,
  ROOT_BLOCK_HASH,
} from '../../../common/block-hash.ts';
import { chainBlockHash as engineBlockHash } from '../../../sim/engine/model/kv-block-pool.ts';

const ids = Array.from({ length: 100 }, (_, i) => (i * 7919) % 128_000);

describe('block hashes', () => {
  it('the router hashes a prompt into exactly the blocks the engine caches', () => {
    const engine: number[] = [];
    let parent = 0;
    for (let k = 0; k < 6; k++) {
      parent = engineBlockHash(parent, (i) => ids[i] as number, k * 16, 16);
      engine.push(parent);
    }
    expect(promptBlockHashes(ids)).toEqual(engine);
  });

  it('reads tokens through an accessor exactly as from an array', () => {
    expect(chainBlockHashAt(ROOT_BLOCK_HASH, (i) => ids[i] as number, 16, 32)).toBe(
      chainBlockHash(ROOT_BLOCK_HASH, ids, 16, 32),
    );
  });

  it('chains: a block names its whole prefix, and hashes stay exact integers below 2^53', () => {
    const other = [...ids];
    other[3] = 1;
    const a = promptBlockHashes(ids);
    const b = promptBlockHashes(other);
    expect(a.every((h, k) => h !== b[k])).toBe(true);
    expect(a.every((h) => Number.isSafeInteger(h) && h >= 0)).toBe(true);
  });

  it('blocks that differ in one token never share a hash, whatever the token and its place', () => {
    const block = ids.slice(0, 16);
    const seen = new Set([chainBlockHash(ROOT_BLOCK_HASH, block)]);
    for (let at = 0; at < 16; at++)
      for (const token of new Set([
        0,
        1,
        2,
        127_999,
        1 << 16,
        (block[at] as number) ^ 1,
        (block[at] as number) + 1,
      ])) {
        if (token === block[at]) continue;
        const changed = [...block];
        changed[at] = token;
        const h = chainBlockHash(ROOT_BLOCK_HASH, changed);
        expect(seen.has(h)).toBe(false);
        seen.add(h);
      }
  });

  it('hashes only full blocks and refuses a bad block size', () => {
    expect(promptBlockHashes(ids.slice(0, 15))).toEqual([]);
    expect(() => promptBlockHashes(ids, 0)).toThrow(/blockSize must be a positive integer, got 0/);
  });
});
