import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../../common/clock.ts';
import { type Logger, silentLogger } from '../../../../common/log.ts';
import { compileControllerConfig } from '../../../../controller/config/controller-config.ts';
import { belongsTo, parseRankEngineId } from '../../../../controller/launcher/engine-args.ts';
import { GroupApplier } from '../../../../controller/launcher/group-applier.ts';
import type { Leadership } from '../../../../controller/leader/leader-elector.ts';
import { type Session, WorkerRegistry } from '../../../../controller/registry/worker-registry.ts';
import type { ControllerMessage } from '../../../../proto/gen/corral/v1/registry.ts';
import { EngineState, type EngineStatus, type Inventory } from '../../../../proto/gen/corral/v1/worker.ts';

const D = 'llama-405b';

function setup(
  deployment: Record<string, unknown>,
  inFlight?: (engineId: string) => number,
  leadership?: Leadership,
  settleMs?: number,
) {
  const config = compileControllerConfig({
    groups: { backoffBaseMs: 1000, backoffMaxMs: 1000, maxRestarts: 2 },
    deployments: [{ name: D, model: 'meta-llama/Llama-3.1-405B-Instruct', replicas: 1, ...deployment }],
  });
  const clock = new ManualClock(1000);
  const registry = new WorkerRegistry({ workerTimeoutMs: 3000, clock, log: silentLogger });
  const lines: string[] = [];
  const log: Logger = {
    ...silentLogger,
    info: (m: string) => lines.push(m),
    warn: (m: string) => lines.push(m),
    child: () => log,
  };
  const applier = new GroupApplier({
    deployments: config.deployments,
    registry,
    groups: config.groups,
    clock,
    log,
    ...(inFlight ? { inFlight } : {}),
    ...(leadership ? { leadership } : {}),
    ...(settleMs ? { settleMs } : {}),
  });
  const sessions = new Map<string, { sent: ControllerMessage[]; sessionId: number }>();
  const join = (id: string, engineHost = `10.0.0.${id.slice(1)}`, engines: [string, EngineState][] = []) => {
    const sent: ControllerMessage[] = [];
    const s: Session = { send: (m) => sent.push(m), close: () => {} };
    const inventory: Inventory = {
      workerId: id,
      nodeName: id,
      address: `127.0.0.1:500${id.slice(1)}`,
      gpus: { count: 8, type: 'H100-80G', memoryBytes: 80e9 },
      labels: {},
      version: 'test',
      engineHost,
    };
    const sessionId = registry.attach(inventory, 'peer', s);
    sessions.set(id, { sent, sessionId });
    report(id, engines); // a worker's first heartbeat follows Hello at once, with the engines it runs
  };
  const report = (id: string, engines: [string, EngineState][]) => {
    const s = sessions.get(id);
    if (!s) throw new Error(id);
    registry.heartbeat(id, s.sessionId, {
      engines: engines.map(([engineId, state]) => engine(engineId, state)),
      sentAtMs: clock.now(),
      draining: false,
    });
  };
  const sent = (id: string, withEpoch = false) =>
    (sessions.get(id)?.sent ?? []).map((m) => {
      const what =
        m.msg?.$case === 'launch'
          ? `launch ${m.msg.value.engineId}`
          : m.msg?.$case === 'stop'
            ? `stop ${m.msg.value.engineId}`
            : '?';
      return withEpoch ? `${what} @${m.epoch ?? 0}` : what;
    });
  return { applier, registry, clock, lines, join, report, sent, sessions };
}

function engine(engineId: string, state: EngineState): EngineStatus {
  return {
    engineId,
    state,
    model: 'm',
    running: 0,
    waiting: 0,
    kvCacheUsage: 0,
    prefixCacheQueries: 0,
    prefixCacheHits: 0,
    restarts: 0,
    lastExit: undefined,
    httpAddress: '',
    detail: '',
    stateSinceMs: 0,
    maxModelLen: 0,
  };
}

const { READY, EXITED, STOPPED, STARTING } = {
  READY: EngineState.ENGINE_STATE_READY,
  EXITED: EngineState.ENGINE_STATE_EXITED,
  STOPPED: EngineState.ENGINE_STATE_STOPPED,
  STARTING: EngineState.ENGINE_STATE_STARTING,
};

