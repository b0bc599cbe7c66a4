/**
 * A scheduled request's state in the step scheduler (step-scheduler.ts) and its KV blocks in the pool, as vLLM
 * V1's KVCacheManager keeps them (vllm/v1/core/kv_cache_manager.py): the prefix-cache lookup at admission, block
 * allocation for the tokens a step schedules (full blocks registered in the prefix cache as soon as they are
 * scheduled), and release, last block first. Pure: no clock, no I/O.
 */
import { chainBlockHash as hashBlockTokens } from '../../../common/block-hash.ts';
import { chainBlockHash, KvBlockPool } from './kv-block-pool.ts';
import { promptFormError, promptLength } from './request-limits.ts';
import type { FinishCause, SchedulerPrompt, SchedulerRequest } from './step-plan.ts';

export interface Seq<R extends SchedulerRequest = SchedulerRequest> {
  readonly req: R;
  readonly arrival: number;
  /** req.maxTokens, kept here: completing a step reads it for every request and nothing else of req. */
  readonly maxTokens: number;
  state: 'waiting' | 'running' | 'finished';
  /** Tokens whose KV is computed (or scheduled to be, during planning). */
  computed: number;
  /**
   * Sampled token ids: the first `outputs` of a list from SequenceKv's pool, the last one also in lastToken
   * (none kept when they are a fixed function of the request: SequenceKv's answerToken).
   */
  output: Int32Array;
  outputs: number;
  lastToken: number;
  /** Prompt + output tokens, kept here because every step reads it for every running request. */
  numTokens: number;
  /** Tokens in its prompt (its form: step-plan.ts SchedulerPrompt). */
  readonly promptLength: number;
  /**
   * The prompt's token ids the request came with, from index promptIdsFrom: all of them (from 0), or only its
   * tail after the full blocks whose hashes it came with (SchedulerPrompt's hashed form).
   */
  readonly promptIds: ArrayLike<number>;
  readonly promptIdsFrom: number;
  /** KV blocks held, in token order: the first `held` of a block list from SequenceKv's pool. */
  blocks: Int32Array;
  held: number;
  /** Chained hashes of the prompt's full blocks the request came with (SchedulerRequest.blockHashes), or none. */
  readonly promptHashes: ArrayLike<number>;
  /** Chained hashes of the full blocks after those the request came with (its answerBlockHashes), or none. */
  readonly answerHashes: ArrayLike<number>;
  /** Chained hashes of the full blocks after all those, computed here as far as needed. */
  readonly hashes: number[];
  /** How many of `blocks` are registered in the prefix cache. */
  registered: number;
  /**
   * The furthest context (tokens) its blocks hold without a new block or a newly full one to register:
   * min(blocks x block size, (registered + 1) x block size - 1). Most decode steps stay within it and read
   * nothing else of the request (its blocks array is one more cache miss per request per step).
   */
  quietEnd: number;
  started: boolean;
  /** The step that scheduled it last, and its tokens there. */
  plannedStep: number;
  plannedTokens: number;
  /** Why the token it sampled last ended it, or null (read when a completed step is reported). */
  finish: FinishCause | null;
}

/** Room for this many output tokens at a request's first one (or its max_tokens, if fewer). */
const FIRST_OUTPUT_LIST = 512;

/** The list of a request that holds no blocks, or has sampled nothing. */
const EMPTY_LIST = new Int32Array(0);

/** A request that came without block hashes: shared, so adding one allocates nothing for them. */
const NO_HASHES = new Float64Array(0);

/** A request checked by checkRequest (request-limits.ts), so its prompt's parts agree. */
export function newSeq<R extends SchedulerRequest>(req: R, arrival: number): Seq<R> {
  const length = promptLength(req);
  const ids = req.promptIds ?? (req.promptTail as ArrayLike<number>);
  return {
    req,
    arrival,
    maxTokens: req.maxTokens,
    state: 'waiting',
    computed: 0,
    output: EMPTY_LIST,
    outputs: 0,
    lastToken: 0,
    numTokens: length,
    promptLength: length,
    promptIds: ids,
    promptIdsFrom: length - ids.length,
    blocks: EMPTY_LIST,
    held: 0,
    promptHashes: req.blockHashes ?? NO_HASHES,
    answerHashes: req.answerBlockHashes ?? NO_HASHES,
    hashes: [],
    registered: 0,
    quietEnd: 0,
    started: false,
    plannedStep: -1,
    plannedTokens: 0,
    finish: null,
  };
}

