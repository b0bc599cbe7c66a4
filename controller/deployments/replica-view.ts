/**
 * Where each deployment stands, read from the registry: its engines with their worker, state and why, how many
 * are ready, and a one-line explanation for an operator or a refused client ("0 of 2 ready: ..."). Pure over
 * the registry's records, so the gateway, Control.Status and ListModels agree on what "ready" means.
 */
import { EngineState, type EngineStatus } from '../../proto/gen/corral/v1/worker.ts';
import type { Deployment } from '../config/controller-config.ts';
import { engineIdOf } from '../launcher/engine-args.ts';
import type { WorkerRecord } from '../registry/worker-registry.ts';

const PLACED: ReadonlySet<EngineState> = new Set([
  EngineState.ENGINE_STATE_STARTING,
  EngineState.ENGINE_STATE_READY,
  EngineState.ENGINE_STATE_EXITED,
]);

export interface ReplicaView {
  engineId: string;
  workerId: string;
  /** host:port of the worker's Worker service. */
  workerAddress: string;
  status: EngineStatus;
  /** READY on a connected, non-draining worker. */
  routable: boolean;
  /** Why not routable (empty when routable). */
  why: string;
  /** Counts toward the desired replicas: on a connected worker and starting, ready or restarting. */
  placed: boolean;
}

export interface DeploymentView {
  deployment: Deployment;
  replicas: ReplicaView[];
  ready: number;
  desired: number;
}

export function deploymentView(
  d: Deployment,
  workers: readonly WorkerRecord[],
  nowMs: number,
): DeploymentView {
  const replicas: ReplicaView[] = [];
  for (const w of workers) {
    const id = engineIdOf(d.name, w.workerId);
    const status = w.engines.find((e) => e.engineId === id);
    if (!status) continue;
    let why = '';
    if (w.conn.t === 'lost')
      why = `worker ${w.workerId} lost ${((nowMs - w.conn.sinceMs) / 1000).toFixed(1)} s ago: ${w.conn.reason}`;
    else if (w.draining) why = `worker ${w.workerId} is draining`;
    else if (status.state !== EngineState.ENGINE_STATE_READY) why = engineWhy(status);
    replicas.push({
      engineId: id,
      workerId: w.workerId,
      workerAddress: w.inventory.address,
      status,
      routable: why === '',
      why,
      placed: w.conn.t === 'connected' && PLACED.has(status.state),
    });
  }
  const ready = replicas.filter((r) => r.routable).length;
  return { deployment: d, replicas, ready, desired: d.replicas };
}

function engineWhy(e: EngineStatus): string {
  const state = (EngineState[e.state] ?? 'UNKNOWN').replace('ENGINE_STATE_', '').toLowerCase();
  const exit = e.lastExit ? `, last exit ${e.lastExit.signal || `code ${e.lastExit.code}`}` : '';
  return `${e.engineId} ${state}${e.detail ? ` (${e.detail})` : ''}${exit}`;
}

/** "0 of 2 ready: <why per replica>; 1 not placed" — for UNAVAILABLE messages and logs. */
export function explainReadiness(v: DeploymentView): string {
  const reasons = v.replicas.filter((r) => !r.routable).map((r) => r.why);
  const unplaced = v.desired - v.replicas.filter((r) => r.placed).length;
  if (unplaced > 0)
    reasons.push(
      `${unplaced} not placed (needs a connected worker with ${v.deployment.gpusPerReplica} free GPU${v.deployment.gpusPerReplica === 1 ? '' : 's'} where it has not failed)`,
    );
  return `${v.ready} of ${v.desired} ready${reasons.length > 0 ? `: ${reasons.join('; ')}` : ''}`;
}
