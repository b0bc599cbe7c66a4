import { describe, expect, it } from 'vitest';
import { StepScheduler } from '../../../../../sim/engine/model/step-scheduler.ts';

const tokens = (len: number, salt: number) => Array.from({ length: len }, (_, i) => 1000 + salt * 10_000 + i);

function runToEnd(s: StepScheduler): void {
  for (let i = 0; i < 1000 && s.hasWork; i++) s.completeStep(s.nextStep(), () => ({ token: 7, stop: false }));
}

describe('StepScheduler.cachedPrefixTokens', () => {
  it('finds the full blocks a finished request left, shared head only, and changes nothing', () => {
    const s = new StepScheduler({
      maxNumSeqs: 4,
      maxNumBatchedTokens: 512,
      maxModelLen: 4096,
      policy: 'fcfs',
      numBlocks: 100,
    });
    const first = tokens(100, 1);
    expect(s.cachedPrefixTokens({ promptIds: first })).toBe(0);
    s.add({ id: 'a', promptIds: first, maxTokens: 2, priority: 0 });
    runToEnd(s);
    // 6 full blocks of 16 in 100 tokens.
    expect(s.cachedPrefixTokens({ promptIds: first })).toBe(96);
    // Shares the first 40 tokens: 2 full blocks.
    const other = [...first.slice(0, 40), ...tokens(60, 2)];
    expect(s.cachedPrefixTokens({ promptIds: other })).toBe(32);
    // At most all but the last token: a 96-token prompt can hit 80 (5 blocks), as admission would.
    expect(s.cachedPrefixTokens({ promptIds: first.slice(0, 96) })).toBe(80);
    expect(s.totals.prefixQueryTokens).toBe(100);
  });

  it('is 0 with prefix caching off', () => {
    const s = new StepScheduler({
      maxNumSeqs: 4,
      maxNumBatchedTokens: 512,
      maxModelLen: 4096,
      policy: 'fcfs',
      numBlocks: 100,
      enablePrefixCaching: false,
    });
    s.add({ id: 'a', promptIds: tokens(64, 1), maxTokens: 1, priority: 0 });
    runToEnd(s);
    expect(s.cachedPrefixTokens({ promptIds: tokens(64, 1) })).toBe(0);
  });
});
