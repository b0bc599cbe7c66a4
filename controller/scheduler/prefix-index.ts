/**
 * The router's belief of which prompt blocks each group holds in its prefix cache: approximate, built only from
 * its own routing decisions (a request sent to g leaves its blocks in g's cache) and corrected by the hit rates
 * the groups report (vLLM's prefix_cache_queries/hits counters). No engine is asked anything on the hot path.
 *
 * Per group, the blocks believed cached in the order they were last routed (routed-blocks.ts), bounded by a
 * believed capacity (in blocks) and evicted least recently routed first; a reverse map hash -> groups
 * (holder-sets.ts) answers "who holds this prefix" in time proportional to the holders, not to the number of
 * groups. Two economies, both exact enough to route:
 *   - stride: only every `stride`-th block hash is kept (default 4: a cached prefix is known to 64 tokens),
 *     a quarter of the memory and of the work per request;
 *   - eviction runs in batches once the belief exceeds its capacity by `slack` (default 5%), not on every
 *     routed request.
 *
 * Correction: since the last report the router predicted a hit rate p = predicted hit tokens / prompt tokens
 * for what it sent to g, and the engine reported h = prefix_cache_hits / prefix_cache_queries. Rates, not token
 * counts: the engine counts a request when it admits it, which under a queue is long after it was routed. The
 * cache is smaller than believed (running sequences pin blocks, other traffic evicts) when h < p:
 *
 *   ratio = h / p;   ratio < 0.9  ->  believed capacity *= max(0.7, ratio), evicting the oldest entries now
 *                    ratio >= 0.95 -> believed capacity grows 10% back toward the physical capacity
 *
 * so the believed cache converges to what the engine really keeps, and a group that lost its cache (restart)
 * stops attracting traffic for a prefix it no longer has.
 */

import { HolderSets } from './holder-sets.ts';
import { RoutedBlocks } from './routed-blocks.ts';

export interface PrefixLookup {
  /** Groups believed to hold the first block of `blocks`, each with how many leading blocks it holds. */
  matches(blocks: ArrayLike<number>): ReadonlyMap<string, number>;
}

export interface PrefixIndexOptions {
  /** Believed capacity of a group not yet sized by setCapacity, in blocks. */
  defaultCapacityBlocks: number;
  /** Prompt tokens (routed, and reported by the engine) below which a report says too little to judge. */
  minTokens?: number;
  /** Keep every stride-th block hash (default 4). */
  stride?: number;
  /** Evict once a group's belief exceeds its capacity by this fraction (default 0.05; 0 = exact LRU). */
  slack?: number;
}

interface GroupEntry {
  /** The kept block hashes believed held, least recently routed first. */
  routed: RoutedBlocks;
  physicalBlocks: number;
  believedBlocks: number;
  predictedHitTokens: number;
  predictedQueryTokens: number;
}

export class PrefixIndex implements PrefixLookup {
  private readonly byHash = new HolderSets();
  private readonly groups = new Map<string, GroupEntry>();
  private readonly minTokens: number;
  private readonly stride: number;
  private readonly slack: number;

  constructor(private readonly options: PrefixIndexOptions) {
    if (!(options.defaultCapacityBlocks > 0)) throw new RangeError('defaultCapacityBlocks must be > 0');
    this.minTokens = options.minTokens ?? 16_384;
    this.stride = options.stride ?? 4;
    this.slack = options.slack ?? 0.05;
    if (!Number.isInteger(this.stride) || this.stride < 1)
      throw new RangeError('stride must be an integer >= 1');
  }

  /**
   * Binary search per holder of the first kept block: along one prompt's chain a group's believed blocks are
   * always a prefix (record routes a prompt's blocks tail first, so block i is never older than block i+1 and
   * eviction never drops i before i+1), so "holds block i" is monotone in i. O(holders x log blocks) lookups,
   * which keeps pick() fast on 1,000 groups and 100k-token prompts. Answers in 16-token blocks, rounded down
   * to the stride.
   */
  matches(blocks: ArrayLike<number>): ReadonlyMap<string, number> {
    const held = new Map<string, number>();
    const s = this.stride;
    const kept = Math.floor(blocks.length / s);
    const first = kept > 0 ? this.byHash.get(blocks[s - 1] as number) : undefined;
    if (first === undefined) return held;
    if (typeof first === 'string') held.set(first, this.heldKept(first, blocks, kept) * s);
    else for (const g of first) held.set(g, this.heldKept(g, blocks, kept) * s);
    return held;
  }

