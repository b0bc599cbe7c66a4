/**
 * A scheduled request's state in the step scheduler (step-scheduler.ts) and its KV blocks in the pool, as vLLM
 * V1's KVCacheManager keeps them (vllm/v1/core/kv_cache_manager.py): the prefix-cache lookup at admission, block
 * allocation for the tokens a step schedules (full blocks registered in the prefix cache as soon as they are
 * scheduled), and release, last block first. Pure: no clock, no I/O.
 */
import { chainBlockHash, KvBlockPool } from './kv-block-pool.ts';
import type { FinishCause, SchedulerRequest } from './step-plan.ts';

export interface Seq<R extends SchedulerRequest = SchedulerRequest> {
  readonly req: R;
  readonly arrival: number;
  state: 'waiting' | 'running' | 'finished';
  /** Tokens whose KV is computed (or scheduled to be, during planning). */
  computed: number;
  readonly output: number[];
  /** Prompt + output tokens, kept here because every step reads it for every running request. */
  numTokens: number;
  /** KV blocks held, in token order. */
  readonly blocks: number[];
  /** Chained hashes of the full blocks known so far. */
  readonly hashes: number[];
  /** How many of `blocks` are registered in the prefix cache. */
  registered: number;
  started: boolean;
  /** The step that scheduled it last, and its tokens there. */
  plannedStep: number;
  plannedTokens: number;
  /** Why the token it sampled last ended it, or null (read when a completed step is reported). */
  finish: FinishCause | null;
}

export function newSeq<R extends SchedulerRequest>(req: R, arrival: number): Seq<R> {
  return {
    req,
    arrival,
    state: 'waiting',
    computed: 0,
    output: [],
    numTokens: req.promptIds.length,
    blocks: [],
    hashes: req.blockHashes ? req.blockHashes.slice() : [],
    registered: 0,
    started: false,
    plannedStep: -1,
    plannedTokens: 0,
    finish: null,
  };
}

/** No prefix-hit blocks: allocate()'s argument for running requests, shared so a step allocates nothing. */
export const NO_BLOCKS: readonly number[] = [];

export class SequenceKv {
  readonly pool: KvBlockPool;

  constructor(
    numBlocks: number,
    private readonly blockSize: number,
    private readonly prefixCaching: boolean,
  ) {
    this.pool = new KvBlockPool(numBlocks);
  }

  /**
   * Prompt tokens of `promptIds` the prefix cache holds right now, as admission would find them (full blocks, at
   * most all but the last token). No side effect. `blockHashes`: the prompt's block hashes, when known.
   */
  cachedPrefixTokens(promptIds: ArrayLike<number>, blockHashes?: readonly number[]): number {
    if (!this.prefixCaching) return 0;
    const full = Math.floor((promptIds.length - 1) / this.blockSize);
    let hash = 0;
    for (let k = 0; k < full; k++) {
      hash =
        blockHashes !== undefined
          ? (blockHashes[k] as number)
          : chainBlockHash(hash, (i) => promptIds[i] as number, k * this.blockSize, this.blockSize);
      if (this.pool.lookup(hash) === undefined) return k * this.blockSize;
    }
    return full * this.blockSize;
  }

  /** The cached blocks holding the longest prefix of the request, leaving at least its last token to compute. */
  cachedPrefix(seq: Seq): number[] {
    if (!this.prefixCaching) return [];
    const full = Math.floor((seq.numTokens - 1) / this.blockSize);
    const hashes = this.hashesUpTo(seq, full);
    const found: number[] = [];
    for (let k = 0; k < full; k++) {
      const b = this.pool.lookup(hashes[k] as number);
      if (b === undefined) break;
      found.push(b);
    }
    return found;
  }

  /**
   * Takes blocks for `n` more tokens after seq.computed (prefix-hit blocks first); false, holding nothing new,
   * when the free queue is too short. Full blocks are registered in the prefix cache as soon as they are
   * scheduled, as V1 does.
   */
  allocate(seq: Seq, cachedBlocks: readonly number[], n: number): boolean {
    const end = seq.computed + n;
    // Most decode steps: the token lands in a block already held and completes none, so nothing changes.
    if (
      cachedBlocks.length === 0 &&
      end <= seq.blocks.length * this.blockSize &&
      Math.floor(end / this.blockSize) <= seq.registered
    )
      return true;
    const needed = Math.ceil(end / this.blockSize) - seq.blocks.length - cachedBlocks.length;
    let reclaimed = 0;
    for (const b of cachedBlocks) if (this.pool.isFree(b)) reclaimed++;
    if (needed + reclaimed > this.pool.numFree) return false;
    for (const b of cachedBlocks) {
      this.pool.touch(b);
      seq.blocks.push(b);
    }
    seq.registered = Math.max(seq.registered, cachedBlocks.length);
    for (let k = 0; k < needed; k++) seq.blocks.push(this.pool.allocate());
    // Most decode steps complete no block: nothing to hash or register.
    const full = Math.floor(end / this.blockSize);
    if (this.prefixCaching && full > seq.registered) {
      const hashes = this.hashesUpTo(seq, full);
      for (let k = seq.registered; k < full; k++)
        this.pool.register(seq.blocks[k] as number, hashes[k] as number);
      seq.registered = Math.max(seq.registered, full);
    }
    return true;
  }

  /** Frees every block the request holds (last first) and forgets what of them it had computed. */
  release(seq: Seq): void {
    this.pool.release(seq.blocks);
    seq.blocks.length = 0;
    seq.registered = 0;
  }

  /** Hashes of the first `count` full blocks of the request's tokens. */
  private hashesUpTo(seq: Seq, count: number): readonly number[] {
    for (let k = seq.hashes.length; k < count; k++)
      seq.hashes.push(
        chainBlockHash(
          k === 0 ? 0 : (seq.hashes[k - 1] as number),
          (i) => tokenAt(seq, i),
          k * this.blockSize,
          this.blockSize,
        ),
      );
    return seq.hashes;
  }
}

function tokenAt(seq: Seq, i: number): number {
  const p = seq.req.promptIds;
  return i < p.length ? (p[i] as number) : (seq.output[i - p.length] as number);
}