export class SequenceKv {
  readonly pool: KvBlockPool;
  /** The blocks the last cachedPrefix found, in prompt order (a scratch array, reused). */
  private readonly hits: number[] = [];
  /** Released lists by size class (log2 of their length). */
  private readonly spareLists: Int32Array[][] = [];
  /** The tokens of the block hashUpTo hashes (a scratch array, reused). */
  private readonly blockTokens: Float64Array;

  /**
   * `answerToken`: when requests' output tokens are a fixed function of the request (the cluster simulator's
   * answers), none is stored: the few a full block's hash needs are asked for again.
   */
  constructor(
    numBlocks: number,
    private readonly blockSize: number,
    private readonly prefixCaching: boolean,
    private readonly answerToken?: (req: SchedulerRequest, index: number) => number,
  ) {
    this.pool = new KvBlockPool(numBlocks);
    this.blockTokens = new Float64Array(blockSize);
  }

  /**
   * Prompt tokens the prefix cache holds right now, as admission would find them (full blocks, at most all but
   * the last token). No side effect. The prompt's block hashes are read when given, else its ids are hashed.
   */
  cachedPrefixTokens(prompt: SchedulerPrompt): number {
    const why = promptFormError(prompt, this.blockSize);
    if (why !== null) throw new RangeError(why);
    if (!this.prefixCaching) return 0;
    const full = Math.max(0, Math.floor((promptLength(prompt) - 1) / this.blockSize));
    const { promptIds, blockHashes } = prompt;
    let hash = 0;
    let block: number | undefined;
    for (let k = 0; k < full; k++) {
      hash =
        blockHashes !== undefined
          ? (blockHashes[k] as number)
          : chainBlockHash(hash, (i) => promptIds?.[i] as number, k * this.blockSize, this.blockSize);
      block = k === 0 ? this.pool.lookup(hash) : this.pool.lookupAfter(block as number, hash);
      if (block === undefined) return k * this.blockSize;
    }
    return full * this.blockSize;
  }

  /**
   * How many leading full blocks of the request the prefix cache holds, leaving at least its last token to
   * compute; admit() takes them. The blocks found wait in `hits`, which the next call overwrites.
   */
  cachedPrefix(seq: Seq): number {
    if (!this.prefixCaching) return 0;
    const full = Math.floor((seq.numTokens - 1) / this.blockSize);
    this.hashUpTo(seq, full);
    const hits = this.hits;
    let b = full > 0 ? this.pool.lookup(hashAt(seq, 0)) : undefined;
    let k = 0;
    while (b !== undefined) {
      hits[k++] = b;
      if (k === full) break;
      b = this.pool.lookupAfter(b, hashAt(seq, k));
    }
    return k;
  }

  /**
   * A waiting request is admitted: takes the `hitBlocks` cachedPrefix found (its tokens are seq.computed) and
   * blocks for `n` more tokens; false, holding nothing, when the free queue is too short.
   */
  admit(seq: Seq, hitBlocks: number, n: number): boolean {
    return this.take(seq, hitBlocks, n);
  }

  /**
   * Takes blocks for `n` more tokens of a running request after seq.computed; false, holding nothing new, when
   * the free queue is too short.
   */
  allocate(seq: Seq, n: number): boolean {
    return this.take(seq, 0, n);
  }

  /** Frees every block the request holds (last first) and forgets what of them it had computed. */
  release(seq: Seq): void {
    this.pool.release(seq.blocks, seq.held);
    this.recycle(seq.blocks);
    seq.blocks = EMPTY_LIST;
    seq.held = 0;
    seq.registered = 0;
    seq.quietEnd = 0;
  }

  /** The request's next output token is its answer's (answerToken): only counted. */
  countOutput(seq: Seq): void {
    seq.outputs++;
    seq.numTokens++;
  }

  /** Appends a sampled token to the request (its output list grows by size class). */
  appendOutput(seq: Seq, token: number): void {
    if (seq.outputs === seq.output.length) {
      const grown = this.list(Math.max(seq.outputs + 1, Math.min(seq.req.maxTokens, FIRST_OUTPUT_LIST)));
      grown.set(seq.output.subarray(0, seq.outputs));
      this.recycle(seq.output);
      seq.output = grown;
    }
    seq.output[seq.outputs++] = token;
    seq.lastToken = token;
    seq.numTokens++;
  }

  /** The request is gone (finished or aborted): its blocks are freed and its lists return to the pool. */
  retire(seq: Seq): void {
    this.release(seq);
    this.recycle(seq.output);
    seq.output = EMPTY_LIST;
  }

