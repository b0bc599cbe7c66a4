/**
 * pick() against the rule its header states, written the straightforward way (filter, map, min): on random
 * snapshots the optimized one-pass pick must choose a group the rule ranks cheapest, and that very group when
 * the rule has a single cheapest one.
 */
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_PICK_OPTIONS,
  type GroupView,
  type PickOptions,
  pick,
  type RouteRequest,
} from '../../../../controller/scheduler/pick.ts';
import { seededRandom } from '../../../../sim/cluster/random.ts';

/** The groups the rule ranks cheapest, in snapshot order; empty when none is ready. */
function cheapest(
  groups: readonly GroupView[],
  held: ReadonlyMap<string, number>,
  request: RouteRequest,
  o: PickOptions,
): string[] {
  const ready = groups.filter((g) => g.deployment === request.deployment && g.state === 'ready');
  if (ready.length === 0) return [];
  const outstanding = ready.map((g) => g.outstanding);
  const mean = (outstanding.reduce((a, b) => a + b, 0) + 1) / ready.length;
  const limit = Math.max(o.guardRatio * mean, Math.min(...outstanding) + o.guardSlack);
  const blocks = request.promptBlocks ?? [];
  const promptTokens = Math.max(request.promptTokens ?? 0, blocks.length * o.blockSize);
  const cost = (g: GroupView) => {
    const hit = blocks.length > 0 ? Math.min(promptTokens, (held.get(g.id) ?? 0) * o.blockSize) : 0;
    const kv = g.kvUsage ?? 0;
    const penalty =
      kv > o.kvSoft ? (o.loadTokens * o.kvWeight * (Math.min(1, kv) - o.kvSoft)) / (1 - o.kvSoft) : 0;
    return (
      o.missWeight * (promptTokens - Math.max(0, hit)) +
      o.loadTokens * g.outstanding +
      (g.pendingPrefillTokens ?? 0) +
      penalty
    );
  };
  const eligible = ready.filter((g) => g.outstanding + 1 <= limit);
  if (eligible.length === 0) return [(ready[0] as GroupView).id];
  const costs = eligible.map(cost);
  const min = Math.min(...costs);
  return eligible.filter((_, i) => costs[i] === min).map((g) => g.id);
}

describe('scheduler.pick against the straightforward rule', () => {
  it('chooses a cheapest eligible group on random snapshots (the only one when there is one)', () => {
    const r = seededRandom(17);
    const states = ['ready', 'ready', 'ready', 'starting', 'unavailable'] as const;
    let unique = 0;
    for (let t = 0; t < 5000; t++) {
      const groups: GroupView[] = Array.from({ length: 1 + Math.floor(r() * 12) }, (_, i) => ({
        id: `g${i}`,
        deployment: r() < 0.85 ? 'd' : 'e',
        state: states[Math.floor(r() * states.length)] as GroupView['state'],
        outstanding: Math.floor(r() * 6),
        ...(r() < 0.5 ? { kvUsage: r() * 1.2 } : {}),
        ...(r() < 0.4 ? { pendingPrefillTokens: 256 * Math.floor(r() * 3) } : {}),
      }));
      const held = new Map<string, number>();
      for (let k = 0; k < 3; k++) if (r() < 0.5) held.set(`g${Math.floor(r() * 14)}`, Math.floor(r() * 10));
      const request: RouteRequest = {
        deployment: 'd',
        ...(r() < 0.8 ? { promptBlocks: Array.from({ length: Math.floor(r() * 8) }, (_, i) => i) } : {}),
        ...(r() < 0.5 ? { promptTokens: Math.floor(r() * 200) } : {}),
      };
      const o = r() < 0.2 ? { ...DEFAULT_PICK_OPTIONS, guardRatio: 1, guardSlack: 0 } : DEFAULT_PICK_OPTIONS;
      const draw = r();
      const result = pick({ groups, prefixIndex: { matches: () => held } }, request, () => draw, o);
      const expected = cheapest(groups, held, request, o);
      if (expected.length === 0) {
        expect(result.type).not.toBe('group');
        continue;
      }
      expect(result.type).toBe('group');
      const id = result.type === 'group' ? result.id : '';
      expect(expected).toContain(id);
      if (expected.length === 1) unique++;
    }
    // The comparison is decisive on most snapshots, not only on ties.
    expect(unique).toBeGreaterThan(2500);
  });
});
