import { describe, expect, it } from 'vitest';
import { KvBlockPool } from '../../../../../sim/engine/model/kv-block-pool.ts';

describe('KvBlockPool.lookupAfter', () => {
  it('finds the block after another exactly, whether its hint is fresh, stale (block evicted and reused) or names another', () => {
    const pool = new KvBlockPool(3);
    const [a, b] = [pool.allocate(), pool.allocate()];
    pool.register(a, 101);
    pool.register(b, 102, a);
    expect(pool.lookupAfter(a, 102)).toBe(b);
    // The hint says "b after a"; b is freed, evicted and holds another hash.
    pool.release([b]);
    const c = pool.allocate(); // the never-used block
    const reused = pool.allocate(); // b, evicted
    expect(reused).toBe(b);
    expect(pool.lookupAfter(a, 102)).toBeUndefined();
    pool.register(reused, 103, a);
    expect(pool.lookupAfter(a, 102)).toBeUndefined();
    expect(pool.lookupAfter(a, 103)).toBe(reused);
    // The hash cached again elsewhere, now a's second child: the hint names it, and the other is found too.
    pool.register(c, 102, a);
    expect(pool.lookupAfter(a, 102)).toBe(c);
    expect(pool.lookupAfter(a, 103)).toBe(reused);
    expect(pool.lookupAfter(a, 102)).toBe(c);
  });

  it('a block registered after another is found through its hint, and exactly once the hint is stale', () => {
    const pool = new KvBlockPool(4);
    const [a, b] = [pool.allocate(), pool.allocate()];
    pool.register(a, 201);
    pool.register(b, 202, a);
    expect(pool.lookupAfter(a, 202)).toBe(b);
    // b is evicted and holds another block: the hint still names b, the answer follows the table.
    pool.release([b]);
    const fresh = [pool.allocate(), pool.allocate(), pool.allocate()];
    expect(fresh).toContain(b);
    pool.register(b, 203, a);
    expect(pool.lookupAfter(a, 202)).toBeUndefined();
    const c = fresh.find((x) => x !== b && x !== a) as number;
    pool.register(c, 202, a);
    expect(pool.lookupAfter(a, 202)).toBe(c);
    expect(pool.lookupAfter(a, 203)).toBe(b);
    // A block whose hash another block already holds does not take the hint.
    const d = fresh.find((x) => x !== b && x !== c) as number;
    pool.register(d, 202, a);
    expect(pool.lookupAfter(a, 202)).toBe(c);
  });

  it('keeps the first holder of a hash', () => {
    const pool = new KvBlockPool(2);
    const [a, b] = [pool.allocate(), pool.allocate()];
    pool.register(a, 7);
    pool.register(b, 7);
    expect(pool.lookup(7)).toBe(a);
    pool.release([a]);
    expect(pool.allocate()).toBe(a);
    expect(pool.lookup(7)).toBeUndefined();
  });
});