  /** How many leading kept blocks of `blocks` (`kept` of them) group `g` holds, knowing it holds the first. */
  private heldKept(g: string, blocks: ArrayLike<number>, kept: number): number {
    const s = this.stride;
    let lo = 1; // holds kept blocks [0, lo)
    let hi = kept; // does not hold kept block hi (or hi is the end)
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.byHash.holds(blocks[(mid + 1) * s - 1] as number, g)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * The request with these blocks was sent to `group`, predicted to hit `predictedHitBlocks` of them: its blocks
   * are now the group's most recently routed. Routed tail first so the prompt's head is the newest, as in vLLM,
   * which frees a finished request's blocks tail first so that shared heads are evicted last.
   */
  record(group: string, blocks: ArrayLike<number>, predictedHitBlocks: number, blockSize = 16): void {
    this.recordStrided(group, blocks, this.stride, blocks.length, predictedHitBlocks, blockSize);
  }

  /** The hashes of a prompt's blocks the index keeps (every stride-th): what record() stores. */
  kept(blocks: ArrayLike<number>): number[] {
    const s = this.stride;
    const out = new Array<number>(Math.floor(blocks.length / s));
    for (let k = 0; k < out.length; k++) out[k] = blocks[(k + 1) * s - 1] as number;
    return out;
  }

  /**
   * record() given only kept(blocks) of a prompt of `blockCount` blocks: a decision another controller replica
   * made and shared (the dispatcher's RouteFeed), so every replica believes what every group was sent.
   */
  recordKept(
    group: string,
    kept: readonly number[],
    blockCount: number,
    predictedHitBlocks: number,
    blockSize = 16,
  ): void {
    this.recordStrided(group, kept, 1, blockCount, predictedHitBlocks, blockSize);
  }

  /** record() of the hashes of which every `stride`-th is kept. */
  private recordStrided(
    group: string,
    hashes: ArrayLike<number>,
    stride: number,
    blockCount: number,
    predictedHitBlocks: number,
    blockSize: number,
  ): void {
    const g = this.entry(group);
    g.predictedHitTokens += predictedHitBlocks * blockSize;
    g.predictedQueryTokens += blockCount * blockSize;
    g.routed.route(hashes, stride, (h) => this.byHash.add(h, group));
    if (g.routed.size > this.keptCapacity(g) * (1 + this.slack)) this.evict(group, g);
  }

  /** The group's physical KV capacity (from its reported KV blocks); the belief never exceeds it. */
  setCapacity(group: string, blocks: number): void {
    const g = this.entry(group);
    g.physicalBlocks = blocks;
    g.believedBlocks = Math.min(g.believedBlocks, blocks);
    this.evict(group, g);
  }

  /**
   * A report from the group: prefix-cache hit and query tokens since its previous report. Compares its hit rate
   * with the rate predicted for what was sent to it since the last correction and corrects the believed
   * capacity (see the file comment). Returns the ratio used, or undefined when too little was seen to judge
   * (the prediction keeps accumulating until there is enough).
   */
  correct(group: string, hitTokens: number, queryTokens: number): number | undefined {
    const g = this.entry(group);
    if (g.predictedQueryTokens < this.minTokens || queryTokens < this.minTokens) return undefined;
    const predicted = g.predictedHitTokens / g.predictedQueryTokens;
    g.predictedHitTokens = 0;
    g.predictedQueryTokens = 0;
    if (predicted <= 0) return undefined;
    const ratio = Math.max(0, hitTokens) / queryTokens / predicted;
    if (ratio < 0.9) g.believedBlocks = Math.max(1, Math.floor(g.believedBlocks * Math.max(0.7, ratio)));
    else if (ratio >= 0.95)
      g.believedBlocks = Math.min(
        g.physicalBlocks,
        Math.max(g.believedBlocks + 1, Math.round(g.believedBlocks * 1.1)),
      );
    this.evict(group, g);
    return ratio;
  }

  /** The group's cache is gone (restarted, removed): forget everything it was believed to hold. */
  forget(group: string): void {
    const g = this.groups.get(group);
    if (!g) return;
    g.routed.forEach((h) => {
      this.byHash.remove(h, group);
    });
    this.groups.delete(group);
  }

  /** Blocks believed held (kept hashes x stride). */
  heldBlocks(group: string): number {
    return (this.groups.get(group)?.routed.size ?? 0) * this.stride;
  }

  believedCapacity(group: string): number {
    return this.groups.get(group)?.believedBlocks ?? this.options.defaultCapacityBlocks;
  }

  private keptCapacity(g: GroupEntry): number {
    return Math.floor(g.believedBlocks / this.stride);
  }

  private entry(group: string): GroupEntry {
    let g = this.groups.get(group);
    if (!g) {
      const blocks = this.options.defaultCapacityBlocks;
      g = {
        routed: new RoutedBlocks(),
        physicalBlocks: blocks,
        believedBlocks: blocks,
        predictedHitTokens: 0,
        predictedQueryTokens: 0,
      };
      this.groups.set(group, g);
    }
    return g;
  }

  /** Drops the least recently routed kept blocks down to the capacity. */
  private evict(group: string, g: GroupEntry): void {
    g.routed.evictTo(this.keptCapacity(g), (h) => this.byHash.remove(h, group));
  }
}
