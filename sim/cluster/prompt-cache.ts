/**
 * Prompts of a simulated workload as the engines and the router take them: their length, their full blocks'
 * chained hashes and only the token ids after the last full block (step-plan.ts SchedulerPrompt's hashed form:
 * the engine reads a prompt's ids only past the hashes it was given). Thousands of 8k-token prompts are in
 * flight at 64 groups: kept whole, their ids were 142 MB at the peak, and building and faulting them in a tenth
 * of a run.
 *
 * Hashes are built once per shared run of leading segments: every request of a tenant starts with the same
 * 8,000-token system prompt (a conversation with its whole history, a trace with its shared hash ids), and
 * hashing its 500 blocks again for every request was most of what the simulator spent per request. A trie of
 * leading segments keeps, per node, the hashes of the blocks completed within its segment; the last segment of
 * a prompt (usually unique: a question) is hashed per prompt. The ids hashed are written into one scratch array,
 * reused, and dropped.
 *
 * prompt(segments) equals, from tokens = promptTokenIds(segments): { length: tokens.length,
 * blocks: promptBlockHashes(tokens), tail: the tokens after the last full block } exactly.
 */
import { chainBlockHash, ROOT_BLOCK_HASH } from '../../common/block-hash.ts';
import { PromptMemory } from './prompt-memory.ts';
import { type Segment, segmentTokens, writePromptIds } from './workloads/prompt-segments.ts';

export interface Prompt {
  /** Tokens in the prompt. */
  readonly length: number;
  /** Chained hashes of the prompt's full blocks (block-hashes.ts promptBlockHashes). */
  readonly blocks: Float64Array;
  /** The token ids after the prompt's last full block (fewer than a block). */
  readonly tail: Int32Array;
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
  /** Where prompts' and nodes' block hashes live; a finished request's are reused by later prompts. */
  private readonly memory = new PromptMemory();
  /** Token ids being hashed, from a block boundary (one array, grown as needed and reused). */
  private scratch = new Int32Array(0);

  constructor(private readonly blockSize = 16) {
    if (!Number.isInteger(blockSize) || blockSize < 1)
      throw new RangeError(`blockSize must be a positive integer, got ${blockSize}`);
  }

  prompt(segments: readonly Segment[]): Prompt {
    const b = this.blockSize;
    const length = segmentTokens(segments);
    const blocks = this.memory.float64s(Math.floor(length / b));
    let at = 0;
    let node = this.root;
    for (let j = 0; j < segments.length - 1; j++) {
      node = this.child(node, segments, j);
      blocks.set(node.hashes, at);
      at += node.hashes.length;
    }
    const start = this.writeIds(segments, node.end, length);
    this.hashBlocks(length - start, node.lastHash, blocks, at);
    const full = Math.floor(length / b) * b;
    return { length, blocks, tail: this.scratch.slice(full - start, length - start) };
  }

  /**
   * The prompt's request is done (finished or dropped) and nothing reads its hashes any more: later prompts may
   * reuse their memory (prompt-memory.ts).
   */
  release(prompt: Prompt): void {
    this.memory.release(prompt.blocks);
  }

  /** The node after `segments[j]` below `parent` (the node of the segments before it), made on first use. */
  private child(parent: Node, segments: readonly Segment[], j: number): Node {
    const seg = segments[j] as Segment;
    const end = parent.end + seg.tokens;
    let siblings = parent.children.get(seg.key);
    if (siblings === undefined) {
      siblings = [];
      parent.children.set(seg.key, siblings);
    }
    for (const c of siblings) if (c.end === end) return c;
    const b = this.blockSize;
    const hashes = this.memory.float64s(Math.floor(end / b) - Math.floor(parent.end / b));
    const start = this.writeIds(segments, parent.end, end);
    const lastHash = this.hashBlocks(end - start, parent.lastHash, hashes, 0);
    const node = newNode(seg.key, end, hashes, lastHash);
    siblings.push(node);
    return node;
  }

  /**
   * Writes the prompt's token ids from the start of the block holding token `from` up to `to` into the scratch
   * array (a block that straddles segments takes its first tokens from those before); returns where they start.
   */
  private writeIds(segments: readonly Segment[], from: number, to: number): number {
    const start = Math.floor(from / this.blockSize) * this.blockSize;
    if (this.scratch.length < to - start)
      this.scratch = new Int32Array(Math.max(to - start, 2 * this.scratch.length));
    writePromptIds(segments, start, to, this.scratch);
    return start;
  }

  /**
   * Writes the hashes of the full blocks among the scratch array's first `count` ids into `out` from index `at`,
   * chained on `parent` (the hash of the block before the first); returns the last hash.
   */
  private hashBlocks(count: number, parent: number, out: Float64Array, at: number): number {
    const b = this.blockSize;
    const ids = this.scratch;
    let hash = parent;
    let k = at;
    // Straight from the typed array, no closure call per token (6M tokens per run at 64 groups).
    for (let start = 0; start + b <= count; start += b) {
      hash = chainBlockHash(hash, ids, start, start + b);
      out[k++] = hash;
    }
    return hash;
  }
}

function newNode(key: number, end: number, hashes: Float64Array, lastHash: number): Node {
  return { key, end, hashes, lastHash, children: new Map() };
}
