/**
 * The KV cache as vLLM V1's block pool (vllm/v1/core/block_pool.py): a fixed number of blocks of 16 tokens,
 * each with a reference count; free blocks wait in one LRU queue, and a free block that still holds a full,
 * hashed block of tokens stays findable by its hash (prefix caching) until it is taken for new data (evicted).
 *   - allocate: takes the head of the free queue (the least recently freed) and forgets its hash;
 *   - touch: a prefix hit on a cached block takes a reference (and takes it out of the free queue if it was free);
 *   - release: drops references; blocks that reach zero go to the tail of the queue. Callers release a
 *     request's blocks last-first, as V1 does, so the tail of a prompt is evicted before its shared head.
 * Pure data structure: O(1) per block, no allocation per call.
 *
 * A prompt's cached blocks are looked up one after another along its chain of hashes. Every block remembers the
 * block registered or found after it last time (`after`): checking that hint against the hash that block holds
 * answers most lookups from two small arrays instead of probing the hash table, whose random slots miss the CPU
 * cache when dozens of groups are simulated. A hint is only a guess; the answer is exact: a block holds a hash
 * exactly while it is the one the prefix cache finds for it (block-hashes.ts keeps both directions together).
 */

import { chainBlockHashAt } from '../../../common/block-hash.ts';
import { BlockHashes } from './block-hashes.ts';

const NONE = -1;

/**
 * The hash of one full block of `size` tokens from `start`, chained on its parent's (vLLM's hash_block_tokens):
 * common/block-hash.ts's, the one the controller's router computes, so a router's block is exactly this cache's.
 * The first block's parent is 0 (ROOT_BLOCK_HASH).
 */
export function chainBlockHash(
  parent: number,
  tokenAt: (i: number) => number,
  start: number,
  size: number,
): number {
  return chainBlockHashAt(parent, tokenAt, start, start + size);
}

/**
 * The links of a free queue holding every block in order: what appending each would build, in one pass (a
 * simulator builds dozens of pools of ten thousand blocks per run). Its own function, with nothing after its loop:
 * in the constructor, the loop was compiled mid-run and that code thrown away at the first statement after it,
 * which had never run, at every pool (64 deoptimisations per 64-group run).
 */
function linkInOrder(prev: Int32Array, next: Int32Array): void {
  const last = prev.length - 1;
  // Both ends first: code after the loop would have no type feedback when the loop is compiled.
  prev[0] = NONE;
  next[last] = NONE;
  for (let b = 0; b < last; b++) {
    next[b] = b + 1;
    prev[b + 1] = b;
  }
}

export class KvBlockPool {
  private readonly refs: Int32Array;
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  /** The block the last prefix lookup found after this one, or NONE: a hint, checked against the hash it holds. */
  private readonly after: Int32Array;
  private head = NONE;
  private tail = NONE;
  private free = 0;
  /** Which cached full block each block holds, and the block caching each hash. */
  private readonly cached: BlockHashes;

  constructor(readonly numBlocks: number) {
    if (!Number.isInteger(numBlocks) || numBlocks < 1)
      throw new RangeError(`the KV cache needs at least one block, got ${numBlocks}`);
    this.refs = new Int32Array(numBlocks);
    this.cached = new BlockHashes(numBlocks);
    this.after = new Int32Array(numBlocks).fill(NONE);
    this.prev = new Int32Array(numBlocks);
    this.next = new Int32Array(numBlocks);
    linkInOrder(this.prev, this.next);
    this.head = 0;
    this.tail = numBlocks - 1;
    this.free = numBlocks;
  }

  /** Blocks in the free queue, cached or not (what vLLM's usage gauge counts as free). */
  get numFree(): number {
    return this.free;
  }

  /** vLLM's kv_cache_usage_perc: the fraction of blocks some request holds. */
  get usage(): number {
    return 1 - this.free / this.numBlocks;
  }

  /** The block caching this hash of a prompt's first block, if any. */
  lookup(hash: number): number | undefined {
    return this.cached.blockOf(hash);
  }

  /** The block caching `hash`, of the block that follows `previous` (a block lookup found) in a prompt's chain. */
  lookupAfter(previous: number, hash: number): number | undefined {
    const hint = this.after[previous] as number;
    if (hint !== NONE && this.cached.hashOf(hint) === hash) return hint;
    const b = this.cached.childOf(previous, hash);
    if (b !== undefined) this.after[previous] = b;
    return b;
  }

  isFree(block: number): boolean {
    return this.refs[block] === 0;
  }

  touch(block: number): void {
    if (this.refs[block] === 0) this.unlink(block);
    this.refs[block] = (this.refs[block] ?? 0) + 1;
  }

  /** A free block for new data; the caller checked numFree first. */
  allocate(): number {
    const b = this.head;
    if (b === NONE) throw new RangeError('no free KV block (the caller must check numFree)');
    this.unlink(b);
    this.cached.forget(b);
    this.refs[b] = 1;
    return b;
  }

  /**
   * Records that a held block now holds the full block with this hash (first holder of a hash wins).
   * `previous`: the block before it in its request (none for a prompt's first block), whose hash this one is
   * chained on; it then hints at this block (the next request with this prefix finds it without probing the
   * table; without the hint, the first lookup after every newly cached block did).
   */
  register(block: number, hash: number, previous?: number): void {
    if (!Number.isNaN(this.cached.hashOf(block))) return;
    if (!this.cached.claim(block, hash, previous)) return;
    if (previous !== undefined) this.after[previous] = block;
  }

  /** Drops one reference on each of the first `count` blocks, last block first. */
  release(blocks: ArrayLike<number>, count = blocks.length): void {
    for (let i = count - 1; i >= 0; i--) {
      const b = blocks[i] as number;
      const r = (this.refs[b] ?? 0) - 1;
      this.refs[b] = r;
      if (r === 0) this.append(b);
    }
  }

  private append(b: number): void {
    this.prev[b] = this.tail;
    this.next[b] = NONE;
    if (this.tail === NONE) this.head = b;
    else this.next[this.tail] = b;
    this.tail = b;
    this.free++;
  }

  private unlink(b: number): void {
    const p = this.prev[b] ?? NONE;
    const n = this.next[b] ?? NONE;
    if (p === NONE) this.head = n;
    else this.next[p] = n;
    if (n === NONE) this.tail = p;
    else this.prev[n] = p;
    this.prev[b] = NONE;
    this.next[b] = NONE;
    this.free--;
  }
}
