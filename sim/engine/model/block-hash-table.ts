/**
 * The prefix cache's index, block hash -> block: an open-addressing hash table (linear probing, backward-shift
 * deletion) over typed arrays. A Map keyed by 53-bit hashes boxes every key as a heap number and chases a pointer
 * per probe; admission looks up every full block of a prompt, and the cluster simulator admits thousands of
 * 8k-token prompts per run on every group, so this is the simulator's hottest map. Holds at most `maxEntries`
 * keys (a KV block caches at most one hash), in a table of at least twice that many slots; a slot's key and block
 * sit side by side, so a probe reads one cache line.
 */

const EMPTY = -1;

/** The key's 64 bits, read through a shared buffer (no allocation, no slow double-to-int truncation). */
const scratch = new Float64Array(1);
const words = new Uint32Array(scratch.buffer);

export class BlockHashTable {
  /** Slot i: its key at 2i, its block at 2i + 1 (EMPTY when the slot is free). */
  private readonly slots: Float64Array;
  private readonly mask: number;
  /** 32 - log2(slots): a slot is the top bits of the mixed key. */
  private readonly shift: number;
  private count = 0;

  constructor(private readonly maxEntries: number) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1)
      throw new RangeError(`a block hash table needs room for at least one entry, got ${maxEntries}`);
    let bits = 1;
    while (1 << bits < 2 * maxEntries) bits++;
    if (bits > 30) throw new RangeError(`${maxEntries} entries are too many for one block hash table`);
    this.slots = new Float64Array(2 << bits).fill(EMPTY);
    this.mask = (1 << bits) - 1;
    this.shift = 32 - bits;
  }

  get size(): number {
    return this.count;
  }

  get(key: number): number | undefined {
    const t = this.slots;
    for (let i = this.home(key); ; i = (i + 1) & this.mask) {
      const b = t[2 * i + 1] as number;
      if (b === EMPTY) return undefined;
      if (t[2 * i] === key) return b;
    }
  }

  has(key: number): boolean {
    return this.get(key) !== undefined;
  }

  /** Adds or replaces; `block` >= 0. */
  set(key: number, block: number): void {
    this.put(key, block, true);
  }

  /** Adds the key unless it is present (one probe where has() then set() take two); true when it was added. */
  addIfAbsent(key: number, block: number): boolean {
    return this.put(key, block, false);
  }

  private put(key: number, block: number, replace: boolean): boolean {
    if (Number.isNaN(key)) throw new RangeError('a block hash is a number, got NaN');
    if (!Number.isInteger(block) || block < 0) throw new RangeError(`a block is an index >= 0, got ${block}`);
    const t = this.slots;
    let i = this.home(key);
    for (; t[2 * i + 1] !== EMPTY; i = (i + 1) & this.mask)
      if (t[2 * i] === key) {
        if (replace) t[2 * i + 1] = block;
        return false;
      }
    if (this.count >= this.maxEntries)
      throw new RangeError(`the block hash table is full (${this.maxEntries} entries)`);
    t[2 * i] = key;
    t[2 * i + 1] = block;
    this.count++;
    return true;
  }

  delete(key: number): boolean {
    const t = this.slots;
    let i = this.home(key);
    for (; ; i = (i + 1) & this.mask) {
      if (t[2 * i + 1] === EMPTY) return false;
      if (t[2 * i] === key) break;
    }
    // Backward shift: pull later entries of the probe run into the hole unless that would move one before
    // its home slot, so lookups never need tombstones.
    let hole = i;
    for (let j = (i + 1) & this.mask; t[2 * j + 1] !== EMPTY; j = (j + 1) & this.mask) {
      const home = this.home(t[2 * j] as number);
      const between = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (between) continue;
      t[2 * hole] = t[2 * j] as number;
      t[2 * hole + 1] = t[2 * j + 1] as number;
      hole = j;
    }
    t[2 * hole + 1] = EMPTY;
    this.count--;
    return true;
  }

  private home(key: number): number {
    scratch[0] = key;
    const x = Math.imul((words[0] as number) ^ Math.imul(words[1] as number, 0x9e3779b1), 0x85ebca6b);
    return x >>> this.shift;
  }
}
