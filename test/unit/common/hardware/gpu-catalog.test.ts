import { describe, expect, it } from 'vitest';
import { GPU_IDS, lookupGpu } from '../../../../common/hardware/gpu-catalog.ts';

describe('lookupGpu', () => {
  it('knows the types the issue names', () => {
    expect(GPU_IDS).toEqual([
      'h100-80g',
      'h200-141g',
      'a100-80g',
      'a100-40g',
      'l40s-48g',
      'mi300x-192g',
      'b200-180g',
    ]);
  });

  it.each([
    ['h100-80g', 'h100-80g'],
    ['H100-80G', 'h100-80g'],
    [' B200 ', 'b200-180g'],
    ['mi300x', 'mi300x-192g'],
  ])('%s -> %s', (name, id) => {
    expect(lookupGpu(name)?.id).toBe(id);
  });

  it('returns null for an unknown type', () => {
    expect(lookupGpu('v100-16g')).toBeNull();
  });

  it('has FP8 tensor cores only on Hopper, Ada, CDNA3 and Blackwell', () => {
    expect(lookupGpu('h100-80g')?.fp8).toBe('native');
    expect(lookupGpu('a100-80g')?.fp8).toBe('weight-only');
  });
});
