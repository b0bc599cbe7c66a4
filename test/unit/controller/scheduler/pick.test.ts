import { describe, expect, it } from 'vitest';
import { type GroupView, pick } from '../../../../controller/scheduler/pick.ts';

const g = (id: string, state: GroupView['state'], outstanding: number, deployment = 'm'): GroupView => ({
  id,
  deployment,
  state,
  outstanding,
});

describe('scheduler.pick', () => {
  it.each([
    ['the only ready group', [g('a', 'ready', 5)], 0, { type: 'group', id: 'a' }],
    [
      'fewest outstanding',
      [g('a', 'ready', 3), g('b', 'ready', 1), g('c', 'ready', 2)],
      0,
      { type: 'group', id: 'b' },
    ],
    ['ignores starting groups', [g('a', 'starting', 0), g('b', 'ready', 9)], 0, { type: 'group', id: 'b' }],
    [
      'ignores unavailable groups',
      [g('a', 'unavailable', 0), g('b', 'ready', 9)],
      0,
      { type: 'group', id: 'b' },
    ],
    [
      'ignores other deployments',
      [g('a', 'ready', 0, 'other'), g('b', 'ready', 4)],
      0,
      { type: 'group', id: 'b' },
    ],
    [
      'tie, random low -> first tied',
      [g('a', 'ready', 1), g('b', 'ready', 1), g('c', 'ready', 2)],
      0,
      { type: 'group', id: 'a' },
    ],
    [
      'tie, random high -> last tied',
      [g('a', 'ready', 1), g('b', 'ready', 1), g('c', 'ready', 2)],
      0.99,
      { type: 'group', id: 'b' },
    ],
    ['tie, random 1 stays in range', [g('a', 'ready', 0), g('b', 'ready', 0)], 1, { type: 'group', id: 'b' }],
    [
      'none ready, one starting -> wait',
      [g('a', 'starting', 0), g('b', 'unavailable', 0)],
      0,
      { type: 'wait' },
    ],
    [
      'none ready, none starting -> reject',
      [g('a', 'unavailable', 0)],
      0,
      { type: 'reject', code: 'unavailable' },
    ],
    ['no groups -> reject', [], 0, { type: 'reject', code: 'unavailable' }],
    [
      'only other deployment ready -> reject',
      [g('a', 'ready', 0, 'other')],
      0,
      { type: 'reject', code: 'unavailable' },
    ],
  ])('%s', (_name, groups, random, expected) => {
    const result = pick({ groups }, { deployment: 'm' }, () => random);
    expect(result).toMatchObject(expected);
  });

  it('says why it chose', () => {
    const r = pick({ groups: [g('a', 'ready', 2), g('b', 'ready', 2)] }, { deployment: 'm' }, () => 0);
    expect(r).toEqual({ type: 'group', id: 'a', reason: 'least outstanding (2) among 2 tied of 2 ready' });
  });

  it('spreads ties across groups as the random source varies', () => {
    const groups = [g('a', 'ready', 0), g('b', 'ready', 0), g('c', 'ready', 0)];
    const chosen = new Set(
      [0, 0.4, 0.8].map((r) => (pick({ groups }, { deployment: 'm' }, () => r) as { id: string }).id),
    );
    expect(chosen).toEqual(new Set(['a', 'b', 'c']));
  });
});
