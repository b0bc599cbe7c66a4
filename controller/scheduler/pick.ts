/**
 * scheduler.pick: which group serves a request, as a pure function of a snapshot (DESIGN.md). corral's policy:
 * prefix- and load-aware, with an explicit imbalance guard. Over the READY groups of the request's deployment:
 *
 *   guard:  g is eligible iff  outstanding(g) + 1 <= max(guardRatio x mean, min + guardSlack)
 *           where mean = (sum of outstanding + 1) / groups: no group may run far ahead of the others, however
 *           hot its prefix (routing on prefix alone made hot spots that failed 45% of llm-d's requests);
 *   cost:   cost(g) = missWeight x missTokens(g) + pendingPrefill(g) + loadTokens x outstanding(g) + kvPenalty(g)
 *           missTokens = prompt tokens - 16 x (leading prompt blocks g is believed to hold, snapshot.prefixIndex)
 *           pendingPrefill = prompt tokens queued for prefill ahead of it (the controller's prediction)
 *           kvPenalty  = loadTokens x kvWeight x (kvUsage - kvSoft) / (1 - kvSoft) above kvSoft, else 0;
 *   choose  argmin cost over the eligible groups, ties broken by the injected random source (uniform).
 *
 * Prefill work is the currency: a request's first token waits for the prefill queued ahead of it plus its own
 * miss, while every running sequence only slows each step a little, which loadTokens prices (in prompt tokens
 * of prefill). A cached 8k-token prefix outweighs a large imbalance in running requests, never more than the
 * guard allows. missWeight 2: a miss is paid twice, by this request and by every request queued behind its
 * prefill on that group (chunked prefill stretches their steps too). The defaults (loadTokens 256, missWeight 2,
 * guardRatio 1.5, guardSlack 2) come from bench:routing on 8 groups of 405B FP8: guardRatio 2 keeps more
 * affinity but lets Zipf(1.2) reach max/mean load 1.29; 1.25 splits tenants needlessly (more misses, higher
 * p90). Without block hashes or load figures (the gateway passes only outstanding counts) the cost is
 * loadTokens x outstanding: least outstanding, as before.
 * No ready group but some on their way (starting, restarting) -> wait: a queue holds the request until one is
 * ready. No group at all -> reject UNAVAILABLE.
 */
import type { PrefixLookup } from './prefix-index.ts';

export type GroupState = 'ready' | 'starting' | 'unavailable';

export interface GroupView {
  id: string;
  deployment: string;
  state: GroupState;
  /** Requests sent to this group and not finished (as the controller counts them). */
  outstanding: number;
  /** Fraction of the group's KV cache in use (vllm:kv_cache_usage_perc), when reported. */
  kvUsage?: number;
  /**
   * Prompt tokens the controller expects this group still has to prefill: the predicted misses of the requests
   * sent to it that have no first token yet (PrefillBacklog keeps it).
   */
  pendingPrefillTokens?: number;
}

export interface RoutingSnapshot {
  groups: readonly GroupView[];
  /** The router's belief of each group's prefix cache, keyed by group id. */
  prefixIndex?: PrefixLookup;
}

export interface RouteRequest {
  deployment: string;
  /** Chained hashes of the prompt's full 16-token blocks (block-hashes.ts promptBlockHashes). */
  promptBlocks?: readonly number[];
  /** Prompt length in tokens; defaults to 16 x promptBlocks.length. */
  promptTokens?: number;
}

export type PickResult =
  | { type: 'group'; id: string; reason: string }
  | { type: 'wait'; reason: string }
  | { type: 'reject'; code: 'unavailable'; reason: string };

export interface PickOptions {
  /** One outstanding request costs as much as prefilling this many prompt tokens. */
  loadTokens: number;
  /** Weight of this request's own miss against the prefill already queued (a miss stalls the whole group). */
  missWeight: number;
  guardRatio: number;
  guardSlack: number;
  /** KV usage above which a group is penalised (it is about to evict cached prefixes or preempt). */
  kvSoft: number;
  kvWeight: number;
  blockSize: number;
}

export const DEFAULT_PICK_OPTIONS: PickOptions = {
  loadTokens: 256,
  missWeight: 2,
  guardRatio: 1.5,
  guardSlack: 2,
  kvSoft: 0.85,
  kvWeight: 4,
  blockSize: 16,
};

