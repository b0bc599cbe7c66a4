import { describe, expect, it } from 'vitest';
import { DrainedQueue } from '../../../../controller/dispatch/drained-queue.ts';

describe('DrainedQueue', () => {
  it('knows nothing until a take or submit left nothing ready', () => {
    const q = new DrainedQueue(500);
    expect(q.nothingReady(0, 0)).toBe(false);
    q.saw(0, 0, 2);
    expect(q.nothingReady(0, 1)).toBe(false);
    q.saw(0, 1, 0);
    expect(q.nothingReady(0, 2)).toBe(true);
  });

  it('an arrival heard since the take was sent ends the knowledge, also one heard while it was in flight', () => {
    const q = new DrainedQueue(500);
    q.saw(3, 10, 0); // sent at generation 3; a PUBLISH came while it was in flight
    expect(q.nothingReady(4, 11)).toBe(false);
    expect(q.nothingReady(3, 12)).toBe(false); // once ended, it stays ended until the next take says so
  });

  it('forget() ends it (a request queued or handed back here)', () => {
    const q = new DrainedQueue(500);
    q.saw(0, 0, 0);
    q.forget();
    expect(q.nothingReady(0, 1)).toBe(false);
  });

  it('lapses after maxAgeMs, so a missed PUBLISH costs at most that long', () => {
    const q = new DrainedQueue(500);
    q.saw(0, 1000, 0);
    expect(q.nothingReady(0, 1499)).toBe(true);
    expect(q.nothingReady(0, 1500)).toBe(false);
  });
});
