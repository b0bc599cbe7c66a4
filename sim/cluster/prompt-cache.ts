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
import { type Segment, segmentIds, segmentTokens, writeSegmentIds } from './workloads/prompt-segments.ts';

/** Token and hash arrays take buffers in steps of 4 KiB, so released ones fit later prompts. */
const BYTE_STEP = 4096;

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
  readonly hashes: readonly number[];
  /** The last full block's hash up to the end of this segment (the chain's parent for what follows). */
  readonly lastHash: number;
  /** By the next segment's content key (then its length). */
  readonly children: Map<number, Node[]>;
}

export class PromptCache {
  private readonly root: Node = newNode(0, 0, [], ROOT_BLOCK_HASH);
  /** Token ids of kept segments by content key (a key's tokens do not depend on where it appears). */
  private readonly ids = new Map<number, Int32Array>();
  /** Buffers of prompts whose requests are done, by size in bytes: later prompts reuse them. */
  private readonly spare = new Map<number, ArrayBuffer[]>();

  constructor(private readonly blockSize = 16) {
    if (!Number.isInteger(blockSize) || blockSize < 1)
      throw new RangeError(`blockSize must be a positive integer, got ${blockSize}`);
  }

  prompt(segments: readonly Segment[]): Prompt {
    const last = segments.length - 1;
    const tail = segments[last];
    if (tail === undefined) return { tokens: new Int32Array(0), blocks: new Float64Array(0) };
    const tokens = this.tokenArray(segmentTokens(segments));
    let end = 0;
    for (let j = 0; j < last; j++) {
      const seg = segments[j] as Segment;
      tokens.set(this.keptIds(seg).subarray(0, seg.tokens), end);
      end += seg.tokens;
    }
    writeSegmentIds(tail.key, tail.tokens, tokens, end);
    const blocks = this.hashArray(Math.floor(tokens.length / this.blockSize));
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
   * prompts may reuse their memory. Fresh memory is what prompts cost most: 32 KB of new pages per 8k-token
   * prompt, zeroed and faulted in, cost more than building the prompt; and hashes in a JS array living as long
   * as its request were copied by every young-generation collection.
   */
  release(prompt: Prompt): void {
    this.recycle(prompt.tokens.buffer as ArrayBuffer);
    this.recycle(prompt.blocks.buffer as ArrayBuffer);
  }

  /** Room for one prompt's token ids. */
  private tokenArray(length: number): Int32Array {
    return length === 0 ? new Int32Array(0) : new Int32Array(this.buffer(length * 4), 0, length);
  }

  /** Room for one prompt's block hashes. */
  private hashArray(length: number): Float64Array {
    return length === 0 ? new Float64Array(0) : new Float64Array(this.buffer(length * 8), 0, length);
  }

  /** A released buffer of the size class of `bytes` (a multiple of BYTE_STEP), or a new one. */
  private buffer(bytes: number): ArrayBuffer {
    const size = Math.ceil(bytes / BYTE_STEP) * BYTE_STEP;
    return this.spare.get(size)?.pop() ?? new ArrayBuffer(size);
  }

  private recycle(buffer: ArrayBuffer): void {
    const size = buffer.byteLength;
    if (size === 0 || size % BYTE_STEP !== 0) return;
    const free = this.spare.get(size);
    if (free) free.push(buffer);
    else this.spare.set(size, [buffer]);
  }

  private keptIds(seg: Segment): Int32Array {
    let ids = this.ids.get(seg.key);
    if (ids === undefined || ids.length < seg.tokens) {
      ids = segmentIds(seg.key, seg.tokens);
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
    const hashes: number[] = [];
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
    out: { [index: number]: number },
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

function newNode(key: number, end: number, hashes: readonly number[], lastHash: number): Node {
  return { key, end, hashes, lastHash, children: new Map() };
}
