/**
 * What the dispatcher keeps between picks so that pick() can be prefix-aware: the prefix index and the prefill
 * backlog, updated from its own decisions and the groups' reports. Pure state, no I/O; one per deployment. The
 * cluster simulator drives exactly this object, so bench:routing measures the code the dispatcher runs.
 *
 * The dispatcher's side, per request:
 *   blocks = promptBlockHashes(tokenIds)                 (block-hashes.ts; the gateway tokenises already)
 *   choice = router.pick(groups, {deployment, promptBlocks: blocks, promptTokens}, random, requestId)
 *   ...first token streamed back  -> router.firstToken(requestId)
 *   ...finished, failed, cancelled before a first token -> router.firstToken(requestId) as well (nothing queued)
 * per group heartbeat (the worker reads vllm:prefix_cache_hits/queries_total and the KV block count):
 *   router.report(groupId, {hitTokens, queryTokens} since the last report, kvBlocks)
 * when a group restarts or leaves: router.forget(groupId).
 * Several controller replicas: each shares its decisions (onDecision: the group and the kept block hashes) and
 * records the others' with observe(), so every replica's index believes what every group was sent.
 */
import {
  DEFAULT_PICK_OPTIONS,
  type GroupView,
  type PickOptions,
  type PickResult,
  pick,
  type RouteRequest,
} from './pick.ts';
import { PrefillBacklog } from './prefill-backlog.ts';
import { PrefixIndex } from './prefix-index.ts';

export interface GroupReport {
  /** Prefix-cache hit and query tokens since the group's previous report. */
  hitTokens: number;
  queryTokens: number;
  /** The group's KV cache size in blocks of 16 tokens. */
  kvBlocks: number;
}

/** One routing decision as another replica needs it: the group, and what the index kept of the prompt. */
export interface RouteDecision {
  group: string;
  /** The prompt's block hashes the index keeps (every stride-th). */
  kept: number[];
  /** Full blocks of the prompt. */
  blockCount: number;
  /** Leading blocks the group was believed to hold when it was chosen. */
  hitBlocks: number;
}

export class PrefixRouter {
  private readonly index: PrefixIndex;
  private readonly backlog = new PrefillBacklog();
  private readonly onDecision: ((d: RouteDecision) => void) | undefined;

  constructor(
    options: { capacityBlocks: number; stride?: number; onDecision?: (d: RouteDecision) => void },
    private readonly pickOptions: PickOptions = DEFAULT_PICK_OPTIONS,
  ) {
    this.onDecision = options.onDecision;
    this.index = new PrefixIndex({
      defaultCapacityBlocks: options.capacityBlocks,
      ...(options.stride === undefined ? {} : { stride: options.stride }),
    });
  }

  /**
   * pick() over `groups` with the believed prefixes and queued prefill; when it chooses a group, the decision is
   * recorded (the prompt's blocks are now that group's newest, its miss is queued there) under `requestId`.
   */
  pick(
    groups: readonly GroupView[],
    request: RouteRequest,
    random: () => number,
    requestId: string,
  ): PickResult {
    const blocks = request.promptBlocks ?? [];
    // Looked up once: pick() asks for the prompt it was given.
    const held = this.index.matches(blocks);
    const result = pick(
      { groups, prefixIndex: { matches: () => held }, queuedPrefill: this.backlog },
      request,
      random,
      this.pickOptions,
    );
    if (result.type !== 'group') return result;
    const hitBlocks = held.get(result.id) ?? 0;
    const bs = this.pickOptions.blockSize;
    if (this.onDecision && blocks.length > 0) {
      const kept = this.index.kept(blocks);
      this.index.recordKept(result.id, kept, blocks.length, hitBlocks, bs);
      this.onDecision({ group: result.id, kept, blockCount: blocks.length, hitBlocks });
    } else this.index.record(result.id, blocks, hitBlocks, bs);
    const promptTokens = Math.max(request.promptTokens ?? 0, blocks.length * bs);
    this.backlog.dispatched(requestId, result.id, promptTokens - hitBlocks * bs);
    return result;
  }

  /** The request's prefill is behind it: its first token arrived, or it ended without one. */
  firstToken(requestId: string): void {
    this.backlog.settle(requestId);
  }

  report(groupId: string, r: GroupReport): void {
    this.index.setCapacity(groupId, r.kvBlocks);
    this.index.correct(groupId, r.hitTokens, r.queryTokens);
  }

  /** A decision another replica made (RouteDecision): the group holds those blocks now. */
  observe(d: RouteDecision): void {
    this.index.recordKept(d.group, d.kept, d.blockCount, d.hitBlocks, this.pickOptions.blockSize);
  }

  forget(groupId: string): void {
    this.index.forget(groupId);
  }
}
