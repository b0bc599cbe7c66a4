/**
 * The hashes the KV block pool's blocks hold, both ways: a block's hash (hashOf), and the block holding a hash
 * (blockOf), for the prefix cache. A hash has at most one holder, the first to claim it; a block holds at most
 * one hash, until it is taken for new data.
 *
 * The hash -> block direction is an open-addressing table (linear probing, backward-shift deletion) whose slots
 * hold only a block number: a slot's key is the hash its block holds, read from `hashes`. Four bytes a slot
 * where common/number-table.ts keeps a key and a value in sixteen: a 64-group simulation probes 64 of these
 * tables at random, once for every block a prompt newly caches, and at 16 bytes a slot they were 32 MB that
 * missed the CPU's caches and TLB on nearly every probe. Sized at twice the blocks, it never grows.
 */
import { canFillHole, mixNumberKey } from '../../../common/number-table.ts';

const FREE = 0;

export class BlockHashes {
  /** Per block, the hash it holds, or NaN. */
  private readonly hashes: Float64Array;
  /** Per slot, the holding block + 1, or FREE. */
  private readonly slots: Int32Array;
  private readonly mask: number;
  private readonly shift: number;

  constructor(numBlocks: number) {
    let bits = 1;
    while (1 << bits < 2 * numBlocks) bits++;
    if (bits > 30) throw new RangeError(`${numBlocks} KV blocks are too many for one pool`);
    this.hashes = new Float64Array(numBlocks).fill(Number.NaN);
    this.slots = new Int32Array(1 << bits);
    this.mask = (1 << bits) - 1;
    this.shift = 32 - bits;
  }

  /** The hash the block holds, or NaN. */
  hashOf(block: number): number {
    return this.hashes[block] as number;
  }

  /** The block holding this hash, if any. */
  blockOf(hash: number): number | undefined {
    const slots = this.slots;
    for (let i = this.home(hash); ; i = (i + 1) & this.mask) {
      const b = (slots[i] as number) - 1;
      if (b < 0) return undefined;
      if (this.hashes[b] === hash) return b;
    }
  }

  /**
   * The block (which holds no hash) now holds `hash`, unless another block holds it already (first holder wins):
   * true when it does. `hash` is not NaN.
   */
  claim(block: number, hash: number): boolean {
    const slots = this.slots;
    let i = this.home(hash);
    for (; slots[i] !== FREE; i = (i + 1) & this.mask)
      if (this.hashes[(slots[i] as number) - 1] === hash) return false;
    slots[i] = block + 1;
    this.hashes[block] = hash;
    return true;
  }

  /** The block is taken for new data: it holds no hash any more (none if it held none). */
  forget(block: number): void {
    const hash = this.hashes[block] as number;
    if (Number.isNaN(hash)) return;
    const slots = this.slots;
    let hole = this.home(hash);
    while (slots[hole] !== block + 1) hole = (hole + 1) & this.mask;
    // Backward shift: pull later entries of the probe run into the hole unless that would move one before its
    // home slot, so lookups never need tombstones.
    for (let j = (hole + 1) & this.mask; slots[j] !== FREE; j = (j + 1) & this.mask) {
      if (!canFillHole(hole, j, this.home(this.hashes[(slots[j] as number) - 1] as number))) continue;
      slots[hole] = slots[j] as number;
      hole = j;
    }
    slots[hole] = FREE;
    this.hashes[block] = Number.NaN;
  }

  private home(hash: number): number {
    return mixNumberKey(hash) >>> this.shift;
  }
}
