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
  /**
   * The controller's queued prefill by group id (PrefillBacklog), where it keeps it apart from the views: a
   * positive figure replaces the view's pendingPrefillTokens. Saves a copy of every view per pick.
   */
  queuedPrefill?: { tokens(groupId: string): number };
}

export interface RouteRequest {
  deployment: string;
  /** Chained hashes of the prompt's full 16-token blocks (block-hashes.ts promptBlockHashes). */
  promptBlocks?: ArrayLike<number>;
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

/**
 * 5632 -> "5,632": thousands separated by commas, as toLocaleString('en-US') writes a rounded integer. Built by
 * hand: toLocaleString costs microseconds and a regular expression's replace a fifth of one, on every pick.
 */
export function thousands(n: number): string {
  const rounded = Math.round(n);
  const s = String(rounded);
  // Plain digits below 1e21 (above, String() writes an exponent; NaN and infinities have none to group).
  if (!(Math.abs(rounded) < 1e21)) return s;
  const sign = rounded < 0 ? 1 : 0;
  const digits = s.length - sign;
  if (digits <= 3) return s;
  let out = s.slice(0, sign + (digits % 3 || 3));
  for (let i = out.length; i < s.length; i += 3) out += `,${s.slice(i, i + 3)}`;
  return out;
}

export function pick(
  snapshot: RoutingSnapshot,
  request: RouteRequest,
  random: () => number,
  options: PickOptions = DEFAULT_PICK_OPTIONS,
): PickResult {
  // One pass over the groups totals and prices them (into reused typed arrays), one over those arrays applies
  // the guard, then the few believed holders are re-priced: no object, closure or map is made per call, and each
  // group is read once (this runs per request over every group of the deployment).
  const groups = snapshot.groups;
  const deployment = request.deployment;
  const blocks = request.promptBlocks ?? [];
  const promptTokens = Math.max(request.promptTokens ?? 0, blocks.length * options.blockSize);
  const queued = snapshot.queuedPrefill;
  if (scratch.cost.length < groups.length) scratch.grow(groups.length);
  const { cost, load } = scratch;
  let readyCount = 0;
  let firstReady = -1;
  let starting = false;
  let total = 0;
  let least = Number.POSITIVE_INFINITY;
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i] as GroupView;
    load[i] = -1;
    if (g.deployment !== deployment) continue;
    if (g.state === 'ready') {
      if (readyCount++ === 0) firstReady = i;
      total += g.outstanding;
      if (g.outstanding < least) least = g.outstanding;
      load[i] = g.outstanding;
      cost[i] = priceOf(g, pendingPrefill(g, queued), promptTokens, 0, options);
    } else if (g.state === 'starting') starting = true;
  }
  if (readyCount === 0) {
    if (starting) return { type: 'wait', reason: `no ready group of ${deployment}; some are starting` };
    return { type: 'reject', code: 'unavailable', reason: `no ready group of ${deployment}` };
  }
  const mean = (total + 1) / readyCount;
  const limit = Math.max(options.guardRatio * mean, least + options.guardSlack);
  const held = blocks.length > 0 && snapshot.prefixIndex ? snapshot.prefixIndex.matches(blocks) : NO_HOLDERS;

  // Every group is priced without a hit first, then the holders are re-priced with theirs.
  best.cost = Number.POSITIVE_INFINITY;
  best.ties = 0;
  for (let i = 0; i < groups.length; i++) {
    const l = load[i] as number;
    if (l >= 0 && l + 1 <= limit) offer(i, cost[i] as number);
  }
  let holder: GroupView | undefined;
  let holderBlocks = 0;
  for (const [id, heldBlocks] of held) {
    const hit = Math.min(promptTokens, heldBlocks * options.blockSize);
    if (hit <= 0) continue;
    const i = positionOf(groups, id);
    const g = groups[i];
    if (g === undefined || g.deployment !== deployment || g.state !== 'ready') continue;
    if (g.outstanding + 1 <= limit)
      offer(i, priceOf(g, pendingPrefill(g, queued), promptTokens, hit, options));
    if (heldBlocks > holderBlocks) {
      holder = g;
      holderBlocks = heldBlocks;
    }
  }
  // Ties are remembered by index and one of them drawn at the end: uniform, one random draw per pick.
  // (A guard tighter than the defaults can exclude every group: the first ready one serves then.)
  let index = best.ties > 0 ? (tiedAt[0] as number) : firstReady;
  if (best.ties > 1) index = tiedAt[Math.min(best.ties - 1, Math.floor(random() * best.ties))] as number;
  const chosen = groups[index] as GroupView;
  return {
    type: 'group',
    id: chosen.id,
    reason: explain(chosen, readyCount, held, holder, holderBlocks, limit, mean, best.ties, options),
  };
}

