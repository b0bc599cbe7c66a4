import { describe, expect, it } from 'vitest';
import { GpuAllocator } from '../../../../worker/agent/gpu-allocator.ts';

describe('GpuAllocator', () => {
  it('hands out disjoint devices, lowest first, and takes them back', () => {
    const a = new GpuAllocator(8);
    expect(a.allocate('r1', 4)).toEqual([0, 1, 2, 3]);
    expect(a.allocate('r2', 4)).toEqual([4, 5, 6, 7]);
    expect(a.allocate('r3', 1)).toBeUndefined();
    a.release('r1');
    expect(a.free).toBe(4);
    expect(a.allocate('r3', 2)).toEqual([0, 1]);
  });

  it('re-allocating an engine replaces what it held', () => {
    const a = new GpuAllocator(2);
    expect(a.allocate('e', 2)).toEqual([0, 1]);
    expect(a.allocate('e', 2)).toEqual([0, 1]);
    expect(a.free).toBe(0);
  });
});
