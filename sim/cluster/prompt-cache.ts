/**
 * Prompts of a simulated workload as token ids and block hashes, built once per shared run of leading segments.
 * Every request of a tenant starts with the same 8,000-token system prompt (a conversation with its whole
 * history, a trace with its shared hash ids): materialising those tokens and hashing their 500 blocks again for
 * every request was most of what the simulator spent per request. Here a trie of leading segments keeps, per
 * node, the block hashes completed within its segment, and a segment's tokens are kept once per content key;
 * the last segment of a prompt (usually unique: a question) is computed as before and not kept.
 *
 * prompt(segments) equals { tokens: promptTokenIds(segments), blocks: promptBlockHashes(tokens) } exactly.
 */
import { chainBlockHash, ROOT_BLOCK_HASH } from '../../controller/scheduler/block-hashes.ts';
import { type Segment, segmentIds } from './workloads/prompt-segments.ts';

export interface Prompt {
  tokens: number[];
  /** Chained hashes of the prompt's full blocks (block-hashes.ts promptBlockHashes). */
  blocks: number[];
}

interface Node {
  readonly key: number;
  /** Tokens of the prompt up to the end of this node's segment. */
  readonly end: number;
  /** Hashes of the blocks that end inside this segment. */
  readonly hashes: readonly number[];
  /** The last full block's hash up to the end of this segment (the chain's parent for what follows). */
  readonly lastHash: number;
  readonly children: Node[];
}

export class PromptCache {
  private readonly root: Node = { key: 0, end: 0, hashes: [], lastHash: ROOT_BLOCK_HASH, children: [] };
  /** Token ids of kept segments by content key and length (a key's tokens do not depend on where it appears). */
  private readonly ids = new Map<number, number[]>();

  constructor(private readonly blockSize = 16) {
    if (!Number.isInteger(blockSize) || blockSize < 1)
      throw new RangeError(`blockSize must be a positive integer, got ${blockSize}`);
  }

  prompt(segments: readonly Segment[]): Prompt {
    const last = segments.length - 1;
    const tail = segments[last];
    if (tail === undefined) return { tokens: [], blocks: [] };
    // Arrays of small integers concatenate as one copy each.
    const parts: number[][] = [];
    for (let j = 0; j < last; j++) parts.push(this.keptIds(segments[j] as Segment));
    const tailIds = segmentIds(tail.key, tail.tokens);
    const tokens = parts.length === 0 ? tailIds : (parts[0] as number[]).concat(...parts.slice(1), tailIds);
    const blocks: number[][] = [];
    let node = this.root;
    for (let j = 0; j < last; j++) {
      node = this.child(node, segments[j] as Segment, tokens);
      blocks.push(node.hashes as number[]);
    }
    const tailBlocks: number[] = [];
    this.hashBlocks(tokens, node.end, tokens.length, node.lastHash, tailBlocks);
    return {
      tokens,
      blocks: blocks.length === 0 ? tailBlocks : ([] as number[]).concat(...blocks, tailBlocks),
    };
  }

  private keptIds(seg: Segment): number[] {
    let ids = this.ids.get(seg.key);
    if (ids === undefined || ids.length < seg.tokens) {
      ids = segmentIds(seg.key, seg.tokens);
      this.ids.set(seg.key, ids);
    }
    return ids.length === seg.tokens ? ids : ids.slice(0, seg.tokens);
  }

  /** The node after `seg` below `parent`, made (its blocks hashed) on first use; `tokens` hold the prompt. */
  private child(parent: Node, seg: Segment, tokens: readonly number[]): Node {
    const end = parent.end + seg.tokens;
    for (const c of parent.children) if (c.key === seg.key && c.end === end) return c;
    const hashes: number[] = [];
    const lastHash = this.hashBlocks(tokens, parent.end, end, parent.lastHash, hashes);
    const node: Node = { key: seg.key, end, hashes, lastHash, children: [] };
    parent.children.push(node);
    return node;
  }

  /**
   * Appends the hashes of the full blocks that end in (from, to], chained on `parent` (the hash of the last full
   * block ending at or before `from`); returns the last hash.
   */
  private hashBlocks(
    tokens: readonly number[],
    from: number,
    to: number,
    parent: number,
    out: number[],
  ): number {
    const b = this.blockSize;
    let hash = parent;
    for (let start = Math.floor(from / b) * b; start + b <= to; start += b) {
      hash = chainBlockHash(hash, tokens, start, start + b);
      out.push(hash);
    }
    return hash;
  }
}
