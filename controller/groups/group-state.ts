/**
 * The lifecycle of a group (one replica: the ranks of a plan placed on concrete workers). A group serves only
 * when every rank is up; losing any rank takes the whole group out of routing at once, because a TP/PP group
 * with a dead rank hangs in NCCL collectives until vLLM's 600 s timeout rather than failing.
 *
 *   pending    waiting for workers with enough free GPUs (or for its restart backoff to pass)
 *   launching  directives sent to every rank; waiting for every rank's engine to report it started
 *   loading    every rank's engine runs; waiting for the leader's /health (weights load, KV cache profiled)
 *   ready      the leader is healthy and every rank runs: receives requests
 *   draining   receives no new requests; in-flight ones finish, then the ranks stop
 *   stopped    torn down on purpose (scale-down, deployment removed)
 *   failed     gave up after maxRestarts rebuilds; the reason stays visible in `corral status`
 */

export interface RankPlacement {
  rank: number;
  workerId: string;
  engineId: string;
  gpus: number;
}

export type GroupState =
  | { t: 'pending'; since: number; retryAt: number; lastFailure?: string }
  | { t: 'launching'; since: number; ranks: RankPlacement[] }
  | { t: 'loading'; since: number; ranks: RankPlacement[] }
  | { t: 'ready'; since: number; ranks: RankPlacement[] }
  | { t: 'draining'; since: number; ranks: RankPlacement[] }
  | { t: 'stopped'; since: number; reason: string }
  | { t: 'failed'; since: number; reason: string };

export type GroupStateName = GroupState['t'];

/** Which states may follow which: everything else is a bug, refused loudly. */
const ALLOWED: Record<GroupStateName, readonly GroupStateName[]> = {
  pending: ['launching', 'stopped', 'failed'],
  launching: ['loading', 'pending', 'failed', 'stopped'],
  loading: ['ready', 'pending', 'failed', 'stopped'],
  ready: ['draining', 'pending', 'failed', 'stopped'],
  draining: ['stopped', 'pending'],
  stopped: [],
  failed: [],
};

export class IllegalTransitionError extends Error {
  override name = 'IllegalTransitionError';
  constructor(
    readonly groupId: string,
    readonly from: GroupStateName,
    readonly to: GroupStateName,
  ) {
    super(`group ${groupId}: illegal transition ${from} -> ${to}`);
  }
}

/** Returns the new state after checking the move is legal; the caller logs `OLD -> NEW` with the reason. */
export function transition(groupId: string, from: GroupState, to: GroupState): GroupState {
  if (!ALLOWED[from.t].includes(to.t)) throw new IllegalTransitionError(groupId, from.t, to.t);
  return to;
}

export function ranksOf(state: GroupState): readonly RankPlacement[] {
  switch (state.t) {
    case 'launching':
    case 'loading':
    case 'ready':
    case 'draining':
      return state.ranks;
    default:
      return [];
  }
}

export function isTerminal(state: GroupState): boolean {
  return state.t === 'stopped' || state.t === 'failed';
}