const NO_HOLDERS: ReadonlyMap<string, number> = new Map();

/** Per group of the pick in progress: its price without a hit, and its outstanding (-1: not a ready group). */
const scratch = {
  cost: new Float64Array(0),
  load: new Float64Array(0),
  grow(n: number) {
    this.cost = new Float64Array(2 * n);
    this.load = new Float64Array(2 * n);
  },
};

/**
 * The running argmin of the pick in progress: module state reused across calls (pick is synchronous), with the
 * indexes of the groups tied at the best cost.
 */
const best = { cost: Number.POSITIVE_INFINITY, ties: 0 };
const tiedAt: number[] = [];

function offer(i: number, cost: number): void {
  if (cost < best.cost) {
    best.cost = cost;
    best.ties = 1;
    tiedAt[0] = i;
  } else if (cost === best.cost) tiedAt[best.ties++] = i;
}

/** The prefill queued on the group: the controller's figure where positive, else the view's own. */
function pendingPrefill(g: GroupView, queued: RoutingSnapshot['queuedPrefill']): number {
  const q = queued === undefined ? 0 : queued.tokens(g.id);
  return q > 0 ? q : (g.pendingPrefillTokens ?? 0);
}

function priceOf(
  g: GroupView,
  pendingPrefill: number,
  promptTokens: number,
  hitTokens: number,
  o: PickOptions,
): number {
  let cost = o.missWeight * (promptTokens - hitTokens) + o.loadTokens * g.outstanding;
  cost += pendingPrefill;
  if (g.kvUsage !== undefined && g.kvUsage > o.kvSoft) cost += kvPenalty(g.kvUsage, o);
  return cost;
}

/**
 * Where each group id was last seen in a snapshot, so a holder is found without scanning every group. Only a
 * hint: the group at that position must still have the id (snapshots are rebuilt in the same order, mostly),
 * else the groups are scanned and the hint updated; it is cleared when it outgrows the snapshots it serves.
 * Group ids are unique within a snapshot. -1 when no group has the id.
 */
const lastPosition = new Map<string, number>();

function positionOf(groups: readonly GroupView[], id: string): number {
  const hint = lastPosition.get(id);
  if (hint !== undefined && groups[hint]?.id === id) return hint;
  for (let i = 0; i < groups.length; i++) {
    if ((groups[i] as GroupView).id !== id) continue;
    if (lastPosition.size >= 4 * groups.length + 64) lastPosition.clear();
    lastPosition.set(id, i);
    return i;
  }
  return -1;
}

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
  if (hit > 0) return `prefix hit ${thousands(hit)} tokens on ${chosen.id}; ${load}`;
  if (holder && holder.outstanding + 1 > limit)
    return (
      `imbalance guard: ${holder.id} holds ${thousands(holderBlocks * o.blockSize)} tokens but has ` +
      `${holder.outstanding} outstanding (limit ${thousands(limit)}); ${chosen.id} ${load}`
    );
  if (holder)
    return (
      `load over prefix: ${holder.id} holds ${thousands(holderBlocks * o.blockSize)} tokens at ` +
      `${holder.outstanding} outstanding${holder.kvUsage === undefined ? '' : `, kv ${holder.kvUsage.toFixed(2)}`}; ` +
      `${chosen.id} ${load}`
    );
  return `least outstanding (${chosen.outstanding})${ties > 1 ? ` among ${ties} tied` : ''} of ${readyCount} ready`;
}
