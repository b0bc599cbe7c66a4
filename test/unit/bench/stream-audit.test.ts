import { describe, expect, it } from 'vitest';
import { StreamAudit, summarize } from '../../../bench/chaos/stream-audit.ts';

describe('StreamAudit', () => {
  it('counts a stream resumed at the right index as complete, without gaps or duplicates', () => {
    const a = new StreamAudit('r1');
    a.delta(0, 2);
    a.delta(2, 1);
    expect(a.nextIndex).toBe(3);
    a.resumed();
    a.delta(3, 2);
    a.finished(5);
    expect(a.result()).toEqual({
      id: 'r1',
      outcome: 'completed',
      tokens: 5,
      gaps: 0,
      duplicates: 0,
      resumes: 1,
    });
  });

  it('finds a replayed token and a skipped one', () => {
    const a = new StreamAudit('r2');
    a.delta(0, 3);
    a.delta(2, 1); // index 2 again
    a.delta(4, 1); // index 3 never came
    a.finished(5);
    expect(a.result()).toMatchObject({ duplicates: 1, gaps: 1, outcome: 'completed' });
  });

  it('counts tokens beyond the finished usage as gaps in agreement', () => {
    const a = new StreamAudit('r3');
    a.delta(0, 4);
    a.finished(3);
    expect(a.result().gaps).toBe(1);
  });

  it('tells an explicit error from a request that simply stopped', () => {
    const failed = new StreamAudit('f');
    failed.delta(0, 1);
    failed.failed('UNAVAILABLE: gave up after 3 attempts');
    const lost = new StreamAudit('l');
    lost.delta(0, 1);
    const s = summarize([failed.result(), lost.result()]);
    expect(s).toMatchObject({ requests: 2, completed: 0, failed_with_error: 1, lost: 1 });
    expect(s.errors).toEqual({ 'UNAVAILABLE: gave up after 3 attempts': 1 });
  });
});