describe('GroupApplier', () => {
  it('launches both ranks of a 2-node group once, logs every transition OLD -> NEW with its reason', () => {
    const t = setup({ tensorParallel: 8, pipelineParallel: 2, gpuType: 'h100-80g' });
    t.applier.start(60_000);
    t.join('n1');
    t.join('n2');
    expect(t.sent('n1')).toEqual([`launch ${D}-g1.a1.r0`]);
    expect(t.sent('n2')).toEqual([`launch ${D}-g1.a1.r1`]);
    const launch = t.sessions.get('n2')?.sent[0]?.msg;
    expect(launch?.$case === 'launch' && launch.value).toMatchObject({
      headless: true,
      groupMember: true,
      gpus: 8,
      args: expect.arrayContaining(['--master-addr', '10.0.0.1', '--master-port', '29501', '--headless']),
    });
    t.report('n1', [[`${D}-g1.a1.r0`, STARTING]]);
    t.report('n2', [[`${D}-g1.a1.r1`, READY]]);
    t.report('n1', [[`${D}-g1.a1.r0`, READY]]);
    t.applier.reconcile();
    expect(t.sent('n1')).toHaveLength(1); // level-triggered, not repetitive
    expect(t.lines.filter((l) => l.startsWith('group '))).toEqual([
      `group ${D}-g1: new -> pending (deployment wants 1)`,
      `group ${D}-g1: pending -> launching (placed on n1, n2)`,
      `group ${D}-g1: launching -> loading (every rank started)`,
      `group ${D}-g1: loading -> ready (leader healthy, every rank running)`,
    ]);
    t.applier.stop();
  });

  it('an exited rank of a multi-node group stops the others and rebuilds after backoff with new ids', () => {
    const t = setup({ tensorParallel: 8, pipelineParallel: 2 });
    t.applier.start(60_000);
    t.join('n1');
    t.join('n2');
    t.report('n1', [[`${D}-g1.a1.r0`, READY]]);
    t.report('n2', [[`${D}-g1.a1.r1`, EXITED]]);
    expect(t.sent('n1')).toEqual([`launch ${D}-g1.a1.r0`, `stop ${D}-g1.a1.r0`]);
    expect(t.sent('n2')).toEqual([`launch ${D}-g1.a1.r1`, `stop ${D}-g1.a1.r1`]);
    expect(t.applier.records()[0]).toMatchObject({
      group: { state: { t: 'pending' }, restarts: 1 },
      lastFailure: `rank 1 lost: engine ${D}-g1.a1.r1 on n2 exited`,
    });
    t.report('n1', [[`${D}-g1.a1.r0`, STOPPED]]);
    t.applier.reconcile();
    expect(t.sent('n1')).toHaveLength(2); // backoff
    t.clock.advance(1000);
    t.applier.reconcile();
    expect(t.sent('n1')).toEqual([`launch ${D}-g1.a1.r0`, `stop ${D}-g1.a1.r0`, `launch ${D}-g1.a2.r0`]);
  });

  it('a single-node engine that exited is being restarted by its worker: the group stays', () => {
    const t = setup({ gpusPerReplica: 8 });
    t.applier.start(60_000);
    t.join('n1');
    expect(t.sent('n1')).toEqual([`launch ${D}-n1`]);
    const launch = t.sessions.get('n1')?.sent[0]?.msg;
    expect(launch?.$case === 'launch' && launch.value.groupMember).toBeUndefined();
    t.report('n1', [[`${D}-n1`, READY]]);
    t.report('n1', [[`${D}-n1`, EXITED]]);
    t.report('n1', [[`${D}-n1`, STARTING]]);
    expect(t.sent('n1')).toEqual([`launch ${D}-n1`]);
    expect(t.applier.records()[0]?.group.state.t).toBe('ready');
  });

  it('hides a stale STOPPED report of a re-launched single-node id until the worker acts on the launch', () => {
    const t = setup({ gpusPerReplica: 8 });
    t.applier.start(60_000);
    t.join('n1');
    // The worker still lists the engine it stopped earlier under the same id when the launch is sent.
    t.report('n1', [[`${D}-n1`, STOPPED]]);
    expect(t.applier.records()[0]?.group.state.t).toBe('launching');
    t.report('n1', [[`${D}-n1`, STARTING]]);
    expect(t.applier.records()[0]?.group.state.t).toBe('loading');
  });

  it('stops an engine of its deployments that no group owns (a stale attempt), once per stream', () => {
    const t = setup({ tensorParallel: 8, pipelineParallel: 2 });
    t.applier.start(60_000);
    t.join('n1');
    t.report('n1', [
      [`${D}-g7.a3.r1`, READY],
      ['other-model-n1', READY],
    ]);
    t.report('n1', [
      [`${D}-g7.a3.r1`, READY],
      ['other-model-n1', READY],
    ]);
    expect(t.sent('n1')).toEqual([`stop ${D}-g7.a3.r1`]);
  });
});

