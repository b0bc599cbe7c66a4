import { describe, expect, it } from 'vitest';
import { DEFAULT_PICK_OPTIONS, type GroupView, pick } from '../../../../controller/scheduler/pick.ts';
import type { PrefixLookup } from '../../../../controller/scheduler/prefix-index.ts';

const g = (id: string, outstanding: number, extra: Partial<GroupView> = {}): GroupView => ({
  id,
  deployment: 'm',
  state: 'ready',
  outstanding,
  ...extra,
});

/** An index that believes `held` (group -> leading blocks) for any prompt. */
const believes = (held: Record<string, number>): PrefixLookup => ({
  matches: () => new Map(Object.entries(held)),
});

const blocks = Array.from({ length: 512 }, (_, i) => i + 1); // an 8,192-token prompt
const req = { deployment: 'm', promptBlocks: blocks };

describe('scheduler.pick (corral: prefix, load, KV pressure, imbalance guard)', () => {
  it('sends a prompt to the group holding its prefix, and says how much hits', () => {
    const r = pick(
      { groups: [g('g1', 4), g('g2', 3), g('g3', 4)], prefixIndex: believes({ g3: 352 }) },
      req,
      () => 0,
    );
    expect(r).toEqual({
      type: 'group',
      id: 'g3',
      reason: 'prefix hit 5,632 tokens on g3; outstanding 4 (mean 4.0)',
    });
  });

  it('prefers the longer cached prefix', () => {
    const r = pick(
      { groups: [g('a', 2), g('b', 2)], prefixIndex: believes({ a: 100, b: 300 }) },
      req,
      () => 0,
    );
    expect(r).toMatchObject({ id: 'b' });
  });

  it('leaves a holder whose queued prefill outweighs the miss elsewhere', () => {
    const groups = [g('a', 2, { pendingPrefillTokens: 40_000 }), g('b', 2)];
    const r = pick({ groups, prefixIndex: believes({ a: 512 }) }, req, () => 0);
    expect(r).toMatchObject({ id: 'b' });
    expect((r as { reason: string }).reason).toMatch(/^load over prefix: a holds 8,192 tokens/);
  });

  it('imbalance guard: a holder far above the mean gets nothing, however hot its prefix', () => {
    // mean = (30 + 4 + 4 + 1) / 3 = 13, limit = max(1.5 x 13, 4 + 2) = 19.5: a (30) is out.
    const groups = [g('a', 30), g('b', 4), g('c', 4)];
    const r = pick({ groups, prefixIndex: believes({ a: 512 }) }, req, () => 0.99);
    expect(r).toMatchObject({ type: 'group', id: 'c' });
    expect((r as { reason: string }).reason).toBe(
      'imbalance guard: a holds 8,192 tokens but has 30 outstanding (limit 20); c outstanding 4 (mean 13.0)',
    );
  });

  it('the guard keeps the least loaded group eligible even when every group is over the ratio', () => {
    const r = pick({ groups: [g('a', 0), g('b', 0)] }, { deployment: 'm' }, () => 0, {
      ...DEFAULT_PICK_OPTIONS,
      guardRatio: 0.1,
      guardSlack: 1,
    });
    expect(r).toMatchObject({ type: 'group', id: 'a' });
  });

  it('KV pressure: avoids a group about to evict when the prefix is the same everywhere', () => {
    const groups = [g('a', 2, { kvUsage: 0.99 }), g('b', 2, { kvUsage: 0.5 })];
    expect(pick({ groups }, req, () => 0)).toMatchObject({ id: 'b' });
    const calm = [g('a', 2, { kvUsage: 0.8 }), g('b', 2, { kvUsage: 0.5 })];
    expect(pick({ groups: calm }, req, () => 0)).toMatchObject({ id: 'a' });
  });

  it('without block hashes or an index it is least outstanding, as the gateway uses it today', () => {
    const r = pick(
      { groups: [g('a', 3), g('b', 1)], prefixIndex: believes({ a: 512 }) },
      { deployment: 'm' },
      () => 0,
    );
    expect(r).toEqual({ type: 'group', id: 'b', reason: 'least outstanding (1) of 2 ready' });
  });

  it('counts promptTokens beyond the full blocks, and caps a hit at the prompt', () => {
    const r = pick(
      { groups: [g('a', 0), g('b', 0)], prefixIndex: believes({ a: 4 }) },
      { deployment: 'm', promptBlocks: [1, 2, 3, 4], promptTokens: 70 },
      () => 0.99,
    );
    expect(r).toEqual({
      type: 'group',
      id: 'a',
      reason: 'prefix hit 64 tokens on a; outstanding 0 (mean 0.5)',
    });
  });
});
