import { describe, expect, it } from 'vitest';
import { promptBlockHashes } from '../../../../controller/scheduler/block-hashes.ts';
import type { GroupView } from '../../../../controller/scheduler/pick.ts';
import { PrefixRouter } from '../../../../controller/scheduler/prefix-router.ts';

const g = (id: string, outstanding = 0, state: GroupView['state'] = 'ready'): GroupView => ({
  id,
  deployment: 'm',
  state,
  outstanding,
});
const prompt = (prefix: number, question: number) => [
  ...Array.from({ length: 1024 }, (_, i) => prefix * 100_000 + i),
  ...Array.from({ length: 64 }, (_, i) => question * 100_000 + 50_000 + i),
];
const req = (prefix: number, question: number) => ({
  deployment: 'm',
  promptBlocks: promptBlockHashes(prompt(prefix, question)),
  promptTokens: 1088,
});

describe('PrefixRouter (the dispatcher seam)', () => {
  it('records each decision: the next request with that prefix follows it', () => {
    const r = new PrefixRouter({ capacityBlocks: 10_000 });
    expect(r.pick([g('a'), g('b')], req(1, 1), () => 0.99, 'r1')).toMatchObject({ id: 'b' });
    expect(r.pick([g('a'), g('b', 1)], req(1, 2), () => 0, 'r2')).toMatchObject({
      id: 'b',
      reason: 'prefix hit 1,024 tokens on b; outstanding 1 (mean 1.0)',
    });
  });

  it('counts a routed prefill as queued until its first token', () => {
    const r = new PrefixRouter({ capacityBlocks: 10_000 });
    r.pick([g('a'), g('b')], req(1, 1), () => 0.99, 'r1'); // b: 1,088 tokens queued
    // Another prefix misses everywhere: the group without queued prefill, whatever the random draw.
    expect(r.pick([g('a'), g('b')], req(2, 1), () => 0.99, 'r2')).toMatchObject({ id: 'a' });
    r.firstToken('r1');
    r.firstToken('r2');
    expect(r.pick([g('a'), g('b')], req(3, 1), () => 0.99, 'r3')).toMatchObject({ id: 'b' });
  });

  it('forgets a group that restarted', () => {
    const r = new PrefixRouter({ capacityBlocks: 10_000 });
    r.pick([g('a'), g('b')], req(1, 1), () => 0, 'r1');
    r.firstToken('r1');
    r.forget('a');
    expect(r.pick([g('a', 1), g('b')], req(1, 2), () => 0, 'r2')).toMatchObject({
      id: 'b',
      reason: expect.stringMatching(/^least outstanding/),
    });
  });

  it('a report of far fewer hits than predicted shrinks the belief', () => {
    const r = new PrefixRouter({ capacityBlocks: 10_000 });
    for (let i = 0; i < 30; i++) {
      r.pick([g('a')], req(i % 3, i), () => 0, `r${i}`);
      r.firstToken(`r${i}`);
    }
    r.report('a', { hitTokens: 0, queryTokens: 30 * 1088, kvBlocks: 10_000 });
    // The belief shrank (x0.7) but still holds these recent prefixes: routing still works.
    expect(r.pick([g('a'), g('b', 5)], req(2, 99), () => 0, 'x')).toMatchObject({ id: 'a' });
  });

  it('passes wait and reject through and records nothing', () => {
    const r = new PrefixRouter({ capacityBlocks: 100 });
    expect(r.pick([g('a', 0, 'starting')], req(1, 1), () => 0, 'r1')).toMatchObject({ type: 'wait' });
    expect(r.pick([], req(1, 1), () => 0, 'r2')).toMatchObject({ type: 'reject', code: 'unavailable' });
  });
});
