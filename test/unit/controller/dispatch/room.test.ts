import { describe, expect, it } from 'vitest';
import { type GroupLoad, KV_HIGH_WATER, roomOf } from '../../../../controller/dispatch/room.ts';

const load = (over: Partial<GroupLoad> = {}): GroupLoad => ({
  running: 0,
  waiting: 0,
  kvCacheUsage: 0,
  maxNumSeqs: 8,
  inFlightHere: 0,
  ...over,
});

describe('roomOf', () => {
  it.each([
    ['an idle group has max-num-seqs of room', load(), 8],
    ['running sequences take room', load({ running: 5 }), 3],
    ['waiting requests count as busy: they left the queue already', load({ running: 6, waiting: 2 }), 0],
    [
      'a stale report is topped up by what this controller sent since',
      load({ running: 2, inFlightHere: 5 }),
      3,
    ],
    ['other controllers count through the report', load({ running: 7, inFlightHere: 1 }), 1],
    ['never negative when the engine is over-full', load({ running: 8, waiting: 30 }), 0],
    ['nothing when the KV cache is at the high-water mark', load({ kvCacheUsage: KV_HIGH_WATER }), 0],
    ['just under the mark still has room', load({ kvCacheUsage: KV_HIGH_WATER - 0.01, running: 1 }), 7],
  ])('%s', (_name, g, expected) => {
    expect(roomOf(g)).toBe(expected);
  });

  it('takes a custom high-water mark', () => {
    expect(roomOf(load({ kvCacheUsage: 0.8 }), 0.8)).toBe(0);
    expect(roomOf(load({ kvCacheUsage: 0.8 }), 0.9)).toBe(8);
  });
});
