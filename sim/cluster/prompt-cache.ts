/**
 * Prompts of a simulated workload as token ids and block hashes, built once per shared run of leading segments.
 * Every request of a tenant starts with the same 8,000-token system prompt (a conversation with its whole
 * history, a trace with its shared hash ids): materialising those tokens and hashing their 500 blocks again for
 * every request was most of what the simulator spent per request. Here a trie of leading segments keeps, per
 * node, the block hashes completed within its segment, and a segment's tokens are kept once per content key;
 * the last segment of a prompt (usually unique: a question) is computed as before and not kept.
 * Token ids are typed arrays: thousands of 8k-token prompts in flight as JS arrays were most of the garbage
 * collector's work (each copied by every young-generation collection it survived); a finished request's are
 * released and their memory reused.
 *
 * prompt(segments) equals { tokens: promptTokenIds(segments), blocks: promptBlockHashes(tokens) } exactly.
 */
import { chainBlockHash, ROOT_BLOCK_HASH } from '../../common/block-hash.ts';
import { PromptMemory } from './prompt-memory.ts';
import { type Segment, segmentTokens, writeSegmentIds } from './workloads/prompt-segments.ts';

export interface Prompt {
  tokens: Int32Array;
  /** Chained hashes of the prompt's full blocks (block-hashes.ts promptBlockHashes). */
  blocks: Float64Array;
}

interface Node {
  readonly key: number;
  /** Tokens of the prompt up to the end of this node's segment. */
  readonly end: number;
  /** Hashes of the blocks that end inside this segment. */
  readonly hashes: Float64Array;
  /** The last full block's hash up to the end of this segment (the chain's parent for what follows). */
  readonly lastHash: number;
  /** By the next segment's content key (then its length). */
  readonly children: Map<number, Node[]>;
}

export class PromptCache {
  private readonly root: Node = newNode(0, 0, new Float64Array(0), ROOT_BLOCK_HASH);
  /** Token ids of kept segments by content key (a key's tokens do not depend on where it appears). */
  private readonly ids = new Map<number, Int32Array>();
  /** Where prompts' arrays live; a finished request's are reused by later prompts. */
  private readonly memory = new PromptMemory();

  constructor(private readonly blockSize = 16) {
    if (!Number.isInteger(blockSize) || blockSize < 1)
      throw new RangeError(`blockSize must be a positive integer, got ${blockSize}`);
  }

  prompt(segments: readonly Segment[]): Prompt {
    const last = segments.length - 1;
    const tail = segments[last];
    if (tail === undefined) return { tokens: new Int32Array(0), blocks: new Float64Array(0) };
    const tokens = this.memory.int32s(segmentTokens(segments));
    let end = 0;
    for (let j = 0; j < last; j++) {
      const seg = segments[j] as Segment;
      const ids = this.keptIds(seg);
      tokens.set(ids.length === seg.tokens ? ids : ids.subarray(0, seg.tokens), end);
      end += seg.tokens;
    }
    writeSegmentIds(tail.key, tail.tokens, tokens, end);
    const blocks = this.memory.float64s(Math.floor(tokens.length / this.blockSize));
    let at = 0;
    let node = this.root;
    for (let j = 0; j < last; j++) {
      node = this.child(node, segments[j] as Segment, tokens);
      blocks.set(node.hashes, at);
      at += node.hashes.length;
    }
    this.hashBlocks(tokens, node.end, tokens.length, node.lastHash, blocks, at);
    return { tokens, blocks };
  }

  /**
   * The prompt's request is done (finished or dropped) and nothing reads its tokens or hashes any more: later
   * prompts may reuse their memory (prompt-memory.ts).
   */
  release(prompt: Prompt): void {
    this.memory.release(prompt.tokens);
    this.memory.release(prompt.blocks);
  }

  private keptIds(seg: Segment): Int32Array {
    let ids = this.ids.get(seg.key);
    if (ids === undefined || ids.length < seg.tokens) {
      // From the prompts' slabs too: a buffer of its own for each of ~800 tenants' prompts cost ~40 us each.
      if (ids !== undefined) this.memory.release(ids);
      ids = writeSegmentIds(seg.key, seg.tokens, this.memory.int32s(seg.tokens), 0);
      this.ids.set(seg.key, ids);
    }
    return ids;
  }

  /** The node after `seg` below `parent`, made (its blocks hashed) on first use; `tokens` hold the prompt. */
  private child(parent: Node, seg: Segment, tokens: Int32Array): Node {
    const end = parent.end + seg.tokens;
    let siblings = parent.children.get(seg.key);
    if (siblings === undefined) {
      siblings = [];
      parent.children.set(seg.key, siblings);
    }
    for (const c of siblings) if (c.end === end) return c;
    const b = this.blockSize;
    const hashes = this.memory.float64s(Math.floor(end / b) - Math.floor(parent.end / b));
    const lastHash = this.hashBlocks(tokens, parent.end, end, parent.lastHash, hashes, 0);
    const node = newNode(seg.key, end, hashes, lastHash);
    siblings.push(node);
    return node;
  }

  /**
   * Writes the hashes of the full blocks that end in (from, to] into `out` from index `at`, chained on `parent`
   * (the hash of the last full block ending at or before `from`); returns the last hash.
   */
  private hashBlocks(
    tokens: Int32Array,
    from: number,
    to: number,
    parent: number,
    out: Float64Array,
    at: number,
  ): number {
    const b = this.blockSize;
    let hash = parent;
    let k = at;
    // Straight from the typed array, no closure call per token (6M tokens per run at 64 groups).
    for (let start = Math.floor(from / b) * b; start + b <= to; start += b) {
      hash = chainBlockHash(hash, tokens, start, start + b);
      out[k++] = hash;
    }
    return hash;
  }
}

function newNode(key: number, end: number, hashes: Float64Array, lastHash: number): Node {
  return { key, end, hashes, lastHash, children: new Map() };
}
