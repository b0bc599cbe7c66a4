/**
 * Applies planLaunches: on every registry event (and on a slow tick, so nothing depends on an event being seen)
 * it builds the workers' view, plans, and sends LaunchEngine / StopEngine directives through the registry.
 * Its only memory is what it sent on each worker's current stream and the worker has not reported yet; a new
 * stream starts from what the worker reports, which is what makes the decision level-triggered.
 */
import type { Logger } from '../../common/log.ts';
import { EngineState } from '../../proto/gen/corral/v1/worker.ts';
import type { Deployment } from '../config/controller-config.ts';
import type { WorkerRegistry } from '../registry/worker-registry.ts';
import { engineArgs } from './engine-args.ts';
import { type LaunchAction, type LaunchWorkerView, planLaunches } from './launch-plan.ts';

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

export class Launcher {
  private readonly sent = new Map<string, SentOnSession>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly deps: {
      deployments: readonly Deployment[];
      registry: WorkerRegistry;
      log: Logger;
    },
  ) {}

  /** Reconciles on every registry event and every `tickMs`. */
  start(tickMs: number): void {
    this.deps.registry.onEvent(() => this.reconcile());
    this.timer = setInterval(() => this.reconcile(), tickMs);
    this.timer.unref();
    this.reconcile();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  reconcile(): LaunchAction[] {
    // Between Hello and the first heartbeat a worker's engines are unknown; planning then would re-launch
    // engines it already runs (a reconnect after a network blip). Its first heartbeat follows Hello at once, and
    // a worker that never sends one is dropped after workerTimeoutMs.
    if (this.deps.registry.all().some((r) => r.conn.t === 'connected' && !r.reported)) return [];
    const views = this.views();
    const actions = planLaunches(this.deps.deployments, views);
    for (const a of actions) this.apply(a);
    return actions;
  }

  private views(): LaunchWorkerView[] {
    const out: LaunchWorkerView[] = [];
    for (const r of this.deps.registry.all()) {
      const sessionId = r.conn.t === 'connected' ? r.conn.sessionId : undefined;
      let sent = this.sent.get(r.workerId);
      if (sent && sent.sessionId !== sessionId) {
        this.sent.delete(r.workerId);
        sent = undefined;
      }
      if (sent) {
        for (const e of r.engines) {
          // Only a state the launch can have produced proves the worker acted on it: a STOPPED or STOPPING
          // report may describe the engine it is replacing, and re-launching on that would loop.
          if (TOOK_EFFECT.has(e.state)) sent.launches.delete(e.engineId);
          const stillServing =
            e.state === EngineState.ENGINE_STATE_STARTING ||
            e.state === EngineState.ENGINE_STATE_READY ||
            e.state === EngineState.ENGINE_STATE_EXITED;
          if (!stillServing) sent.stops.delete(e.engineId);
        }
      }
      out.push({
        workerId: r.workerId,
        connected: r.conn.t === 'connected',
        draining: r.draining,
        gpuCount: r.inventory.gpus?.count ?? 0,
        engines: r.engines.map((e) => ({ engineId: e.engineId, state: e.state })),
        pending: sent ? [...sent.launches] : [],
      });
    }
    return out;
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

  private apply(a: LaunchAction): void {
    const sent = this.sentFor(a.workerId);
    if (!sent) return;
    if (a.t === 'launch') {
      const d = a.deployment;
      const args = engineArgs(d);
      this.deps.log.info('launching engine', {
        workerId: a.workerId,
        engineId: a.engineId,
        deployment: d.name,
        args,
      });
      const ok = this.deps.registry.send(a.workerId, {
        msg: {
          $case: 'launch',
          value: {
            engineId: a.engineId,
            model: d.model,
            args,
            env: { ...d.engineEnv },
            gpus: d.gpusPerReplica,
            headless: false,
          },
        },
      });
      if (ok) sent.launches.add(a.engineId);
      return;
    }
    if (sent.stops.has(a.engineId)) return;
    this.deps.log.info('stopping surplus engine', {
      workerId: a.workerId,
      engineId: a.engineId,
      reason: a.reason,
    });
    if (
      this.deps.registry.send(a.workerId, {
        msg: { $case: 'stop', value: { engineId: a.engineId, graceMs: 0 } },
      })
    )
      sent.stops.add(a.engineId);
  }
}
