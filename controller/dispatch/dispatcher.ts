/**
 * One deployment's dispatcher: takes requests from its Redis queue only when a ready group has room
 * (room.ts), several per take, so requests wait in the queue where priority and fairness act, and runs each
 * on the group scheduler.pick chooses (request-run.ts), holding its lease while it runs. With DispatchRouting
 * the pick is prefix- and load-aware: each taken request's prompt blocks are computed first (dispatch-routing.ts).
 *
 * The loop sleeps until something can change the answer: an arrival (ArrivalSignal, from any controller), a
 * run ending or a heartbeat (wake()), or the maintenance tick (lapsed leases of dead controllers, deadlines
 * of queued requests: RequestQueue.maintain()).
 * A run ending opens room, but when the queue is known to hold nothing ready the loop does not take
 * (drained-queue.ts).
 * How a run ends decides how its queue entry is settled (run-settlement.ts).
 * A deployment with no ready or starting group for noGroupGraceMs fails what waits for it with UNAVAILABLE
 * instead of holding it until its deadline (the gateway already refuses new requests then).
 */
import type { Clock } from '../../common/clock.ts';
import { type CorralError, UnavailableError } from '../../common/errors.ts';
import type { Logger } from '../../common/log.ts';
import type { Deployment } from '../config/controller-config.ts';
import { type DeploymentView, deploymentView, explainReadiness } from '../deployments/replica-view.ts';
import type { RequestTable } from '../gateway/request-table.ts';
import type { WorkerClients } from '../gateway/worker-clients.ts';
import type { ArrivalSignal } from '../queue/arrival-signal.ts';
import { LeaseKeeper } from '../queue/lease-keeper.ts';
import type { LiveFeed } from '../queue/live-feed.ts';
import type { RequestQueue, SubmitOutcome, SubmitRequest, TakenRequest } from '../queue/request-queue.ts';
import type { StreamLog } from '../queue/stream-log.ts';
import type { WorkerRecord, WorkerRegistry } from '../registry/worker-registry.ts';
import { type GroupView, pick, type RouteRequest } from '../scheduler/pick.ts';
import { shareParsedBody } from './attempt-plan.ts';
import type { DispatchRouting } from './dispatch-routing.ts';
import { DrainedQueue } from './drained-queue.ts';
import { type RunDeps, type RunEnd, runAttempt } from './request-run.ts';
import { type Round, roundOf } from './room.ts';
import { RunSettlement, type StopReason } from './run-settlement.ts';

export interface DispatcherDeps {
  deployment: Deployment;
  queue: RequestQueue;
  log: StreamLog;
  signal: ArrivalSignal;
  registry: WorkerRegistry;
  requests: RequestTable;
  workers: WorkerClients;
  clock: Clock;
  random: () => number;
  logger: Logger;
  /** This controller's name in the queue's leases. */
  owner: string;
  /** How long a deployment may have no ready or starting group before its waiting requests fail. */
  noGroupGraceMs: number;
  /** At most this many requests per take. Default 64. */
  maxPerTake?: number;
  /** Prefix- and load-aware routing (absent: least outstanding, without prompt blocks). */
  routing?: DispatchRouting;
  /** Where runs here publish their events for the clients this process streams (absent: the log only). */
  live?: LiveFeed;
  /** The queue's admission bound (queue.maxWaitMs): first dispatches that waited longer are counted. */
  maxWaitMs?: number;
}

interface Run {
  engineId: string;
  stop(reason: StopReason): void;
  /** stop() was called: the run is ending. */
  stopped(): boolean;
  done: Promise<void>;
}

export class Dispatcher {
  private readonly keeper: LeaseKeeper;
  private readonly runs = new Map<string, Run>();
  private readonly settlement: RunSettlement;
  /** What runs here need: the Finished's append also finishes the request in the queue (one round trip). */
  private readonly runDeps: RunDeps;
  private wakeGeneration = 0;
  private wakeWaiters = new Set<() => void>();
  private stopping = false;
  private loopDone: Promise<void> | undefined;
  private noGroupSince: number | undefined;
  private slots = 0;
  private pastBound = 0;
  /** Room submit() is taking for a request, not yet launched. */
  private claimed = 0;
  private readonly unsubscribeCancel: () => void;
  private readonly maintainEveryMs: number;
  private readonly drained: DrainedQueue;