  /**
   * `hitBlocks` prefix-hit blocks (from `hits`) first, then fresh ones, as V1's allocate_slots. Full blocks are
   * registered in the prefix cache as soon as they are scheduled, as V1 does.
   */
  private take(seq: Seq, hitBlocks: number, n: number): boolean {
    const end = seq.computed + n;
    // Most decode steps: the token lands in a block already held and completes none, so nothing changes.
    if (hitBlocks === 0 && end <= seq.quietEnd) return true;
    const held = seq.held;
    const needed = Math.ceil(end / this.blockSize) - held - hitBlocks;
    const hits = this.hits;
    // Indexed loops throughout: for-of over these arrays allocated an iterator result per block.
    // Hits taken back from the free queue need free blocks too; counted only when they could exceed them.
    if (needed + hitBlocks > this.pool.numFree) {
      let reclaimed = 0;
      for (let k = 0; k < hitBlocks; k++) if (this.pool.isFree(hits[k] as number)) reclaimed++;
      if (needed + reclaimed > this.pool.numFree) return false;
    }
    let blocks = seq.blocks;
    const total = held + hitBlocks + Math.max(0, needed);
    if (total > blocks.length) {
      const grown = this.list(total);
      grown.set(blocks.subarray(0, held));
      this.recycle(blocks);
      blocks = grown;
      seq.blocks = grown;
    }
    let at = held;
    for (let k = 0; k < hitBlocks; k++) {
      const b = hits[k] as number;
      this.pool.touch(b);
      blocks[at++] = b;
    }
    for (let k = 0; k < needed; k++) blocks[at++] = this.pool.allocate();
    seq.held = at;
    seq.registered = Math.max(seq.registered, hitBlocks);
    // Most decode steps complete no block: nothing to hash or register.
    const full = Math.floor(end / this.blockSize);
    if (this.prefixCaching && full > seq.registered) {
      this.hashUpTo(seq, full);
      for (let k = seq.registered; k < full; k++)
        this.pool.register(blocks[k] as number, hashAt(seq, k), k > 0 ? blocks[k - 1] : undefined);
      seq.registered = full;
    }
    seq.quietEnd = Math.min(seq.held * this.blockSize, (seq.registered + 1) * this.blockSize - 1);
    return true;
  }

  /**
   * A list (of blocks, or of output tokens) with room for `count`: a released one of its size class (a power of
   * two), or a new one. These lists live as long as their requests (seconds to minutes of simulated time): as JS
   * arrays, every young-generation collection copied each of them until it was promoted, most of the
   * simulator's GC time.
   */
  private list(count: number): Int32Array {
    // ceil(log2(count)) in integers (Math.log2 is a call into the runtime, once per take that grows a list).
    const sizeClass = Math.max(4, 32 - Math.clz32(count - 1));
    return this.spareLists[sizeClass]?.pop() ?? new Int32Array(1 << sizeClass);
  }

  private recycle(list: Int32Array): void {
    if (list.length === 0) return;
    const sizeClass = 31 - Math.clz32(list.length);
    const spare = this.spareLists[sizeClass];
    if (spare) spare.push(list);
    else this.spareLists[sizeClass] = [list];
  }

  /**
   * Makes sure the hashes of the request's first `count` full blocks are known (given ones are read, not hashed:
   * with answerBlockHashes, all that the request's tokens ever fill). Each block's tokens are copied
   * into `blockTokens` first: most are answer tokens (asked of answerToken, or read from the output list), and a
   * closure per block and a call per token through it cost more than the hash.
   */
  private hashUpTo(seq: Seq, count: number): void {
    const size = this.blockSize;
    const tokens = this.blockTokens;
    const prompt = seq.promptIds;
    const from = seq.promptIdsFrom;
    const length = seq.promptLength;
    for (let k = seq.promptHashes.length + seq.answerHashes.length + seq.hashes.length; k < count; k++) {
      const start = k * size;
      for (let j = 0; j < size; j++) {
        const i = start + j;
        tokens[j] =
          i < length
            ? (prompt[i - from] as number)
            : this.answerToken
              ? this.answerToken(seq.req, i - length)
              : (seq.output[i - length] as number);
      }
      seq.hashes.push(hashBlockTokens(k === 0 ? 0 : hashAt(seq, k - 1), tokens, 0, size));
    }
  }
}

/** The hash of the request's k-th full block (known: see hashUpTo). */
function hashAt(seq: Seq, k: number): number {
  const prompt = seq.promptHashes.length;
  if (k < prompt) return seq.promptHashes[k] as number;
  const given = prompt + seq.answerHashes.length;
  return (k < given ? seq.answerHashes[k - prompt] : seq.hashes[k - given]) as number;
}
