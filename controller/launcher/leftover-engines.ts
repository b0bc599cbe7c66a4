/**
 * Engines of our deployments that no current group rank owns: ranks of a torn-down attempt, a stop lost with a
 * stream, or a previous leader's groups not adopted (yet). Each is stopped; a running rank first gets graceMs,
 * because the workers holding its peers may not have registered with this leader yet, and then its group is
 * adopted instead. Until it stops, a running rank still holds its GPUs: placement must not count them as free,
 * or a new group's launch there would fail for want of GPUs.
 */
import type { Clock } from '../../common/clock.ts';
import { EngineState, type EngineStatus } from '../../proto/gen/corral/v1/worker.ts';
import type { Deployment } from '../config/controller-config.ts';
import type { Directive } from '../groups/group-reconciler.ts';
import type { WorkerRecord } from '../registry/worker-registry.ts';
import { belongsTo, parseRankEngineId } from './engine-args.ts';

const RUNNING: ReadonlySet<EngineState> = new Set([
  EngineState.ENGINE_STATE_STARTING,
  EngineState.ENGINE_STATE_READY,
]);

/** States in which the worker still has a process for the engine (EXITED: a restart in progress). */
export const HOLDS_PROCESS: ReadonlySet<EngineState> = new Set([
  EngineState.ENGINE_STATE_STARTING,
  EngineState.ENGINE_STATE_READY,
  EngineState.ENGINE_STATE_EXITED,
]);

export class LeftoverEngines {
  /** When each unowned engine (`worker/engine`) was first seen. */
  private readonly since = new Map<string, number>();

  constructor(private readonly deps: { deployments: readonly Deployment[]; clock: Clock; graceMs: number }) {}

  /** GPUs held on one worker by running ranks that no group owns. */
  heldGpus(engines: readonly EngineStatus[], owned: ReadonlySet<string>): number {
    return engines.reduce((sum, e) => sum + this.rankGpus(e, owned), 0);
  }

  /** Stop directives for the leftovers past their grace, among the connected workers that reported. */
  toStop(workers: readonly WorkerRecord[], owned: ReadonlySet<string>): Directive[] {
    const now = this.deps.clock.now();
    const seen = new Set<string>();
    const out: Directive[] = [];
    for (const r of workers) {
      if (r.conn.t !== 'connected' || !r.reported) continue;
      for (const e of r.engines) {
        if (owned.has(e.engineId) || !HOLDS_PROCESS.has(e.state)) continue;
        if (!this.deps.deployments.some((d) => belongsTo(e.engineId, d.name, r.workerId))) continue;
        const key = `${r.workerId}/${e.engineId}`;
        seen.add(key);
        const since = this.since.get(key) ?? now;
        this.since.set(key, since);
        if (this.rankGpus(e, owned) > 0 && now - since < this.deps.graceMs) continue;
        out.push({ t: 'stop', workerId: r.workerId, engineId: e.engineId });
      }
    }
    for (const key of this.since.keys()) if (!seen.has(key)) this.since.delete(key);
    return out;
  }

  /** The deployment's GPUs per node for a running rank engine no group owns; 0 for any other engine. */
  private rankGpus(e: EngineStatus, owned: ReadonlySet<string>): number {
    if (owned.has(e.engineId) || !RUNNING.has(e.state)) return 0;
    return this.deps.deployments.find((d) => parseRankEngineId(e.engineId, d.name))?.gpusPerNode ?? 0;
  }
}
