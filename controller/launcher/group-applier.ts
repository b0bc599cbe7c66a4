/**
 * Applies the group reconciler (controller/groups/group-reconciler.ts) to the live cluster: on every registry
 * event and on a timer it builds a WorkerView per registered worker, calls reconcileGroups, logs every group
 * transition `OLD -> NEW` with its reason, and sends the LaunchEngine / StopEngine directives.
 *
 * Level-triggered: what it keeps is the groups (the reconciler's state), and per worker stream the launches the
 * worker has not yet shown to take effect; everything else is read again from the registry each time. An engine
 * of a deployment that belongs to no current group rank is stopped (leftover-engines.ts), once per stream.
 *
 * Only the replica holding the leader lease acts (leader/): every directive carries its epoch, which workers use
 * to ignore a deposed leader. A term begins by adopting the groups the workers report (groups/group-adoption.ts)
 * rather than relaunching them, and ends by forgetting them: the next leader adopts them in turn. Workers that
 * register later in the term bring their groups in too (they take pending groups' places), and a rank no group
 * owns is left running for settleMs, in case its peers are still registering. A follower's records() show the
 * groups as adoption would see them now.
 */
import type { Clock } from '../../common/clock.ts';
import type { Logger } from '../../common/log.ts';
import { EngineState } from '../../proto/gen/corral/v1/worker.ts';
import type { Deployment, GroupsConfig } from '../config/controller-config.ts';
import { adoptGroups, adoptIntoPending } from '../groups/group-adoption.ts';
import {
  type Directive,
  drained,
  type Group,
  type GroupPolicy,
  type GroupTemplate,
  type RankEngineState,
  reconcileGroups,
  type WorkerView,
} from '../groups/group-reconciler.ts';
import { ranksOf } from '../groups/group-state.ts';
import { type Leadership, soleLeadership } from '../leader/leader-elector.ts';
import type { WorkerRegistry } from '../registry/worker-registry.ts';
import { templateOf } from './group-template.ts';
import { HOLDS_PROCESS, LeftoverEngines } from './leftover-engines.ts';

const RANK_STATE: Partial<Record<EngineState, RankEngineState>> = {
  [EngineState.ENGINE_STATE_STARTING]: 'starting',
  [EngineState.ENGINE_STATE_READY]: 'ready',
  [EngineState.ENGINE_STATE_EXITED]: 'exited',
  [EngineState.ENGINE_STATE_FAILED]: 'failed',
  [EngineState.ENGINE_STATE_STOPPING]: 'stopped',
  [EngineState.ENGINE_STATE_STOPPED]: 'stopped',
};

// Only a state a launch can have produced proves the worker acted on it: a STOPPED report for the same id may
// describe the engine it replaces (a single-node group keeps its id on a worker).
const TOOK_EFFECT: ReadonlySet<EngineState> = new Set([
  EngineState.ENGINE_STATE_STARTING,
  EngineState.ENGINE_STATE_READY,
  EngineState.ENGINE_STATE_EXITED,
  EngineState.ENGINE_STATE_FAILED,
]);

interface SentOnSession {
  sessionId: number;
  launches: Set<string>;
  stops: Set<string>;
}

export interface GroupRecord {
  group: Group;
  /** The latest failure that took the group down (kept after it is rebuilt), for `corral status`. */
  lastFailure: string;
}

export class GroupApplier {
  private groups: Group[] = [];
  private nextOrdinal = 1;
  private readonly lastFailure = new Map<string, string>();
  private readonly sent = new Map<string, SentOnSession>();
  private readonly templates: GroupTemplate[];
  private readonly policy: GroupPolicy;
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  /** The epoch this replica leads under and `groups` belong to; undefined while following. */
  private term: number | undefined;
  private readonly leadership: Leadership;
  private readonly startedAt: number;
  private readonly leftovers: LeftoverEngines;

  constructor(
    private readonly deps: {
      deployments: readonly Deployment[];
      registry: WorkerRegistry;
      groups: GroupsConfig;
      clock: Clock;
      log: Logger;
      /** Requests running on an engine (the gateway's count): a draining group stops once its leader has none. */
      inFlight?: (engineId: string) => number;
      /** Who may send directives; default: this replica alone, always (epoch 0). */
      leadership?: Leadership;
      /** How long workers of a previous leader's groups may take to register here (default 0): a term after a
       * previous leader's (epoch > 1) that begins this soon after start waits until then to adopt, and an
       * unowned rank is stopped only after this long. */
      settleMs?: number;
    },
  ) {
    this.leadership = deps.leadership ?? soleLeadership('controller');
    this.startedAt = deps.clock.now();
    this.leftovers = new LeftoverEngines({
      deployments: deps.deployments,
      clock: deps.clock,
      graceMs: deps.settleMs ?? 0,
    });
    const g = deps.groups;
    this.policy = {
      maxRestarts: g.maxRestarts,
      backoffBaseMs: g.backoffBaseMs,
      backoffMaxMs: g.backoffMaxMs,
      startTimeoutMs: g.startTimeoutMs,
    };
    this.templates = deps.deployments.map((d) => templateOf(d, g.masterPortBase));
    for (const d of deps.deployments)
      if (d.planSummary)
        deps.log.info(`deployment ${d.name}: planned ${d.planSummary}`, { deployment: d.name });
  }