/** 5632 -> "5,632" (toLocaleString costs microseconds, this runs on every pick). */
function fmt(n: number): string {
  return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

export function pick(
  snapshot: RoutingSnapshot,
  request: RouteRequest,
  random: () => number,
  options: PickOptions = DEFAULT_PICK_OPTIONS,
): PickResult {
  const ready: GroupView[] = [];
  let starting = false;
  let total = 0;
  let least = Number.POSITIVE_INFINITY;
  for (const g of snapshot.groups) {
    if (g.deployment !== request.deployment) continue;
    if (g.state === 'ready') {
      ready.push(g);
      total += g.outstanding;
      if (g.outstanding < least) least = g.outstanding;
    } else if (g.state === 'starting') starting = true;
  }
  if (ready.length === 0) {
    if (starting)
      return { type: 'wait', reason: `no ready group of ${request.deployment}; some are starting` };
    return { type: 'reject', code: 'unavailable', reason: `no ready group of ${request.deployment}` };
  }
  const mean = (total + 1) / ready.length;
  const limit = Math.max(options.guardRatio * mean, least + options.guardSlack);

  const blocks = request.promptBlocks ?? [];
  const held =
    blocks.length > 0 && snapshot.prefixIndex
      ? snapshot.prefixIndex.matches(blocks)
      : new Map<string, number>();
  const promptTokens = Math.max(request.promptTokens ?? 0, blocks.length * options.blockSize);

  // Every group is priced without a hit first, then the few believed holders are re-priced with theirs: no
  // per-group lookup in the index's answer, no allocation unless costs tie. This runs per request over every
  // group of the deployment.
  let bestCost = Number.POSITIVE_INFINITY;
  let chosen = ready[0] as GroupView;
  let ties = 0;
  const consider = (i: number, hitTokens: number) => {
    const g = ready[i] as GroupView;
    if (g.outstanding + 1 > limit) return;
    let cost = options.missWeight * (promptTokens - hitTokens) + options.loadTokens * g.outstanding;
    if (g.pendingPrefillTokens !== undefined) cost += g.pendingPrefillTokens;
    if (g.kvUsage !== undefined && g.kvUsage > options.kvSoft) cost += kvPenalty(g.kvUsage, options);
    if (cost < bestCost) {
      bestCost = cost;
      chosen = g;
      ties = 1;
      tiedAt[0] = i;
    } else if (cost === bestCost) tiedAt[ties++] = i;
  };
  for (let i = 0; i < ready.length; i++) consider(i, 0);
  let holder: GroupView | undefined;
  let holderBlocks = 0;
  for (const [id, heldBlocks] of held) {
    const hit = Math.min(promptTokens, heldBlocks * options.blockSize);
    if (hit <= 0) continue;
    for (let i = 0; i < ready.length; i++) {
      if ((ready[i] as GroupView).id !== id) continue;
      consider(i, hit);
      if (heldBlocks > holderBlocks) {
        holder = ready[i];
        holderBlocks = heldBlocks;
      }
      break;
    }
  }
  // Ties are remembered by index and one of them drawn at the end: uniform, one random draw per pick.
  if (ties > 1)
    chosen = ready[tiedAt[Math.min(ties - 1, Math.floor(random() * ties))] as number] as GroupView;
  return {
    type: 'group',
    id: chosen.id,
    reason: explain(chosen, ready.length, held, holder, holderBlocks, limit, mean, ties, options),
  };
}

/** Indexes of the groups tied at the best cost, reused across calls (pick is synchronous). */
const tiedAt: number[] = [];

function kvPenalty(kvUsage: number | undefined, o: PickOptions): number {
  if (kvUsage === undefined || kvUsage <= o.kvSoft) return 0;
  return (o.loadTokens * o.kvWeight * (Math.min(1, kvUsage) - o.kvSoft)) / (1 - o.kvSoft);
}

/** The reason string; its leading words name the kind of decision, which the cluster report counts. */
function explain(
  chosen: GroupView,
  readyCount: number,
  held: ReadonlyMap<string, number>,
  holder: GroupView | undefined,
  holderBlocks: number,
  limit: number,
  mean: number,
  ties: number,
  o: PickOptions,
): string {
  const load = `outstanding ${chosen.outstanding} (mean ${mean.toFixed(1)})`;
  const hit = (held.get(chosen.id) ?? 0) * o.blockSize;
  if (hit > 0) return `prefix hit ${fmt(hit)} tokens on ${chosen.id}; ${load}`;
  if (holder && holder.outstanding + 1 > limit)
    return (
      `imbalance guard: ${holder.id} holds ${fmt(holderBlocks * o.blockSize)} tokens but has ` +
      `${holder.outstanding} outstanding (limit ${fmt(limit)}); ${chosen.id} ${load}`
    );
  if (holder)
    return (
      `load over prefix: ${holder.id} holds ${fmt(holderBlocks * o.blockSize)} tokens at ` +
      `${holder.outstanding} outstanding${holder.kvUsage === undefined ? '' : `, kv ${holder.kvUsage.toFixed(2)}`}; ` +
      `${chosen.id} ${load}`
    );
  return `least outstanding (${chosen.outstanding})${ties > 1 ? ` among ${ties} tied` : ''} of ${readyCount} ready`;
}
