/**
 * The launcher's decision, pure and level-triggered: from the deployments and what the workers report now (plus
 * launches sent but not yet reported), which engines to launch where and which to stop. Run it again on every
 * change; it converges instead of remembering what it did.
 *
 *   replicas(d) = engines of d on connected workers in STARTING | READY | EXITED (the worker restarts an EXITED
 *                 engine itself) + launches pending on connected workers
 *   free(w)     = gpus(w) - gpusPerReplica of every engine of a known deployment that holds GPUs
 *                 (STARTING | READY | EXITED | STOPPING) - pending launches
 * Short of replicas: launch on connected, non-draining workers without an engine of d (a FAILED one included: the
 * worker gave up there, a person reads why in `corral status`) and with enough free GPUs; the emptiest first,
 * then by worker id, one engine per worker per deployment. Over replicas (a lost worker came back after its
 * replacement was launched): stop the surplus, not-ready engines first.
 */
import { EngineState } from '../../proto/gen/corral/v1/worker.ts';
import type { Deployment } from '../config/controller-config.ts';
import { engineIdOf } from './engine-args.ts';

export interface LaunchWorkerView {
  workerId: string;
  connected: boolean;
  draining: boolean;
  gpuCount: number;
  engines: readonly { engineId: string; state: EngineState }[];
  /** Engine ids launched on the current stream whose launch the worker has not shown to take effect yet
   * (whatever state it reports for that id meanwhile may describe the engine being replaced). */
  pending: readonly string[];
}

export type LaunchAction =
  | { t: 'launch'; workerId: string; engineId: string; deployment: Deployment }
  | { t: 'stop'; workerId: string; engineId: string; reason: string };

const SERVING: ReadonlySet<EngineState> = new Set([
  EngineState.ENGINE_STATE_STARTING,
  EngineState.ENGINE_STATE_READY,
  EngineState.ENGINE_STATE_EXITED,
]);
const HOLDS_GPUS: ReadonlySet<EngineState> = new Set([...SERVING, EngineState.ENGINE_STATE_STOPPING]);
const OCCUPIES_SLOT: ReadonlySet<EngineState> = new Set([...HOLDS_GPUS, EngineState.ENGINE_STATE_FAILED]);

export function planLaunches(
  deployments: readonly Deployment[],
  workers: readonly LaunchWorkerView[],
): LaunchAction[] {
  const actions: LaunchAction[] = [];
  const byId = new Map<string, Deployment>();
  for (const d of deployments) for (const w of workers) byId.set(engineIdOf(d.name, w.workerId), d);

  const free = new Map<string, number>();
  const load = new Map<string, number>();
  for (const w of workers) {
    let used = 0;
    let count = 0;
    for (const e of w.engines) {
      const d = byId.get(e.engineId);
      if (d && HOLDS_GPUS.has(e.state)) {
        used += d.gpusPerReplica;
        count += 1;
      }
    }
    for (const id of w.pending) {
      const d = byId.get(id);
      const reported = w.engines.find((e) => e.engineId === id);
      if (d && !(reported && HOLDS_GPUS.has(reported.state))) {
        used += d.gpusPerReplica;
        count += 1;
      }
    }
    free.set(w.workerId, w.gpuCount - used);
    load.set(w.workerId, count);
  }

  for (const d of deployments) {
    const live: { workerId: string; engineId: string; ready: boolean; pending: boolean }[] = [];
    for (const w of workers) {
      if (!w.connected) continue;
      const id = engineIdOf(d.name, w.workerId);
      const e = w.engines.find((x) => x.engineId === id);
      if (e && SERVING.has(e.state))
        live.push({
          workerId: w.workerId,
          engineId: id,
          ready: e.state === EngineState.ENGINE_STATE_READY,
          pending: false,
        });
      else if (w.pending.includes(id))
        live.push({ workerId: w.workerId, engineId: id, ready: false, pending: true });
    }

    if (live.length > d.replicas) {
      const surplus = live
        .filter((r) => !r.pending)
        .sort((a, b) => Number(a.ready) - Number(b.ready) || b.workerId.localeCompare(a.workerId))
        .slice(0, live.length - d.replicas);
      for (const r of surplus)
        actions.push({
          t: 'stop',
          workerId: r.workerId,
          engineId: r.engineId,
          reason: `${d.name} has ${live.length} replicas, wants ${d.replicas}`,
        });
      continue;
    }

    let missing = d.replicas - live.length;
    if (missing <= 0) continue;
    const candidates = workers
      .filter((w) => {
        if (!w.connected || w.draining) return false;
        const id = engineIdOf(d.name, w.workerId);
        const e = w.engines.find((x) => x.engineId === id);
        if (e && OCCUPIES_SLOT.has(e.state)) return false;
        return !w.pending.includes(id);
      })
      .sort(
        (a, b) =>
          (load.get(a.workerId) ?? 0) - (load.get(b.workerId) ?? 0) ||
          (free.get(b.workerId) ?? 0) - (free.get(a.workerId) ?? 0) ||
          a.workerId.localeCompare(b.workerId),
      );
    for (const w of candidates) {
      if (missing === 0) break;
      const f = free.get(w.workerId) ?? 0;
      if (f < d.gpusPerReplica) continue;
      actions.push({
        t: 'launch',
        workerId: w.workerId,
        engineId: engineIdOf(d.name, w.workerId),
        deployment: d,
      });
      free.set(w.workerId, f - d.gpusPerReplica);
      load.set(w.workerId, (load.get(w.workerId) ?? 0) + 1);
      missing -= 1;
    }
  }
  return actions;
}