  /** Reconciles on every registry event and every `tickMs`. */
  start(tickMs: number): void {
    this.deps.registry.onEvent(() => this.reconcile());
    this.leadership.onChange(() => this.reconcile());
    this.timer = setInterval(() => this.reconcile(), tickMs);
    this.timer.unref();
    this.reconcile();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Groups wanted for a deployment from now on (the autoscaler's lever; the config gives the start value).
   * Scale-down drains the newest groups: they leave routing and stop once their leader runs no request. */
  setReplicas(deployment: string, replicas: number): void {
    const i = this.templates.findIndex((t) => t.deployment === deployment);
    const t = this.templates[i];
    if (!t) throw new RangeError(`no deployment ${deployment}`);
    this.templates[i] = { ...t, replicas };
    this.reconcile();
  }

  /** Every group this controller formed, oldest first, with its last failure; on a follower, the groups the
   * workers report (what the leader adopted or formed), without failures. */
  records(): GroupRecord[] {
    const groups =
      this.term !== undefined
        ? this.groups
        : adoptGroups({
            templates: this.templates,
            workers: this.views(),
            now: this.deps.clock.now(),
            nextOrdinal: 1,
          }).groups;
    return groups.map((group) => ({ group, lastFailure: this.lastFailure.get(group.id) ?? '' }));
  }

  reconcile(): Directive[] {
    // A directive sent from here reaches a session synchronously; a listener that re-enters would act on a
    // half-applied result.
    if (this.busy) return [];
    const epoch = this.leadership.epoch();
    if (epoch === undefined) {
      this.endTerm();
      return [];
    }
    // Between Hello and the first heartbeat a worker's engines are unknown: deciding then would take a group
    // whose worker reconnected after a blip for broken. The first heartbeat follows Hello at once, and a worker
    // that never sends one is dropped after workerTimeoutMs.
    if (this.deps.registry.all().some((r) => r.conn.t === 'connected' && !r.reported)) return [];
    const now = this.deps.clock.now();
    // Epoch 1 is the first leader ever (nothing to adopt); a later one may find groups of a previous leader.
    if (this.term !== epoch && epoch > 1 && now < this.startedAt + (this.deps.settleMs ?? 0)) return [];
    this.busy = true;
    try {
      if (this.term !== epoch) this.beginTerm(epoch);
      const workers = this.views();
      this.adoptLate(workers);
      const result = reconcileGroups({
        templates: this.templates,
        groups: this.groups,
        workers,
        policy: this.policy,
        now: this.deps.clock.now(),
        nextOrdinal: this.nextOrdinal,
      });
      const directives = [...result.directives];
      this.groups = result.groups.map((g) => {
        const leader = g.state.t === 'draining' ? g.state.ranks[0] : undefined;
        if (!leader || (this.deps.inFlight?.(leader.engineId) ?? 0) > 0) return g;
        const done = drained(g, this.deps.clock.now());
        result.events.push({ groupId: g.id, from: 'draining', to: 'stopped', reason: 'drained' });
        directives.push(...done.directives);
        return done.group;
      });
      for (const g of this.groups) this.nextOrdinal = Math.max(this.nextOrdinal, g.ordinal + 1);
      for (const e of result.events) {
        const broken = e.from !== 'new' && (e.to === 'pending' || e.to === 'failed');
        if (broken) this.lastFailure.set(e.groupId, e.reason);
        const level = broken ? 'warn' : 'info';
        this.deps.log[level](`group ${e.groupId}: ${e.from} -> ${e.to} (${e.reason})`, {
          groupId: e.groupId,
          from: e.from,
          to: e.to,
          reason: e.reason,
        });
      }
      directives.push(...this.leftovers.toStop(this.deps.registry.all(), this.owned()));
      for (const d of directives) this.apply(d);
      return directives;
    } finally {
      this.busy = false;
    }
  }

  /** A new term: what the previous leader (or this replica's previous term) sent is not ours to track. */
  private beginTerm(epoch: number): void {
    this.sent.clear();
    this.lastFailure.clear();
    const adopted = adoptGroups({
      templates: this.templates,
      workers: this.views(),
      now: this.deps.clock.now(),
      nextOrdinal: this.nextOrdinal,
    });
    this.groups = adopted.groups;
    this.nextOrdinal = adopted.nextOrdinal;
    this.term = epoch;
    this.deps.log.info(
      `leading the group reconciler (epoch ${epoch}): adopted ${adopted.groups.length} groups`,
      {
        epoch,
        adopted: adopted.groups.map((g) => `${g.id} (${g.state.t})`),
      },
    );
  }

  /** Complete groups reported by workers that registered after the term began take pending groups' places. */
  private adoptLate(workers: WorkerView[]): void {
    const late = adoptIntoPending({
      groups: this.groups,
      templates: this.templates,
      workers,
      exclude: new Set([...this.sent.values()].flatMap((s) => [...s.stops])),
      now: this.deps.clock.now(),
      nextOrdinal: this.nextOrdinal,
    });
    this.groups = late.groups;
    this.nextOrdinal = late.nextOrdinal;
    for (const g of late.adopted)
      this.deps.log.info(`group ${g.id}: adopted (${g.state.t}) from the workers' reports`, {
        groupId: g.id,
      });
  }

  private endTerm(): void {
    if (this.term === undefined) return;
    this.deps.log.warn(
      `no longer leading the group reconciler (epoch ${this.term}): groups left to the leader`,
      {
        epoch: this.term,
      },
    );
    this.term = undefined;
    this.groups = [];
    this.sent.clear();
  }

  private views(): WorkerView[] {
    const out: WorkerView[] = [];
    const owned = this.owned();
    for (const r of this.deps.registry.all()) {
      const sessionId = r.conn.t === 'connected' ? r.conn.sessionId : undefined;
      let sent = this.sent.get(r.workerId);
      if (sent && sent.sessionId !== sessionId) {
        this.sent.delete(r.workerId);
        sent = undefined;
      }
      const engines = new Map<string, { state: RankEngineState; detail?: string }>();
      for (const e of r.engines) {
        if (sent) {
          if (TOOK_EFFECT.has(e.state)) sent.launches.delete(e.engineId);
          if (!HOLDS_PROCESS.has(e.state)) sent.stops.delete(e.engineId);
          // Launched on this stream, not yet acted on: what it reports describes the engine it replaces.
          if (sent.launches.has(e.engineId)) continue;
        }
        const state = RANK_STATE[e.state];
        if (state) engines.set(e.engineId, { state, ...(e.detail ? { detail: e.detail } : {}) });
      }
      out.push({
        id: r.workerId,
        live: r.conn.t === 'connected',
        draining: r.draining,
        // a rank no group owns still holds its GPUs until it stops (or is adopted)
        gpus: (r.inventory.gpus?.count ?? 0) - this.leftovers.heldGpus(r.engines, owned),
        gpuType: (r.inventory.gpus?.type ?? '').toLowerCase(),
        engineHost: r.inventory.engineHost,
        labels: r.inventory.labels,
        engines,
      });
    }
    return out;
  }

  private owned(): Set<string> {
    return new Set(this.groups.flatMap((g) => ranksOf(g.state).map((r) => r.engineId)));
  }

  private sentFor(workerId: string): SentOnSession | undefined {
    const sessionId = this.deps.registry.sessionOf(workerId);
    if (sessionId === undefined) return undefined;
    let s = this.sent.get(workerId);
    if (!s || s.sessionId !== sessionId) {
      s = { sessionId, launches: new Set(), stops: new Set() };
      this.sent.set(workerId, s);
    }
    return s;
  }

  private apply(d: Directive): void {
    const epoch = this.term;
    // deposed (or the term ran out) since this reconcile began: the new leader decides now
    if (epoch === undefined || this.leadership.epoch() !== epoch) return;
    const sent = this.sentFor(d.workerId);
    if (!sent) return;
    const log = this.deps.log;
    if (d.t === 'launch') {
      log.info('launching engine', { workerId: d.workerId, engineId: d.engineId, args: d.args });
      const ok = this.deps.registry.send(d.workerId, {
        epoch,
        msg: {
          $case: 'launch',
          value: {
            engineId: d.engineId,
            model: d.model,
            args: d.args,
            env: d.env,
            gpus: d.gpus,
            headless: d.headless,
            ...(d.groupMember ? { groupMember: true } : {}),
          },
        },
      });
      if (ok) {
        sent.launches.add(d.engineId);
        sent.stops.delete(d.engineId);
      }
      return;
    }
    if (sent.stops.has(d.engineId)) return;
    log.info('stopping engine', { workerId: d.workerId, engineId: d.engineId });
    if (
      this.deps.registry.send(d.workerId, {
        epoch,
        msg: { $case: 'stop', value: { engineId: d.engineId, graceMs: 0 } },
      })
    ) {
      sent.stops.add(d.engineId);
      sent.launches.delete(d.engineId);
    }
  }
}
