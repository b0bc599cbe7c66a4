import { describe, expect, it } from 'vitest';
import {
  drained,
  type Group,
  type GroupPolicy,
  type GroupTemplate,
  type RankEngineState,
  type ReconcileResult,
  reconcileGroups,
  type WorkerView,
} from '../../../../controller/groups/group-reconciler.ts';
import { IllegalTransitionError, transition } from '../../../../controller/groups/group-state.ts';

const policy: GroupPolicy = {
  maxRestarts: 2,
  backoffBaseMs: 1000,
  backoffMaxMs: 8000,
  startTimeoutMs: 60_000,
};

function template(over: Partial<GroupTemplate> = {}): GroupTemplate {
  return {
    deployment: 'llama-405b',
    replicas: 2,
    nodes: 2,
    gpusPerNode: 8,
    launch: (rank, leader, group) => ({
      model: 'meta-llama/Llama-3.1-405B-Instruct',
      args: [
        '--node-rank',
        String(rank),
        '--master-addr',
        leader.id,
        '--master-port',
        String(29500 + group.ordinal),
      ],
      env: {},
      gpus: 8,
      headless: rank > 0,
    }),
    ...over,
  };
}

function worker(id: string, over: Partial<WorkerView> = {}): WorkerView {
  return {
    id,
    live: true,
    draining: false,
    gpus: 8,
    gpuType: 'h100-80g',
    labels: {},
    engines: new Map(),
    ...over,
  };
}

/** Workers that report each launched engine in the given state. */
function reporting(
  workers: WorkerView[],
  groups: Group[],
  state: (rank: number) => RankEngineState,
): WorkerView[] {
  const engines = new Map<string, Map<string, { state: RankEngineState }>>();
  for (const g of groups) {
    if (!('ranks' in g.state)) continue;
    for (const r of g.state.ranks) {
      const m = engines.get(r.workerId) ?? new Map();
      m.set(r.engineId, { state: state(r.rank) });
      engines.set(r.workerId, m);
    }
  }
  return workers.map((w) => ({ ...w, engines: engines.get(w.id) ?? new Map() }));
}

function run(groups: Group[], workers: WorkerView[], now: number, t = template()): ReconcileResult {
  return reconcileGroups({ templates: [t], groups, workers, policy, now, nextOrdinal: groups.length });
}

const four = ['w1', 'w2', 'w3', 'w4'].map((id) => worker(id));

function readyGroups(): Group[] {
  let r = run([], four, 0);
  r = run(
    r.groups,
    reporting(four, r.groups, () => 'starting'),
    1,
  );
  r = run(
    r.groups,
    reporting(four, r.groups, () => 'ready'),
    2,
  );
  return r.groups;
}

