/**
 * How many more requests the dispatcher may send to one ready group now. Pure: a function of what the group's
 * leader last reported in its heartbeat and of what this controller has in flight there.
 *
 *   busy  = max(running + waiting as reported, in flight from here)
 *   room  = maxNumSeqs - busy, at least 0
 *   room  = 0 when the reported KV-cache use is at or above kvHighWater
 *
 * Why max() and not a sum: the report includes this controller's requests, but it is up to one heartbeat old,
 * so requests sent since are missing from it; counting ours alone would ignore other controllers' requests.
 * Why waiting counts as busy: a request waiting inside the engine has already left the queue, where priority
 * and fairness act; vLLM admits up to max-num-seqs sequences and makes the rest wait, so filling exactly the
 * free sequences keeps the waiting in the queue. Why the KV high-water mark: near a full KV cache vLLM
 * preempts running sequences (recomputing them later), so one more request slows everyone down.
 */
import type { DeploymentView } from '../deployments/replica-view.ts';
import type { GroupView } from '../scheduler/pick.ts';

export interface GroupLoad {
  /** Sequences the engine runs (heartbeat). */
  running: number;
  /** Requests waiting inside the engine (heartbeat). */
  waiting: number;
  /** KV-cache use, 0..1 (heartbeat). */
  kvCacheUsage: number;
  /** The deployment's --max-num-seqs. */
  maxNumSeqs: number;
  /** Requests this controller has sent to the group and not yet seen end. */
  inFlightHere: number;
}

/** Default KV-cache use above which a group gets no new request. */
export const KV_HIGH_WATER = 0.95;

export function roomOf(g: GroupLoad, kvHighWater = KV_HIGH_WATER): number {
  if (g.kvCacheUsage >= kvHighWater) return 0;
  const busy = Math.max(g.running + g.waiting, g.inFlightHere);
  return Math.max(0, g.maxNumSeqs - busy);
}

/** What one dispatch round sees: every group as pick sees it, and the room of each ready one. */
export interface Round {
  groups: GroupView[];
  room: Map<string, number>;
  /** Room summed over the ready groups. */
  total: number;
}

/** The round for a deployment's view, given how many requests this controller has in flight on each group. */
export function roundOf(
  view: DeploymentView,
  maxNumSeqs: number,
  inFlightHere: (engineId: string) => number,
): Round {
  const room = new Map<string, number>();
  const groups: GroupView[] = [];
  let total = 0;
  for (const r of view.replicas) {
    const state = r.routable ? 'ready' : r.placed ? 'starting' : 'unavailable';
    const here = inFlightHere(r.engineId);
    // Other replicas' requests are in the group's last report only (up to a heartbeat old), ours also here.
    const reported = r.routable ? r.status.running + r.status.waiting : 0;
    groups.push({
      id: r.engineId,
      deployment: view.deployment.name,
      state,
      outstanding: Math.max(here, reported),
    });
    if (!r.routable) continue;
    const s = r.status;
    const n = roomOf({
      running: s.running,
      waiting: s.waiting,
      kvCacheUsage: s.kvCacheUsage,
      maxNumSeqs,
      inFlightHere: here,
    });
    room.set(r.engineId, n);
    total += n;
  }
  return { groups, room, total };
}
