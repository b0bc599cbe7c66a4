/**
 * Where each deployment stands, read from the registry: its replicas (groups) with their leader's worker, state
 * and why, how many are ready, and a one-line explanation for an operator or a refused client ("0 of 2 ready:
 * ..."). Pure over the registry's records, so the gateway, Control.Status and ListModels agree on what "ready"
 * means.
 *
 * A single-node replica is one engine `<deployment>-<worker>`. A replica of N nodes is the ranks
 * `<deployment>-g<n>.a<attempt>.r<rank>` of the newest attempt of group g, and is presented as its leader: the
 * rank-0 engine on its worker, which is where the gateway sends requests. It is routable only when every rank
 * is reported on a connected, non-draining worker, the leader READY and every headless rank running: a group
 * with one rank lost hangs in its collectives, so it leaves routing the moment the registry loses the worker.
 */
import { EngineState, type EngineStatus } from '../../proto/gen/corral/v1/worker.ts';
import type { Deployment } from '../config/controller-config.ts';
import { engineIdOf, parseRankEngineId } from '../launcher/engine-args.ts';
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
  /** Multi-node replicas: the group id and the worker of every rank, rank order (single-node: undefined). */
  group?: { id: string; attempt: number; workers: string[] };
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
  if (d.nodes > 1) {
    const replicas = groupReplicas(d, workers, nowMs);
    const ready = replicas.filter((r) => r.routable).length;
    return { deployment: d, replicas, ready, desired: d.replicas };
  }
  const replicas: ReplicaView[] = [];
  for (const w of workers) {
    const id = engineIdOf(d.name, w.workerId);
    const status = w.engines.find((e) => e.engineId === id);
    if (!status) continue;
    let why = workerWhy(w, nowMs);
    if (!why && status.state !== EngineState.ENGINE_STATE_READY) why = engineWhy(status);
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

function workerWhy(w: WorkerRecord, nowMs: number): string {
  if (w.conn.t === 'lost')
    return `worker ${w.workerId} lost ${((nowMs - w.conn.sinceMs) / 1000).toFixed(1)} s ago: ${w.conn.reason}`;
  if (w.draining) return `worker ${w.workerId} is draining`;
  return '';
}

const TORN_DOWN: ReadonlySet<EngineState> = new Set([
  EngineState.ENGINE_STATE_STOPPING,
  EngineState.ENGINE_STATE_STOPPED,
]);

interface RankSeen {
  rank: number;
  worker: WorkerRecord;
  status: EngineStatus;
}

/** One replica per group of d: its newest attempt that is not wholly torn down, presented as its leader. */
function groupReplicas(d: Deployment, workers: readonly WorkerRecord[], nowMs: number): ReplicaView[] {
  const attempts = new Map<string, { attempt: number; ranks: RankSeen[] }>();
  for (const w of workers) {
    for (const status of w.engines) {
      const id = parseRankEngineId(status.engineId, d.name);
      if (!id) continue;
      const seen = attempts.get(id.groupId);
      if (seen && seen.attempt > id.attempt) continue;
      const ranks = seen && seen.attempt === id.attempt ? seen.ranks : [];
      ranks.push({ rank: id.rank, worker: w, status });
      attempts.set(id.groupId, { attempt: id.attempt, ranks });
    }
  }
  const out: ReplicaView[] = [];
  for (const [groupId, { attempt, ranks }] of [...attempts].sort((a, b) => a[0].localeCompare(b[0]))) {
    if (ranks.every((r) => TORN_DOWN.has(r.status.state))) continue;
    ranks.sort((a, b) => a.rank - b.rank);
    const leader = ranks.find((r) => r.rank === 0);
    if (!leader) continue; // the leader's worker was replaced by a worker that does not run it: nothing to route to
    let why = '';
    for (let rank = 0; rank < d.nodes && !why; rank++) {
      const r = ranks.find((x) => x.rank === rank);
      if (!r) {
        why = `${groupId}: rank ${rank} not reported`;
        break;
      }
      const w = workerWhy(r.worker, nowMs);
      if (w) why = `${groupId}: rank ${rank} ${w}`;
      else if (r.status.state !== EngineState.ENGINE_STATE_READY)
        why = `${groupId}: rank ${rank} ${engineWhy(r.status)}`;
    }
    const live = ranks.length === d.nodes && ranks.every((r) => r.worker.conn.t === 'connected');
    out.push({
      engineId: leader.status.engineId,
      workerId: leader.worker.workerId,
      workerAddress: leader.worker.inventory.address,
      status: leader.status,
      routable: why === '',
      why,
      placed:
        live &&
        ranks.every(
          (r) =>
            r.status.state === EngineState.ENGINE_STATE_STARTING ||
            r.status.state === EngineState.ENGINE_STATE_READY,
        ),
      group: { id: groupId, attempt, workers: ranks.map((r) => r.worker.workerId) },
    });
  }
  return out;
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
  const d = v.deployment;
  const gpus = `${d.gpusPerNode} free GPU${d.gpusPerNode === 1 ? '' : 's'}`;
  if (unplaced > 0)
    reasons.push(
      d.nodes > 1
        ? `${unplaced} not placed (a group needs ${d.nodes} connected workers with ${gpus} each)`
        : `${unplaced} not placed (needs a connected worker with ${gpus} where it has not failed)`,
    );
  return `${v.ready} of ${v.desired} ready${reasons.length > 0 ? `: ${reasons.join('; ')}` : ''}`;
}