describe('GroupApplier scale-down', () => {
  it('drains the newest group: out of routing at once, stopped when its leader runs no request', () => {
    let running = 1;
    const t = setup({ tensorParallel: 8, pipelineParallel: 2, replicas: 2 }, () => running);
    t.applier.start(60_000);
    for (const id of ['n1', 'n2', 'n3', 'n4']) t.join(id);
    t.report('n1', [[`${D}-g1.a1.r0`, READY]]);
    t.report('n2', [[`${D}-g1.a1.r1`, READY]]);
    t.report('n3', [[`${D}-g2.a1.r0`, READY]]);
    t.report('n4', [[`${D}-g2.a1.r1`, READY]]);
    expect(t.applier.records().map((r) => r.group.state.t)).toEqual(['ready', 'ready']);
    t.applier.setReplicas(D, 1);
    expect(t.applier.records().map((r) => r.group.state.t)).toEqual(['ready', 'draining']);
    expect(t.sent('n3')).toEqual([`launch ${D}-g2.a1.r0`]);
    running = 0;
    t.applier.reconcile();
    expect(t.applier.records().map((r) => r.group.state.t)).toEqual(['ready', 'stopped']);
    expect(t.sent('n3')).toEqual([`launch ${D}-g2.a1.r0`, `stop ${D}-g2.a1.r0`]);
    expect(t.sent('n4')).toEqual([`launch ${D}-g2.a1.r1`, `stop ${D}-g2.a1.r1`]);
    expect(t.lines).toContain(`group ${D}-g2: draining -> stopped (drained)`);
  });
});

describe('engine ids', () => {
  it.each([
    [`${D}-g12.a3.r1`, { groupId: `${D}-g12`, attempt: 3, rank: 1 }],
    [`${D}-n1`, undefined],
    [`${D}-g1.a1`, undefined],
    [`${D}x-g1.a1.r0`, undefined],
  ])('%s', (id, parsed) => {
    expect(parseRankEngineId(id, D)).toEqual(parsed);
  });

  it('a single-node id is <deployment>-<worker>', () => {
    expect(belongsTo(`${D}-n1`, D, 'n1')).toBe(true);
    expect(belongsTo(`${D}-n1`, D, 'n2')).toBe(false);
  });
});

/** A leadership the test hands out and takes away. */
function lease() {
  let epoch: number | undefined;
  const listeners: Array<() => void> = [];
  const leadership: Leadership = {
    id: 'ctl-a',
    epoch: () => epoch,
    leader: () => (epoch === undefined ? undefined : { id: 'ctl-a', epoch }),
    onChange: (l) => listeners.push(() => l({ t: 'elected', epoch: epoch ?? 0 })),
  };
  const set = (e: number | undefined) => {
    epoch = e;
    for (const l of listeners) l();
  };
  return { leadership, set };
}

