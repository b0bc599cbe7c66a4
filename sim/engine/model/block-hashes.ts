/**
 * The hashes the KV block pool's blocks hold, both ways: a block's hash (hashOf), and the block holding a hash
 * (blockOf for a prompt's first block, childOf for the block after one), for the prefix cache. A hash has at most
 * one holder, the first to claim it; a block holds at most one hash, until it is taken for new data.
 *
 * Block hashes are chained (common/block-hash.ts): a hash names its whole prefix, so the holder of a block's hash
 * is among the blocks claimed after the holder of its parent's hash, and nowhere else. While every held hash's
 * parent hash is held by the block it was claimed after, a block that is its parent's only child is found from
 * its parent and needs no entry in the hash table: the table holds first blocks and the children of blocks with
 * several (a shared prefix, then each request's own question). A new prompt's or answer's blocks, each claimed
 * after the last, are most claims; they then touch only arrays at neighbouring block numbers, where each probed a
 * random slot of one of 64 tables, which missed the CPU's caches at 64 groups. Once a hash is forgotten while a
 * later block's hash chains on it (an orphan), or is claimed after a block that lost its own claim, every held
 * hash goes into the table, which answers alone from then on.
 *
 * The table is open addressing (linear probing, backward-shift deletion) whose slots hold only a block number: a
 * slot's key is the hash its block holds, read from `hashes`. Four bytes a slot where common/number-table.ts keeps
 * a key and a value in sixteen. Sized at twice the blocks, it never grows.
 */
import { canFillHole, mixNumberKey } from '../../../common/number-table.ts';

const FREE = 0;
/** child[] of a block without children, and of one with several (its children are in the table). */
const NO_CHILD = 0;
const SEVERAL = -1;

export class BlockHashes {
  /** Per block, the hash it holds, or NaN. */
  private readonly hashes: Float64Array;
  /** Per slot, the holding block + 1, or FREE. */
  private readonly slots: Int32Array;
  private readonly mask: number;
  private readonly shift: number;
  /** Per block holding a hash, the block it was claimed after + 1, or 0 for a first block. */
  private readonly parent: Int32Array;
  /** Per block, its only child + 1, NO_CHILD or SEVERAL. */
  private readonly child: Int32Array;
  /** Per block, how many blocks hold a hash claimed after it. */
  private readonly children: Int32Array;
  /** Every held hash is in the table (see the file comment); parent, child and children are not kept. */
  private tableOnly = false;

  constructor(numBlocks: number) {
    let bits = 1;
    while (1 << bits < 2 * numBlocks) bits++;
    if (bits > 30) throw new RangeError(`${numBlocks} KV blocks are too many for one pool`);
    this.hashes = new Float64Array(numBlocks).fill(Number.NaN);
    this.slots = new Int32Array(1 << bits);
    this.mask = (1 << bits) - 1;
    this.shift = 32 - bits;
    this.parent = new Int32Array(numBlocks);
    this.child = new Int32Array(numBlocks);
    this.children = new Int32Array(numBlocks);
  }

  /** The hash the block holds, or NaN. */
  hashOf(block: number): number {
    return this.hashes[block] as number;
  }

  /** The block holding this hash of a prompt's first block (or, once the table answers alone, of any), if any. */
  blockOf(hash: number): number | undefined {
    const slots = this.slots;
    for (let i = this.home(hash); ; i = (i + 1) & this.mask) {
      const b = (slots[i] as number) - 1;
      if (b < 0) return undefined;
      if (this.hashes[b] === hash) return b;
    }
  }

  /** The block holding `hash`, which is chained on the hash `parent` holds, if any. */
  childOf(parent: number, hash: number): number | undefined {
    const c = this.tableOnly ? SEVERAL : (this.child[parent] as number);
    if (c === SEVERAL) return this.blockOf(hash);
    return c !== NO_CHILD && this.hashes[c - 1] === hash ? c - 1 : undefined;
  }

  /**
   * The block (which holds no hash) now holds `hash`, unless another block holds it already (first holder wins):
   * true when it does. `hash` is not NaN; `parent`: the block whose hash it is chained on, if it is not a first
   * block's.
   */
  claim(block: number, hash: number, parent?: number): boolean {
    if (this.tableOnly) return this.claimInTable(block, hash);
    if (parent === undefined) {
      if (!this.claimInTable(block, hash)) return false;
      this.parent[block] = 0;
      return true;
    }
    // Its parent lost its own claim: the holder of the parent hash, under which this hash would be, is unknown.
    if (Number.isNaN(this.hashes[parent])) {
      this.keepAllInTable();
      return this.claimInTable(block, hash);
    }
    const c = this.child[parent] as number;
    if (c === NO_CHILD) {
      this.child[parent] = block + 1;
      this.hashes[block] = hash;
    } else {
      if (c !== SEVERAL) {
        if (this.hashes[c - 1] === hash) return false;
        this.child[parent] = SEVERAL;
        this.insert(c - 1);
      }
      if (!this.claimInTable(block, hash)) return false;
    }
    this.parent[block] = parent + 1;
    this.children[parent] = (this.children[parent] as number) + 1;
    return true;
  }

  /** The block is taken for new data: it holds no hash any more (none if it held none). */
  forget(block: number): void {
    const hash = this.hashes[block] as number;
    if (Number.isNaN(hash)) return;
    if (!this.tableOnly) {
      if (this.children[block] !== 0) this.keepAllInTable();
      else if (this.forgetChild(block)) {
        this.hashes[block] = Number.NaN;
        return;
      }
    }
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

  /** Unlinks a childless block from its parent; true when it was its parent's only child (not in the table). */
  private forgetChild(block: number): boolean {
    this.child[block] = NO_CHILD;
    const p = (this.parent[block] as number) - 1;
    if (p < 0) return false;
    this.children[p] = (this.children[p] as number) - 1;
    if (this.child[p] === SEVERAL) return false;
    this.child[p] = NO_CHILD;
    return true;
  }

  private claimInTable(block: number, hash: number): boolean {
    const slots = this.slots;
    let i = this.home(hash);
    for (; slots[i] !== FREE; i = (i + 1) & this.mask)
      if (this.hashes[(slots[i] as number) - 1] === hash) return false;
    slots[i] = block + 1;
    this.hashes[block] = hash;
    return true;
  }

  /** Puts a block's hash, which no other block holds, in the table. */
  private insert(block: number): void {
    const slots = this.slots;
    let i = this.home(this.hashes[block] as number);
    while (slots[i] !== FREE) i = (i + 1) & this.mask;
    slots[i] = block + 1;
  }

  /** Every held hash not in the table yet (only children) goes in; the table answers alone from now on. */
  private keepAllInTable(): void {
    this.tableOnly = true;
    for (let b = 0; b < this.hashes.length; b++) {
      const p = (this.parent[b] as number) - 1;
      if (p >= 0 && this.child[p] !== SEVERAL && !Number.isNaN(this.hashes[b])) this.insert(b);
    }
  }

  private home(hash: number): number {
    return mixNumberKey(hash) >>> this.shift;
  }
}