  constructor(private readonly deps: DispatcherDeps) {
    const log = deps.logger;
    this.keeper = new LeaseKeeper(
      deps.queue,
      deps.owner,
      {
        lost: (id) => this.runs.get(id)?.stop({ t: 'lost' }),
        cancelRequested: (id) => this.runs.get(id)?.stop({ t: 'cancel' }),
      },
      log,
    );
    this.unsubscribeCancel = deps.signal.onCancel((id) => this.runs.get(id)?.stop({ t: 'cancel' }));
    this.maintainEveryMs = Math.max(50, Math.min(1000, Math.floor(deps.queue.leaseMs / 2)));
    this.drained = new DrainedQueue(this.maintainEveryMs);
    this.settlement = new RunSettlement(deps.queue, deps.owner, log);
    this.runDeps = { ...deps, finishAs: { owner: deps.owner, retainMs: deps.queue.retainMs } };
  }

  start(): void {
    this.keeper.start();
    this.loopDone ??= this.loop();
  }

  /**
   * Something changed (a heartbeat, a submit here that did not take its request): look again now, with a take
   * even when the queue was drained (a heartbeat's take also hands back lapsed leases before the maintenance).
   */
  wake(): void {
    this.drained.forget();
    this.roomOpened();
  }

  /** A run here ended: its room is free for what waits in the queue, if anything does. */
  private roomOpened(): void {
    this.wakeGeneration += 1;
    const waiters = this.wakeWaiters;
    this.wakeWaiters = new Set();
    for (const w of waiters) w();
  }

  /** Requests running here now. */
  get running(): number {
    return this.runs.size;
  }

  /**
   * Ends runs whose group left routing (a rank's worker lost, the engine gone): a group with a lost rank
   * hangs instead of failing its streams, so waiting for the stream to break could take minutes. A draining
   * group is not routed new requests but finishes the ones it runs (that is what draining waits for).
   */
  checkGroups(): void {
    if (this.runs.size === 0) return;
    const view = this.view();
    let undrained: DeploymentView | undefined;
    for (const [, run] of this.runs) {
      const r = view.replicas.find((x) => x.engineId === run.engineId);
      if (r?.routable) continue;
      if (r) {
        undrained ??= this.view((w) => ({ ...w, draining: false }));
        if (undrained.replicas.find((x) => x.engineId === run.engineId)?.routable) continue;
      }
      run.stop({ t: 'release', why: r ? r.why : `${run.engineId} is no longer reported` });
    }
  }

  /** Stops taking; lets runs finish for graceMs, then hands the rest back to the queue for another owner. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    this.wake();
    await this.loopDone;
    const all = Promise.all([...this.runs.values()].map((r) => r.done));
    const timer = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), graceMs).unref());
    if (!(await Promise.race([all.then(() => true), timer])))
      for (const r of this.runs.values()) r.stop({ t: 'shutdown' });
    await all;
    this.unsubscribeCancel();
    await this.keeper.stop();
  }

  private view(adjust: (w: WorkerRecord) => WorkerRecord = (w) => w): DeploymentView {
    const workers = this.deps.registry.all().map(adjust);
    return deploymentView(this.deps.deployment, workers, this.deps.clock.now());
  }

  private async loop(): Promise<void> {
    const { queue, signal, logger } = this.deps;
    let lastMaintain = 0;
    let failures = 0;
    while (!this.stopping) {
      const seenArrivals = signal.generation;
      const seenWakes = this.wakeGeneration;
      let took = 0;
      try {
        took = await this.dispatchOnce();
        const now = this.deps.clock.now();
        if (now - lastMaintain >= this.maintainEveryMs) {
          lastMaintain = now;
          if ((await queue.maintain()).leasesReclaimed > 0) this.drained.forget();
        }
        failures = 0;
      } catch (e) {
        failures += 1;
        logger.warn('dispatch round failed', { error: e as Error, failures });
        await new Promise((r) => setTimeout(r, Math.min(1000, 50 * 2 ** Math.min(failures, 5))));
        continue;
      }
      if (took > 0 || this.stopping) continue;
      await this.sleep(seenArrivals, seenWakes, this.maintainEveryMs);
    }
  }

  private sleep(seenArrivals: number, seenWakes: number, timeoutMs: number): Promise<unknown> {
    if (this.wakeGeneration > seenWakes) return Promise.resolve();
    let done: () => void = () => {};
    const woken = new Promise<void>((resolve) => {
      done = resolve;
      this.wakeWaiters.add(resolve);
    });
    return Promise.race([this.deps.signal.after(seenArrivals, timeoutMs), woken]).finally(() =>
      this.wakeWaiters.delete(done),
    );
  }

  /** Sequences the ready groups held at the last dispatch round: the queue's drain estimate before it has one. */
  readySlots(): number {
    return this.slots;
  }

  /** First dispatches that had waited longer than the admission bound: served all the same, but shedding missed. */
  dispatchedPastBound(): number {
    return this.pastBound;
  }

