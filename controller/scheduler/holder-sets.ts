/**
 * Block hash -> the groups believed to hold it, in the order they came to hold it (pick breaks cost ties in
 * that order). The hash finds its holders through a NumberTable (no boxed key per hash); hashes nobody holds
 * any more are dropped and their slots reused. Most hashes have one holder (every prompt's question, most
 * prefixes): that one is kept as its id, and a Set is made only for a second, so routing a request's fresh
 * blocks makes no object per block.
 */
import { NumberTable } from '../../common/number-table.ts';

/** One holder's id, or several in the order they came. */
export type Holders = string | ReadonlySet<string>;

export class HolderSets {
  private readonly slotOf = new NumberTable();
  private readonly holders: (string | Set<string> | undefined)[] = [];
  private readonly freeSlots: number[] = [];

  get(hash: number): Holders | undefined {
    const slot = this.slotOf.get(hash);
    return slot === undefined ? undefined : this.holders[slot];
  }

  holds(hash: number, group: string): boolean {
    const h = this.get(hash);
    return h !== undefined && (typeof h === 'string' ? h === group : h.has(group));
  }

  add(hash: number, group: string): void {
    // The slot a new hash would take: one probe finds the hash or adds it there.
    const reusing = this.freeSlots.length > 0;
    const free = reusing ? (this.freeSlots[this.freeSlots.length - 1] as number) : this.holders.length;
    const slot = this.slotOf.valueOrAdd(hash, free);
    if (slot === undefined) {
      if (reusing) this.freeSlots.pop();
      this.holders[free] = group;
      return;
    }
    const h = this.holders[slot] as string | Set<string>;
    if (typeof h !== 'string') h.add(group);
    else if (h !== group) this.holders[slot] = new Set([h, group]);
  }

  remove(hash: number, group: string): void {
    const slot = this.slotOf.get(hash);
    if (slot === undefined) return;
    const h = this.holders[slot] as string | Set<string>;
    if (typeof h === 'string' ? h !== group : !h.delete(group) || h.size > 0) return;
    this.slotOf.delete(hash);
    this.holders[slot] = undefined;
    this.freeSlots.push(slot);
  }
}
