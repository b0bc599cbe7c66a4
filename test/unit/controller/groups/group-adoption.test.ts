import { describe, expect, it } from 'vitest';
import { compileControllerConfig } from '../../../../controller/config/controller-config.ts';
import { adoptGroups, adoptIntoPending } from '../../../../controller/groups/group-adoption.ts';
import type { Group, RankEngineState, WorkerView } from '../../../../controller/groups/group-reconciler.ts';
import { templateOf } from '../../../../controller/launcher/group-template.ts';

const D = 'llama-405b';

function templates(replicas: number, pipelineParallel: number) {
  const config = compileControllerConfig({
    deployments: [
      { name: D, model: 'meta-llama/Llama-3.1-405B-Instruct', replicas, tensorParallel: 8, pipelineParallel },
    ],
  });
  return config.deployments.map((d) => templateOf(d, 29500));
}

function worker(id: string, engines: Record<string, RankEngineState>, live = true): WorkerView {
  return {
    id,
    live,
    draining: false,
    gpus: 8,
    gpuType: 'h100-80g',
    labels: {},
    engines: new Map(Object.entries(engines).map(([e, state]) => [e, { state }])),
  };
}

const summary = (r: ReturnType<typeof adoptGroups>) =>
  r.groups.map((g) => [
    g.id,
    g.attempt,
    g.state.t,
    g.state.t === 'ready' || g.state.t === 'loading'
      ? g.state.ranks.map((x) => `${x.rank}:${x.workerId}:${x.engineId}`)
      : [],
  ]);

describe('adoptGroups', () => {
  it('adopts complete multi-node groups with their ordinal and attempt; ready only when rank 0 is', () => {
    const r = adoptGroups({
      templates: templates(2, 2),
      workers: [
        worker('n1', { [`${D}-g4.a2.r0`]: 'ready' }),
        worker('n2', { [`${D}-g4.a2.r1`]: 'ready' }),
        worker('n3', { [`${D}-g5.a1.r0`]: 'starting' }),
        worker('n4', { [`${D}-g5.a1.r1`]: 'ready' }),
      ],
      now: 100,
      nextOrdinal: 1,
    });
    expect(summary(r)).toEqual([
      [`${D}-g4`, 2, 'ready', [`0:n1:${D}-g4.a2.r0`, `1:n2:${D}-g4.a2.r1`]],
      [`${D}-g5`, 1, 'loading', [`0:n3:${D}-g5.a1.r0`, `1:n4:${D}-g5.a1.r1`]],
    ]);
    expect(r.nextOrdinal).toBe(6);
  });

  it('leaves partial groups, exited or failed ranks and lost workers out, but never reuses their ordinals', () => {
    const r = adoptGroups({
      templates: templates(2, 2),
      workers: [
        worker('n1', { [`${D}-g2.a1.r0`]: 'ready', [`${D}-g8.a1.r0`]: 'failed' }),
        worker('n2', { [`${D}-g3.a1.r0`]: 'ready' }),
        worker('n3', { [`${D}-g3.a1.r1`]: 'exited' }),
        worker('n4', { [`${D}-g9.a1.r1`]: 'ready' }, false),
      ],
      now: 100,
      nextOrdinal: 1,
    });
    expect(r.groups).toEqual([]);
    expect(r.nextOrdinal).toBe(9); // g9 was seen only on a lost worker: its report is not trusted
  });

  it('prefers the newest complete attempt of an ordinal and adopts at most `replicas` groups, oldest first', () => {
    const r = adoptGroups({
      templates: templates(1, 2),
      workers: [
        worker('n1', { [`${D}-g2.a1.r0`]: 'ready', [`${D}-g2.a3.r1`]: 'ready' }),
        worker('n2', { [`${D}-g2.a1.r1`]: 'ready', [`${D}-g2.a3.r0`]: 'ready' }),
        worker('n3', { [`${D}-g6.a1.r0`]: 'ready' }),
        worker('n4', { [`${D}-g6.a1.r1`]: 'ready' }),
      ],
      now: 100,
      nextOrdinal: 1,
    });
    expect(summary(r)).toEqual([[`${D}-g2`, 3, 'ready', [`0:n2:${D}-g2.a3.r0`, `1:n1:${D}-g2.a3.r1`]]]);
  });

  it('adopts single-node engines by their per-worker id, a restart in progress included', () => {
    const r = adoptGroups({
      templates: templates(3, 1),
      workers: [
        worker('n1', { [`${D}-n1`]: 'ready' }),
        worker('n2', { [`${D}-n2`]: 'exited' }),
        worker('n3', { [`${D}-n3`]: 'failed' }),
        worker('n4', { [`${D}-n1`]: 'ready' }), // another worker's id: not a group of n4
      ],
      now: 100,
      nextOrdinal: 5,
    });
    expect(summary(r)).toEqual([
      [`${D}-g5`, 1, 'ready', [`0:n1:${D}-n1`]],
      [`${D}-g6`, 1, 'loading', [`0:n2:${D}-n2`]],
    ]);
    expect(r.nextOrdinal).toBe(7);
  });
});

describe('adoptIntoPending', () => {
  const pending = (ordinal: number): Group => ({
    id: `${D}-g${ordinal}`,
    deployment: D,
    ordinal,
    attempt: 0,
    restarts: 0,
    state: { t: 'pending', since: 0, retryAt: 0 },
  });
  const workers = [
    worker('n1', { [`${D}-g2.a1.r0`]: 'ready', [`${D}-g3.a1.r0`]: 'ready' }),
    worker('n2', { [`${D}-g2.a1.r1`]: 'ready', [`${D}-g3.a1.r1`]: 'ready' }),
  ];

  it('puts complete unowned groups in pending groups’ places, never more than there are pending ones', () => {
    const r = adoptIntoPending({
      groups: [pending(7)],
      templates: templates(2, 2),
      workers,
      exclude: new Set(),
      now: 5,
      nextOrdinal: 8,
    });
    expect(r.groups.map((g) => [g.id, g.state.t])).toEqual([[`${D}-g2`, 'ready']]);
    expect(r.adopted.map((g) => g.id)).toEqual([`${D}-g2`]);
    expect(r.nextOrdinal).toBe(8);
  });

  it('offers neither engines the leader is stopping nor ones whose group id is taken', () => {
    const r = adoptIntoPending({
      groups: [pending(2), pending(9)],
      templates: templates(2, 2),
      workers,
      exclude: new Set([`${D}-g3.a1.r1`]),
      now: 5,
      nextOrdinal: 10,
    });
    // g2's id is a pending group of this term; g3 has a rank being stopped
    expect(r.adopted).toEqual([]);
    expect(r.groups.map((g) => g.id)).toEqual([`${D}-g2`, `${D}-g9`]);
  });
});