  /** One take of as many requests as the ready groups have room for. Returns how many were taken. */
  private async dispatchOnce(): Promise<number> {
    const view = this.view();
    this.deps.routing?.observeGroups(view);
    this.slots = view.replicas.filter((r) => r.routable).length * this.deps.deployment.maxNumSeqs;
    const round = this.round(view);
    if (!round) return this.failUnserved(view);
    this.noGroupSince = undefined;
    const total = Math.min(round.total, this.deps.maxPerTake ?? 64);
    const generation = this.deps.signal.generation;
    if (total <= 0 || this.drained.nothingReady(generation, this.deps.clock.now())) return 0;
    const taken = await this.keeper.take(total, this.deps.clock);
    // Fewer than asked: nothing more was ready (a lease lost during a slow take shortens it too: then a take
    // is skipped until the next arrival or maintainEveryMs).
    this.drained.saw(generation, this.deps.clock.now(), taken.length < total ? 0 : 1);
    this.countPastBound(taken);
    this.launchAll(taken, await this.routesOf(taken), view, round);
    return taken.length;
  }

  /**
   * Submits a request this controller's gateway accepted. When a ready group has room now, the same script
   * takes the queue's next request for this dispatcher (RequestQueue.submit with takeFor): most often this
   * one, which then starts with one Redis round trip instead of submit, PUBLISH, take; its prompt blocks are
   * computed while the script runs. Otherwise (no room, or others waited ahead) it waits in the queue and the
   * loop is woken, as for any arrival. Priority and fairness are the queue's either way (the take's order).
   */
  async submit(req: SubmitRequest): Promise<SubmitOutcome> {
    const { queue, owner, clock } = this.deps;
    const room = this.stopping || !this.loopDone ? undefined : this.round(this.view());
    if (!room || room.total <= 0) {
      const outcome = await queue.submit(req);
      if (outcome.t === 'enqueued') this.wake();
      return outcome;
    }
    const generation = this.deps.signal.generation;
    const route = this.deps.routing?.routeOf(req);
    // Counted against the loop's takes until launched, so the loop and this never fill the same room twice.
    this.claimed += 1;
    let taken: TakenRequest[];
    let routes: RouteRequest[];
    try {
      const sent = clock.now();
      const outcome = await queue.submit(req, owner);
      if (outcome.t !== 'enqueued') return outcome;
      const ours = outcome.taken?.some((t) => t.id === req.id) ?? false;
      this.drained.saw(generation, clock.now(), ours ? (outcome.readyLeft ?? 1) : 1);
      taken = await this.keeper.renewIfSlow(outcome.taken ?? [], clock.now() - sent);
      this.countPastBound(taken);
      routes = await this.routesOf(taken, (t) => {
        if (t.id !== req.id) return undefined;
        shareParsedBody(req, t); // routeOf(req) parsed it: the run reads the same parse
        return route;
      });
    } finally {
      this.claimed -= 1;
    }
    if (this.stopping) {
      for (const t of taken) await queue.release(owner, t.id, 'controller shutting down');
      return { t: 'enqueued' };
    }
    // The room as it is now (the loop may have filled some meanwhile); none left: launch hands it back.
    const view = this.view();
    this.launchAll(taken, routes, view, this.round(view) ?? { groups: [], room: new Map(), total: 0 });
    if (!taken.some((t) => t.id === req.id)) this.wake();
    return { t: 'enqueued' };
  }

  /** The round's groups and room, less what submit() claimed; undefined when no group will serve. */
  private round(view: DeploymentView): Round | undefined {
    const r = roundOf(view, this.deps.deployment.maxNumSeqs, (id) => this.deps.requests.outstanding(id));
    if (pick({ groups: r.groups }, { deployment: view.deployment.name }, this.deps.random).type === 'reject')
      return undefined;
    return { ...r, total: r.total - this.claimed };
  }

  /** What pick needs of each taken request (`routed`: a route already on its way for a request). */
  private async routesOf(
    taken: readonly TakenRequest[],
    routed: (t: TakenRequest) => Promise<RouteRequest> | undefined = () => undefined,
  ): Promise<RouteRequest[]> {
    const routing = this.deps.routing;
    const d = this.deps.deployment.name;
    if (!routing) return taken.map(() => ({ deployment: d }));
    return Promise.all(taken.map((t) => routed(t) ?? routing.routeOf(t)));
  }

  /** Counts the first dispatches of what a take handed out that waited past the admission bound. */
  private countPastBound(taken: readonly TakenRequest[]): void {
    const bound = this.deps.maxWaitMs;
    if (bound === undefined) return;
    const now = this.deps.clock.now();
    for (const t of taken) if (t.attempt === 1 && now - t.submittedAt > bound) this.pastBound += 1;
  }

  /** Starts what a take handed out, each on the group its route picks among the round's room. */
  private launchAll(
    taken: readonly TakenRequest[],
    routes: readonly RouteRequest[],
    view: DeploymentView,
    round: Round,
  ): void {
    taken.forEach((t, i) => {
      this.launch(t, view, round.groups, round.room, routes[i] ?? { deployment: view.deployment.name });
    });
  }

