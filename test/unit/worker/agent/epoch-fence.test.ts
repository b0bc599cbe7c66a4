import { describe, expect, it } from 'vitest';
import { EpochFence } from '../../../../worker/agent/epoch-fence.ts';

describe('EpochFence', () => {
  it('accepts the current and newer epochs and refuses older ones, naming the highest seen', () => {
    const fence = new EpochFence();
    expect(fence.admit(3)).toEqual({ ok: true });
    expect(fence.admit(3)).toEqual({ ok: true }); // the same leader's next directive
    expect(fence.admit(2)).toEqual({ ok: false, highest: 3 }); // a deposed leader
    expect(fence.admit(5)).toEqual({ ok: true }); // a newer leader
    expect(fence.admit(3)).toEqual({ ok: false, highest: 5 });
    expect(fence.highest).toBe(5);
  });

  it('treats an unset epoch as 0: accepted only while no fenced leader was seen', () => {
    const fence = new EpochFence();
    expect(fence.admit(undefined)).toEqual({ ok: true });
    expect(fence.admit(0)).toEqual({ ok: true });
    expect(fence.admit(1)).toEqual({ ok: true });
    expect(fence.admit(undefined)).toEqual({ ok: false, highest: 1 });
  });
});
