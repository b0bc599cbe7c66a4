/**
 * scheduler.pick: which group serves a request, as a pure function of a snapshot (DESIGN.md). For now every
 * engine is a group of one and the policy is least outstanding requests:
 *   choose argmin_g outstanding(g) over the READY groups of the request's deployment;
 *   ties are broken by the injected random source (uniform over the tied groups), so equal engines share load
 *   without a shared counter and tests stay deterministic.
 * No ready group but some on their way (starting, restarting) -> wait: a queue holds the request until one is
 * ready. No group at all -> reject UNAVAILABLE. The gateway turns wait into UNAVAILABLE until the queue exists.
 */

export type GroupState = 'ready' | 'starting' | 'unavailable';

export interface GroupView {
  id: string;
  deployment: string;
  state: GroupState;
  /** Requests sent to this group and not finished (as the controller counts them). */
  outstanding: number;
}

export interface RoutingSnapshot {
  groups: readonly GroupView[];
}

export interface RouteRequest {
  deployment: string;
}

export type PickResult =
  | { type: 'group'; id: string; reason: string }
  | { type: 'wait'; reason: string }
  | { type: 'reject'; code: 'unavailable'; reason: string };

export function pick(snapshot: RoutingSnapshot, request: RouteRequest, random: () => number): PickResult {
  const mine = snapshot.groups.filter((g) => g.deployment === request.deployment);
  const ready = mine.filter((g) => g.state === 'ready');
  if (ready.length === 0) {
    if (mine.some((g) => g.state === 'starting'))
      return { type: 'wait', reason: `no ready group of ${request.deployment}; some are starting` };
    return { type: 'reject', code: 'unavailable', reason: `no ready group of ${request.deployment}` };
  }
  let least = Number.POSITIVE_INFINITY;
  for (const g of ready) least = Math.min(least, g.outstanding);
  const tied = ready.filter((g) => g.outstanding === least);
  const index = Math.min(tied.length - 1, Math.floor(random() * tied.length));
  const chosen = tied[index] as GroupView;
  return {
    type: 'group',
    id: chosen.id,
    reason: `least outstanding (${least})${tied.length > 1 ? ` among ${tied.length} tied` : ''} of ${ready.length} ready`,
  };
}
