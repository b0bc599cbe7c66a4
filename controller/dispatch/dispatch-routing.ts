/**
 * The dispatcher's prefix- and load-aware routing for one deployment: scheduler.pick through PrefixRouter (the
 * code bench:routing and the cluster simulator measure), fed from what the controller observes.
 *
 *   per taken request   routeOf(): the prompt's block hashes (prompt-blocks.ts) and length
 *   per dispatch        pick() over the groups with room: the decision is recorded in the index, its predicted
 *                       miss queued as the group's pending prefill, its reason counted (Control.Status), and
 *                       shared with the other controller replicas (RouteFeed) when there are any
 *   per run             firstToken() when the first token streams back, ended() when it ends without one
 *   per registry change observe(): the heartbeat's cumulative prefix-cache hit and query tokens of each group
 *                       become a report since the previous one (the index corrects its believed capacity);
 *                       a group that restarted (its restart count moved, or its counters went back) or left
 *                       routing is forgotten, since its cache is gone (a group not seen yet keeps what the
 *                       other replicas' decisions say of it: a replica that starts replays them before the
 *                       workers' first heartbeats)
 * The heartbeat carries no KV-cache size, so a group's capacity is the one the planner's memory arithmetic gives
 * for the deployment's shape (kv-capacity.ts), corrected downward by the hit-rate reports.
 */
import type { Logger } from '../../common/log.ts';
import type { DeploymentView } from '../deployments/replica-view.ts';
import type { TakenRequest } from '../queue/request-queue.ts';
import type { GroupView, PickResult, RouteRequest } from '../scheduler/pick.ts';
import { reasonKind } from '../scheduler/pick-reason.ts';
import { PrefixRouter, type RouteDecision } from '../scheduler/prefix-router.ts';
import { requestOf } from './attempt-plan.ts';
import { type Encode, promptBlocks } from './prompt-blocks.ts';

export interface DispatchRoutingOptions {
  deployment: string;
  /** A group's KV-cache capacity in 16-token blocks (kv-capacity.ts; asked again at each report). */
  capacityBlocks: () => number;
  encode?: Encode;
  random: () => number;
  logger: Logger;
  /** Shares a decision with the other replicas (RouteFeed.publish). */
  share?: (d: RouteDecision) => void;
}

interface Seen {
  restarts: number;
  hits: number;
  queries: number;
}

export class DispatchRouting {
  private readonly router: PrefixRouter;
  private readonly seen = new Map<string, Seen>();
  private readonly reasons = new Map<string, number>();

  constructor(private readonly o: DispatchRoutingOptions) {
    this.router = new PrefixRouter({
      capacityBlocks: o.capacityBlocks(),
      ...(o.share ? { onDecision: o.share } : {}),
    });
  }

  /**
   * What pick needs of a request: its prompt's block hashes, or none when they cannot be known. From its queued
   * body, so a request submitted here can be routed while its submit is in flight (Dispatcher.submit).
   */
  async routeOf(t: Pick<TakenRequest, 'id' | 'body'>): Promise<RouteRequest> {
    const base = { deployment: this.o.deployment };
    try {
      const p = await promptBlocks(requestOf(t), this.o.encode);
      return p ? { ...base, promptBlocks: p.blocks, promptTokens: p.promptTokens } : base;
    } catch (e) {
      // An unreadable body fails in runAttempt with its own message; a tokenizer failure routes by load.
      this.o.logger.debug('no prompt blocks; routing by load', {
        requestId: t.id,
        error: (e as Error).message,
      });
      return base;
    }
  }

  pick(candidates: readonly GroupView[], route: RouteRequest, requestId: string): PickResult {
    const choice = this.router.pick(candidates, route, this.o.random, requestId);
    if (choice.type === 'group') {
      const kind = reasonKind(choice.reason);
      this.reasons.set(kind, (this.reasons.get(kind) ?? 0) + 1);
    }
    return choice;
  }

  firstToken(requestId: string): void {
    this.router.firstToken(requestId);
  }

  /** The run ended (its prefill is behind it whether or not a token came). */
  ended(requestId: string): void {
    this.router.firstToken(requestId);
  }

  /** A decision another replica made. */
  observe(d: RouteDecision): void {
    this.router.observe(d);
  }

  /** Picks by the kind of their reason ("prefix hit", "least outstanding", ...) since start. */
  get pickReasons(): ReadonlyMap<string, number> {
    return this.reasons;
  }

  /** Reports each routable group's prefix-cache counters since the last look; forgets groups that lost their cache. */
  observeGroups(view: DeploymentView): void {
    const present = new Set<string>();
    for (const r of view.replicas) {
      if (!r.routable) continue;
      present.add(r.engineId);
      const now: Seen = {
        restarts: r.status.restarts,
        hits: Number(r.status.prefixCacheHits),
        queries: Number(r.status.prefixCacheQueries),
      };
      const before = this.seen.get(r.engineId);
      this.seen.set(r.engineId, now);
      if (!before) continue;
      if (now.restarts !== before.restarts || now.queries < before.queries) {
        this.router.forget(r.engineId);
        continue;
      }
      if (now.queries > before.queries)
        this.router.report(r.engineId, {
          hitTokens: now.hits - before.hits,
          queryTokens: now.queries - before.queries,
          kvBlocks: this.o.capacityBlocks(),
        });
    }
    for (const id of this.seen.keys()) {
      if (present.has(id)) continue;
      this.seen.delete(id);
      this.router.forget(id);
    }
  }
}
