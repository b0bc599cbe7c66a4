/**
 * A map from numbers to non-negative integers as an open-addressing hash table (linear probing, backward-shift
 * deletion) over one typed array. A Map keyed by 53-bit block hashes boxes every key as a heap number and chases
 * a pointer per probe; the engine simulator's prefix cache looks up every full block of every prompt it admits,
 * and the controller's prefix index records every kept block of every prompt it routes, so both keep their
 * block hashes here. A slot's key and value sit side by side, so a probe reads one cache line. The table holds
 * at most half as many entries as it has slots and doubles when it would hold more; sized for its entries up
 * front (`expectedEntries`), it never grows.
 * A slot holds its value plus one, so a free slot is 0: a new table is a fresh typed array, zeroed by the system,
 * with no pass to mark its slots free (the engine simulator makes one of 32k slots per group per run).
 */

const EMPTY = 0;
/** What put() answers for a key it added (values are >= 0). */
const ABSENT = -1;

/** The key's 64 bits, read through a shared buffer (no allocation, no slow double-to-int truncation). */
const scratch = new Float64Array(1);
const words = new Uint32Array(scratch.buffer);

export class NumberTable {
  /** Slot i: its key at 2i, its value + 1 at 2i + 1 (EMPTY when the slot is free). */
  private slots: Float64Array;
  private mask: number;
  /** 32 - log2(slots): a slot is the top bits of the mixed key. */
  private shift: number;
  private count = 0;

  constructor(expectedEntries = 8) {
    if (!Number.isInteger(expectedEntries) || expectedEntries < 1)
      throw new RangeError(`a number table expects at least one entry, got ${expectedEntries}`);
    let bits = 1;
    while (1 << bits < 2 * expectedEntries) bits++;
    if (bits > 30) throw new RangeError(`${expectedEntries} entries are too many for one number table`);
    this.slots = new Float64Array(2 << bits);
    this.mask = (1 << bits) - 1;
    this.shift = 32 - bits;
  }

  get size(): number {
    return this.count;
  }

  get(key: number): number | undefined {
    const t = this.slots;
    for (let i = this.home(key); ; i = (i + 1) & this.mask) {
      const v = t[2 * i + 1] as number;
      if (v === EMPTY) return undefined;
      if (t[2 * i] === key) return v - 1;
    }
  }

  has(key: number): boolean {
    return this.get(key) !== undefined;
  }

  /** Adds or replaces; `value` is an integer >= 0. True when the key was not there. */
  set(key: number, value: number): boolean {
    return this.put(key, value, true) === ABSENT;
  }

  /** Adds the key unless it is present (one probe where has() then set() take two); true when it was added. */
  addIfAbsent(key: number, value: number): boolean {
    return this.put(key, value, false) === ABSENT;
  }

  /** The key's value if it is present; else adds it with `value` and answers undefined. One probe. */
  valueOrAdd(key: number, value: number): number | undefined {
    const old = this.put(key, value, false);
    return old === ABSENT ? undefined : old;
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
      if (!canFillHole(hole, j, this.home(t[2 * j] as number))) continue;
      t[2 * hole] = t[2 * j] as number;
      t[2 * hole + 1] = t[2 * j + 1] as number;
      hole = j;
    }
    t[2 * hole + 1] = EMPTY;
    this.count--;
    return true;
  }

  /** Every entry, in no particular order; the table must not change meanwhile. */
  forEach(visit: (value: number, key: number) => void): void {
    const t = this.slots;
    for (let i = 0; i < t.length; i += 2)
      if (t[i + 1] !== EMPTY) visit((t[i + 1] as number) - 1, t[i] as number);
  }

  /** The key's value before (kept unless `replace`), or ABSENT when it was added. */
  private put(key: number, value: number, replace: boolean): number {
    if (Number.isNaN(key)) throw new RangeError('a number table key is a number, got NaN');
    if (!Number.isSafeInteger(value + 1) || value < 0)
      throw new RangeError(`a number table value is an integer >= 0 and below 2^53 - 1, got ${value}`);
    const t = this.slots;
    let i = this.home(key);
    for (; t[2 * i + 1] !== EMPTY; i = (i + 1) & this.mask)
      if (t[2 * i] === key) {
        const old = (t[2 * i + 1] as number) - 1;
        if (replace) t[2 * i + 1] = value + 1;
        return old;
      }
    if (2 * (this.count + 1) > this.mask + 1) {
      this.grow();
      return this.put(key, value, replace);
    }
    t[2 * i] = key;
    t[2 * i + 1] = value + 1;
    this.count++;
    return ABSENT;
  }

  private grow(): void {
    const old = this.slots;
    const bits = 33 - this.shift;
    if (bits > 30) throw new RangeError('a number table cannot grow past 2^29 entries');
    this.slots = new Float64Array(2 << bits);
    this.mask = (1 << bits) - 1;
    this.shift = 32 - bits;
    // Every key is distinct and was checked when it came in: each goes straight to its first free slot.
    const t = this.slots;
    for (let k = 0; k < old.length; k += 2) {
      if (old[k + 1] === EMPTY) continue;
      let i = this.home(old[k] as number);
      while (t[2 * i + 1] !== EMPTY) i = (i + 1) & this.mask;
      t[2 * i] = old[k] as number;
      t[2 * i + 1] = old[k + 1] as number;
    }
  }

  private home(key: number): number {
    return mixNumberKey(key) >>> this.shift;
  }
}

/**
 * A number key's 64 bits mixed into 32 (signed): a table of 2^k slots homes a key at its top k bits
 * (`mixNumberKey(key) >>> (32 - k)`).
 */
export function mixNumberKey(key: number): number {
  scratch[0] = key + 0; // -0 to 0: they are one key (===), so they must have one home
  return Math.imul((words[0] as number) ^ Math.imul(words[1] as number, 0x9e3779b1), 0x85ebca6b);
}

/**
 * Backward-shift deletion in a linear-probing table: may the entry in slot `j`, whose home slot is `home`, move
 * back into the hole at `hole` (earlier in its probe run)? Not if its home lies cyclically in (hole, j]: it
 * would then sit before its home, where no lookup finds it.
 */
export function canFillHole(hole: number, j: number, home: number): boolean {
  return hole <= j ? home <= hole || home > j : home <= hole && home > j;
}