  /** Picks the group for a taken request and starts its run. */
  private launch(
    t: TakenRequest,
    view: DeploymentView,
    groups: GroupView[],
    room: Map<string, number>,
    route: RouteRequest,
  ): void {
    const { deployment: d, requests, logger, queue, owner } = this.deps;
    // Taken again while it runs here: its lease ran out under the run (the renewals were held up, e.g. while
    // Redis was away) and the queue handed it back to this very dispatcher. The lease is ours again: the run
    // goes on under it. Handing it back instead cost an attempt each time, and the next takes (at once, here)
    // failed a request that was running fine.
    const running = this.runs.get(t.id);
    if (running && !running.stopped()) {
      this.keeper.hold(t.id);
      logger.info('taken again while running here; the run goes on', { requestId: t.id, attempt: t.attempt });
      return;
    }
    const avoid = this.settlement.failedOn(t.id);
    const open = (g: GroupView) => g.state === 'ready' && (room.get(g.id) ?? 0) > 0;
    let candidates = groups.filter((g) => open(g) && !avoid?.has(g.id));
    if (candidates.length === 0) candidates = groups.filter(open);
    const routing = this.deps.routing;
    const choice = routing
      ? routing.pick(candidates, route, t.id)
      : pick({ groups: candidates }, route, this.deps.random);
    const replica = choice.type === 'group' ? view.replicas.find((r) => r.engineId === choice.id) : undefined;
    if (!replica || this.runs.has(t.id) || requests.has(t.id)) {
      // No room left after all (or an earlier run of this id still winding down): hand it straight back.
      const why = !replica
        ? `no room at dispatch (${choice.type === 'group' ? choice.id : choice.reason})`
        : 'no room at dispatch (an earlier run of it is still ending here)';
      logger.warn('taken request handed straight back', { requestId: t.id, attempt: t.attempt, why });
      this.drained.forget();
      routing?.ended(t.id);
      void queue.release(owner, t.id, why).catch(() => {});
      return;
    }
    room.set(replica.engineId, (room.get(replica.engineId) ?? 1) - 1);
    const g = groups.find((x) => x.id === replica.engineId);
    if (g) g.outstanding += 1;

    const abort = new AbortController();
    let reason: StopReason | undefined;
    const stop = (r: StopReason) => {
      reason ??= r;
      abort.abort();
    };
    const ticket = requests.add({
      requestId: t.id,
      deployment: d.name,
      abort: (error: CorralError) => stop({ t: 'release', why: error.message }),
    });
    ticket.assign(replica.engineId, replica.workerId);
    this.keeper.hold(t.id);
    const log = logger.child({ requestId: t.id, engineId: replica.engineId, attempt: t.attempt });
    log.info('dispatch', { tenant: t.tenant, cls: t.cls, why: choice.type === 'group' ? choice.reason : '' });
    const target = {
      engineId: replica.engineId,
      workerAddress: replica.workerAddress,
      ...(routing ? { onFirstToken: () => routing.firstToken(t.id) } : {}),
    };
    const done = runAttempt(this.runDeps, t, target, abort.signal)
      .catch((e: unknown): RunEnd => ({ t: 'retry', why: e instanceof Error ? e.message : String(e) }))
      .then((end) => {
        // Forgotten here before it is settled: a request handed back may be taken again at once (by this
        // loop too), and must not find its old run still registered.
        this.keeper.drop(t.id);
        routing?.ended(t.id);
        ticket.release();
        this.runs.delete(t.id);
        // Anything but its end goes back to the queue (handed back) or may: a take must look for it.
        if (end.t !== 'finished' && end.t !== 'failed') this.drained.forget();
        return this.settlement.settle(t, replica.engineId, end, reason);
      })
      .catch((e: unknown) => log.warn('settling a request failed', { error: e as Error }))
      .finally(() => this.roomOpened());
    this.runs.set(t.id, { engineId: replica.engineId, stop, stopped: () => reason !== undefined, done });
  }

  /** No group will serve this deployment: after the grace, fail what waits with the reason. */
  private async failUnserved(view: DeploymentView): Promise<number> {
    const now = this.deps.clock.now();
    this.noGroupSince ??= now;
    if (now - this.noGroupSince < this.deps.noGroupGraceMs) return 0;
    const { queue, owner, deployment: d } = this.deps;
    const taken = await queue.take(owner, this.deps.maxPerTake ?? 64);
    const error = new UnavailableError(`no ready replica of model ${d.name} (${explainReadiness(view)})`);
    for (const t of taken) await queue.fail(owner, t.id, error.code, error.message);
    return taken.length;
  }
}
