import { describe, expect, it } from 'vitest';
import { KvBlockPool } from '../../../../../sim/engine/model/kv-block-pool.ts';

describe('KvBlockPool.lookupAfter', () => {
  it('answers as lookup does, whether its hint is fresh, stale (block evicted and reused) or missing', () => {
    const pool = new KvBlockPool(3);
    const [a, b] = [pool.allocate(), pool.allocate()];
    pool.register(a, 101);
    pool.register(b, 102);
    expect(pool.lookupAfter(a, 102)).toBe(b);
    // The hint now says "b after a"; b is freed, evicted and holds another hash.
    pool.release([b]);
    const c = pool.allocate(); // the never-used block
    const reused = pool.allocate(); // b, evicted
    expect(reused).toBe(b);
    expect(pool.lookup(102)).toBeUndefined();
    expect(pool.lookupAfter(a, 102)).toBeUndefined();
    pool.register(reused, 103);
    expect(pool.lookupAfter(a, 102)).toBeUndefined();
    expect(pool.lookupAfter(a, 103)).toBe(reused);
    // The hash cached again elsewhere: found through the table, not the stale hint.
    pool.register(c, 102);
    expect(pool.lookupAfter(a, 102)).toBe(c);
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
