import { describe, expect, it } from 'vitest';
import type { GroupView } from '../../../../controller/scheduler/pick.ts';
import { EngineGroup } from '../../../../sim/cluster/engine-group.ts';
import { PromptCache } from '../../../../sim/cluster/prompt-cache.ts';
import {
  corral,
  leastOutstanding,
  oracle,
  powerOfTwo,
  type RouteInput,
  randomChoice,
  roundRobin,
} from '../../../../sim/cluster/routers.ts';
import type { SimRequest } from '../../../../sim/cluster/workload.ts';
import { contentKey } from '../../../../sim/cluster/workloads/prompt-segments.ts';
import { latency, SMALL } from './fixtures.ts';

const view = (id: string, outstanding: number): GroupView => ({
  id,
  deployment: 'd',
  state: 'ready',
  outstanding,
});

function request(
  id: number,
  prefix: number,
  tokens = 640,
): { req: SimRequest; input: (groups: GroupView[]) => RouteInput } {
  const req: SimRequest = {
    id,
    arrivalMs: 0,
    tenant: 't',
    segments: [
      { key: contentKey(1, prefix), tokens: tokens - 32 },
      { key: contentKey(2, id), tokens: 32 },
    ],
    promptTokens: tokens,
    outputTokens: 4,
    outputKey: contentKey(3, id),
  };
  const prompt = new PromptCache().prompt(req.segments);
  return { req, input: (groups) => ({ request: req, prompt, groups, deployment: 'd' }) };
}

const at = (x: number) => () => x;

describe('baseline routers', () => {
  const groups = [view('a', 3), view('b', 1), view('c', 2)];
  const { input } = request(0, 1);

  it('round robin cycles through the groups with room', () => {
    const r = roundRobin();
    expect([0, 1, 2, 3].map(() => (r.route(input(groups), at(0)) as { id: string }).id)).toEqual([
      'a',
      'b',
      'c',
      'a',
    ]);
  });

  it('random follows the random source', () => {
    expect(randomChoice().route(input(groups), at(0.99))).toMatchObject({ id: 'c' });
    expect(randomChoice().route(input(groups), at(0))).toMatchObject({ id: 'a' });
  });

  it('least outstanding takes the fewest', () => {
    expect(leastOutstanding().route(input(groups), at(0))).toMatchObject({ id: 'b' });
  });

  it('power of two compares two distinct random groups', () => {
    // draws: a = floor(0 * 3) = 0 (a, 3 outstanding), b = floor(0 * 2) = 0 -> skips a -> 1 (b, 1): b wins.
    expect(powerOfTwo().route(input(groups), at(0))).toMatchObject({ id: 'b' });
  });

  it('every router refuses when no group has room', () => {
    for (const r of [roundRobin(), randomChoice(), leastOutstanding(), powerOfTwo()])
      expect(r.route(input([]), at(0))).toMatchObject({ type: 'reject' });
  });
});

describe('corral router', () => {
  it('records where it routed and sends the next request with the same prefix there', () => {
    const r = corral({ capacityBlocks: 1000 });
    const groups = [view('a', 0), view('b', 0)];
    const first = request(0, 7).input(groups);
    const choice = r.route(first, at(0.99)) as { id: string };
    expect(choice.id).toBe('b');
    r.firstToken?.(0);
    // b has one outstanding request, prefilled; its prefix (576 of 608 tokens, kept every 64) wins.
    const second = request(1, 7).input([view('a', 0), view('b', 1)]);
    expect(r.route(second, at(0))).toMatchObject({
      id: 'b',
      reason: expect.stringMatching(/^prefix hit 576 tokens on b/),
    });
  });

  it('counts queued prefill until the first token: a third prompt elsewhere avoids the busy group', () => {
    const r = corral({ capacityBlocks: 1000 });
    const one = request(0, 1, 4000).input([view('a', 0), view('b', 0)]);
    expect(r.route(one, at(0))).toMatchObject({ id: 'a' });
    expect(r.route(request(1, 2, 640).input([view('a', 1), view('b', 1)]), at(0))).toMatchObject({ id: 'b' });
    r.firstToken?.(0);
    expect(r.route(request(2, 3, 640).input([view('a', 1), view('b', 1)]), at(0))).toMatchObject({ id: 'a' });
  });
});

describe('oracle router', () => {
  it('sees the exact cache: sends a prompt to the group that computed its prefix', () => {
    const a = new EngineGroup('a', SMALL, latency);
    const b = new EngineGroup('b', SMALL, latency);
    const r = oracle(
      new Map([
        ['a', a],
        ['b', b],
      ]),
    );
    const warm = request(0, 5);
    b.add(warm.req, warm.input([]).prompt);
    while (b.startStep() !== undefined) b.endStep();
    const next = request(1, 5).input([view('a', 0), view('b', 0)]);
    expect(r.route(next, at(0))).toMatchObject({
      id: 'b',
      reason: 'prefix hit 608 tokens on b; outstanding 0 (mean 0.5)',
    });
    const cold = request(2, 6).input([view('a', 0), view('b', 0)]);
    expect(r.route(cold, at(0))).toMatchObject({
      id: 'a',
      reason: 'least outstanding (0) among 2 tied of 2 ready',
    });
  });
});