describe('group reconciler', () => {
  it('forms two 2-node groups on four workers, rank 0 leading', () => {
    const r = run([], four, 0);
    expect(r.groups.map((g) => g.state.t)).toEqual(['launching', 'launching']);
    expect(r.directives).toHaveLength(4);
    const [g0] = r.groups;
    const launches = r.directives.filter((d) => d.t === 'launch' && d.engineId.startsWith(`${g0?.id}.`));
    expect(launches.map((d) => d.t === 'launch' && d.args)).toEqual([
      ['--node-rank', '0', '--master-addr', 'w1', '--master-port', '29500'],
      ['--node-rank', '1', '--master-addr', 'w1', '--master-port', '29500'],
    ]);
    expect(launches.map((d) => d.t === 'launch' && d.headless)).toEqual([false, true]);
  });

  it('goes launching -> loading -> ready as ranks report, and is idempotent', () => {
    let r = run([], four, 0);
    r = run(
      r.groups,
      reporting(four, r.groups, () => 'starting'),
      1,
    );
    expect(r.groups.map((g) => g.state.t)).toEqual(['loading', 'loading']);
    // Followers never pass /health (headless ranks serve no HTTP); the leader's health decides.
    r = run(
      r.groups,
      reporting(four, r.groups, (rank) => (rank === 0 ? 'ready' : 'starting')),
      2,
    );
    expect(r.groups.map((g) => g.state.t)).toEqual(['ready', 'ready']);
    const again = run(
      r.groups,
      reporting(four, r.groups, () => 'ready'),
      3,
    );
    expect(again.directives).toEqual([]);
    expect(again.events).toEqual([]);
  });

  it('a lost follower takes only its group out at once, stops the survivors and rebuilds after backoff', () => {
    const groups = readyGroups();
    const victim = groups[0]!;
    const ranks = victim.state.t === 'ready' ? victim.state.ranks : [];
    const follower = ranks[1]!.workerId;
    const workers = reporting(four, groups, () => 'ready').map((w) =>
      w.id === follower ? { ...w, live: false } : w,
    );

    const r = run(groups, workers, 10);
    expect(r.groups[0]?.state).toMatchObject({ t: 'pending', retryAt: 10 + 1000 });
    expect(r.groups[0]?.restarts).toBe(1);
    expect(r.groups[1]?.state.t).toBe('ready');
    expect(r.directives).toEqual([{ t: 'stop', workerId: ranks[0]?.workerId, engineId: ranks[0]?.engineId }]);
    expect(r.events[0]?.reason).toContain(`worker ${follower} stopped heartbeating`);

    // Before the backoff passes nothing happens; after it, with no spare node, it waits and says why.
    expect(run(r.groups, workers, 500).groups[0]?.state.t).toBe('pending');
    const waiting = run(r.groups, workers, 1010);
    expect(waiting.groups[0]?.state).toMatchObject({
      t: 'pending',
      lastFailure: expect.stringContaining('waiting for 2 workers'),
    });

    // The worker comes back: the group is rebuilt with new engine ids (attempt 2).
    const back = run(
      waiting.groups,
      reporting(four, [waiting.groups[1]!], () => 'ready'),
      2000,
    );
    expect(back.groups[0]?.state.t).toBe('launching');
    expect(back.groups[0]?.attempt).toBe(2);
    expect(back.directives.every((d) => d.engineId.includes('.a2.'))).toBe(true);
  });

  it('an exited engine, or one a restarted worker no longer reports, breaks the group', () => {
    const groups = readyGroups();
    const exited = reporting(four, groups, (rank) => (rank === 1 ? 'exited' : 'ready'));
    expect(run(groups, exited, 10).groups.map((g) => g.state.t)).toEqual(['pending', 'pending']);
    const forgotten = reporting(four, groups, () => 'ready').map((w) =>
      w.id === 'w4' ? { ...w, engines: new Map() } : w,
    );
    const r = run(groups, forgotten, 10);
    expect(r.groups.filter((g) => g.state.t === 'pending')).toHaveLength(1);
    expect(r.events[0]?.reason).toContain('no longer runs');
  });

  it('fails a group after maxRestarts rebuilds, with the reason', () => {
    let groups = run([], [worker('a'), worker('b')], 0, template({ replicas: 1 })).groups;
    let now = 0;
    for (let i = 0; i <= policy.maxRestarts; i++) {
      now += 10_000;
      const broken = reporting([worker('a'), worker('b')], groups, () => 'exited');
      groups = run(groups, broken, now, template({ replicas: 1 })).groups;
      if (groups[0]?.state.t === 'failed') break;
      now += 10_000;
      groups = run(groups, [worker('a'), worker('b')], now, template({ replicas: 1 })).groups;
    }
    expect(groups[0]?.state).toMatchObject({
      t: 'failed',
      reason: expect.stringContaining('gave up after 2 rebuilds'),
    });
  });

  it('counts a load that takes longer than startTimeoutMs as a failure', () => {
    let r = run([], four, 0);
    r = run(
      r.groups,
      reporting(four, r.groups, () => 'starting'),
      1,
    );
    r = run(
      r.groups,
      reporting(four, r.groups, () => 'starting'),
      1 + policy.startTimeoutMs + 1,
    );
    expect(r.groups.map((g) => g.state.t)).toEqual(['pending', 'pending']);
    expect(r.events[0]?.reason).toContain('not ready within 60 s');
  });

  it('scales down by draining the newest group, stopping it once drained', () => {
    const groups = readyGroups();
    const r = run(
      groups,
      reporting(four, groups, () => 'ready'),
      10,
      template({ replicas: 1 }),
    );
    expect(r.groups.map((g) => g.state.t)).toEqual(['ready', 'draining']);
    expect(r.directives).toEqual([]);
    // Reconciling again while it drains drains nothing more.
    const again = run(
      r.groups,
      reporting(four, r.groups, () => 'ready'),
      15,
      template({ replicas: 1 }),
    );
    expect(again.groups.map((g) => g.state.t)).toEqual(['ready', 'draining']);
    const done = drained(r.groups[1]!, 20);
    expect(done.group.state.t).toBe('stopped');
    expect(done.directives).toHaveLength(2);
  });

  it('keeps a group inside one topology domain and never shares GPUs between groups', () => {
    const racks = [
      worker('a1', { labels: { rack: 'a' } }),
      worker('b1', { labels: { rack: 'b' } }),
      worker('b2', { labels: { rack: 'b' } }),
      worker('a2', { labels: { rack: 'a' }, gpus: 4 }),
    ];
    const r = run([], racks, 0, template({ topologyKey: 'rack' }));
    expect(r.groups[0]?.state).toMatchObject({ t: 'launching' });
    const placed = r.groups[0]?.state.t === 'launching' ? r.groups[0].state.ranks.map((x) => x.workerId) : [];
    expect(placed).toEqual(['b1', 'b2']);
    expect(r.groups[1]?.state).toMatchObject({
      t: 'pending',
      lastFailure: expect.stringContaining('sharing rack'),
    });
  });

  it('a group of one node treats an exited engine as its worker restarting it; failed still breaks it', () => {
    const one = template({ nodes: 1, replicas: 2, onePerWorker: true });
    const two = [worker('a', { gpus: 16 }), worker('b', { gpus: 16 })];
    let r = run([], two, 0, one);
    const placed = r.groups.map((g) => (g.state.t === 'launching' ? g.state.ranks[0]?.workerId : '-'));
    expect(placed).toEqual(['a', 'b']); // one per worker although a holds two
    r = run(
      r.groups,
      reporting(two, r.groups, () => 'ready'),
      1,
      one,
    );
    expect(r.groups.map((g) => g.state.t)).toEqual(['ready', 'ready']);
    const exited = run(
      r.groups,
      reporting(two, r.groups, () => 'exited'),
      2,
      one,
    );
    expect(exited.groups.map((g) => g.state.t)).toEqual(['ready', 'ready']);
    expect(exited.directives).toEqual([]);
    const failed = run(
      r.groups,
      reporting(two, r.groups, () => 'failed'),
      2,
      one,
    );
    expect(failed.groups.map((g) => g.state.t)).toEqual(['pending', 'pending']);
  });

  it('refuses illegal transitions', () => {
    expect(() =>
      transition('g', { t: 'failed', since: 0, reason: 'x' }, { t: 'pending', since: 1, retryAt: 1 }),
    ).toThrow(IllegalTransitionError);
  });
});
