/**
 * Fencing of controller directives. The worker registers with every controller replica; only the one holding the
 * leader lease sends directives, each stamped with its lease epoch, and every new leader gets a higher epoch. A
 * replica that lost the lease without noticing yet (a long GC pause, a partition from Redis) may still send one:
 * its epoch is lower than the new leader's, so the worker drops it instead of undoing the new leader's decision.
 * Epoch 0 (or unset) comes from a controller without leader election; it is accepted until a fenced leader is seen.
 */
export type FenceVerdict = { ok: true } | { ok: false; highest: number };

export class EpochFence {
  private highestSeen = 0;

  get highest(): number {
    return this.highestSeen;
  }

  /** Accepts a directive of `epoch` (and remembers it) unless a higher epoch was already seen. */
  admit(epoch: number | undefined): FenceVerdict {
    const e = epoch ?? 0;
    if (e < this.highestSeen) return { ok: false, highest: this.highestSeen };
    this.highestSeen = e;
    return { ok: true };
  }
}