describe('GroupApplier under leader election', () => {
  const BF16 = { tensorParallel: 8, pipelineParallel: 2, gpuType: 'h100-80g' };

  it('a follower sends nothing; once elected, its directives carry its epoch', () => {
    const l = lease();
    const t = setup(BF16, undefined, l.leadership);
    t.applier.start(60_000);
    t.join('n1');
    t.join('n2');
    expect(t.sent('n1')).toEqual([]);
    expect(t.applier.records()).toEqual([]);
    l.set(4);
    expect(t.sent('n1', true)).toEqual([`launch ${D}-g1.a1.r0 @4`]);
    expect(t.sent('n2', true)).toEqual([`launch ${D}-g1.a1.r1 @4`]);
  });

  it('a new leader adopts the running group (no relaunch) and heals it under its own epoch', () => {
    const l = lease();
    const t = setup(BF16, undefined, l.leadership);
    t.applier.start(60_000);
    t.join('n1');
    t.join('n2');
    // what the previous leader launched (attempt 2 of group 7) runs on both workers
    t.report('n1', [[`${D}-g7.a2.r0`, READY]]);
    t.report('n2', [[`${D}-g7.a2.r1`, READY]]);
    // a follower shows the groups as the workers report them
    expect(t.applier.records().map((r) => [r.group.id, r.group.state.t])).toEqual([[`${D}-g7`, 'ready']]);
    l.set(9);
    expect(t.sent('n1')).toEqual([]);
    expect(t.sent('n2')).toEqual([]);
    const [g] = t.applier.records();
    expect(g?.group).toMatchObject({ id: `${D}-g7`, attempt: 2, state: { t: 'ready' } });
    expect(t.lines).toContain('leading the group reconciler (epoch 9): adopted 1 groups');
    // a rank exits: the whole group is rebuilt by this leader, with the next attempt
    t.report('n2', [[`${D}-g7.a2.r1`, EXITED]]);
    expect(t.sent('n1', true)).toEqual([`stop ${D}-g7.a2.r0 @9`]);
    t.clock.advance(1000);
    t.report('n1', [[`${D}-g7.a2.r0`, STOPPED]]);
    t.report('n2', [[`${D}-g7.a2.r1`, STOPPED]]);
    expect(t.sent('n1', true)).toEqual([`stop ${D}-g7.a2.r0 @9`, `launch ${D}-g7.a3.r0 @9`]);
  });

  it('a partial group cannot be adopted: its rank is stopped, then a new group is formed past its ordinal', () => {
    const l = lease();
    const t = setup(BF16, undefined, l.leadership);
    t.applier.start(60_000);
    t.join('n1');
    t.join('n2');
    t.report('n1', [[`${D}-g3.a1.r0`, READY]]); // rank 1 of g3 is gone
    l.set(2);
    // n1's GPUs are held by the leftover rank until it stops: nothing is placed there before
    expect(t.sent('n1')).toEqual([`stop ${D}-g3.a1.r0`]);
    expect(t.sent('n2')).toEqual([]);
    t.report('n1', [[`${D}-g3.a1.r0`, STOPPED]]);
    expect(t.sent('n1')).toEqual([`stop ${D}-g3.a1.r0`, `launch ${D}-g4.a1.r0`]);
    expect(t.sent('n2')).toEqual([`launch ${D}-g4.a1.r1`]);
  });

  it('a rank whose peer registers late is kept settleMs and adopted when the peer shows up', () => {
    const l = lease();
    const t = setup(BF16, undefined, l.leadership, 5000);
    t.applier.start(60_000);
    t.join('n1');
    t.report('n1', [[`${D}-g5.a1.r0`, READY]]);
    t.join('n3'); // a free worker: still no room for a 2-node group beside n1's held GPUs
    t.clock.advance(5000); // past the settle time after start: the term begins
    l.set(2);
    t.clock.advance(4999);
    t.applier.reconcile();
    expect(t.sent('n1')).toEqual([]);
    t.join('n2', undefined, [[`${D}-g5.a1.r1`, READY]]);
    expect(t.applier.records().map((r) => [r.group.id, r.group.attempt, r.group.state.t])).toEqual([
      [`${D}-g5`, 1, 'ready'],
    ]);
    expect(t.lines).toContain(`group ${D}-g5: adopted (ready) from the workers' reports`);
    t.clock.advance(10_000);
    t.applier.reconcile();
    expect([...t.sent('n1'), ...t.sent('n2'), ...t.sent('n3')]).toEqual([]);
  });

  it('a leftover rank nobody completes is stopped once settleMs has passed', () => {
    const l = lease();
    const t = setup(BF16, undefined, l.leadership, 5000);
    t.applier.start(60_000);
    t.clock.advance(5000);
    l.set(2);
    t.join('n1');
    t.report('n1', [[`${D}-g5.a1.r0`, READY]]);
    t.clock.advance(4999);
    t.applier.reconcile();
    expect(t.sent('n1')).toEqual([]);
    t.clock.advance(1);
    t.applier.reconcile();
    expect(t.sent('n1')).toEqual([`stop ${D}-g5.a1.r0`]);
  });

  it('a deposed leader stops sending and forgets its groups; the next term adopts them again', () => {
    const l = lease();
    const t = setup(BF16, undefined, l.leadership);
    t.applier.start(60_000);
    l.set(1);
    t.join('n1');
    t.join('n2');
    expect(t.sent('n1')).toEqual([`launch ${D}-g1.a1.r0`]);
    l.set(undefined);
    t.report('n1', [[`${D}-g1.a1.r0`, EXITED]]);
    t.report('n2', [[`${D}-g1.a1.r1`, STARTING]]);
    expect(t.sent('n1')).toEqual([`launch ${D}-g1.a1.r0`]);
    expect(t.sent('n2')).toEqual([`launch ${D}-g1.a1.r1`]);
    expect(t.lines).toContain('no longer leading the group reconciler (epoch 1): groups left to the leader');
    t.report('n1', [[`${D}-g1.a1.r0`, STARTING]]);
    l.set(3);
    expect(t.applier.records().map((r) => [r.group.id, r.group.attempt, r.group.state.t])).toEqual([
      [`${D}-g1`, 1, 'loading'],
    ]);
    expect(t.sent('n1')).toEqual([`launch ${D}-g1.a1.r0`]);
  });
});
