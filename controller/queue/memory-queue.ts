/**
 * The queue's hand-out order in memory, built only on fair-policy.ts: the reference the Redis queue is
 * checked against (same inputs must give the same sequence), the baseline of bench/queue.ts, and the place
 * where the policy's long-run properties (weighted shares, no starvation) are unit-tested cheaply.
 * Not durable and not shared between replicas: never a production queue.
 */
import {
  type ClassShares,
  type Credits,
  DEFAULT_RESERVES,
  finishTag,
  pickClass,
  tagIncrement,
  zeroCredits,
} from './fair-policy.ts';
import { PRIORITY_CLASSES, type PriorityClass } from './priority-class.ts';

export interface MemoryItem {
  id: string;
  tenant: string;
  cls: PriorityClass;
  tag: number;
  deadline: number | undefined;
}

export class MemoryQueue {
  private readonly ready: Record<PriorityClass, MemoryItem[]> = { interactive: [], standard: [], batch: [] };
  private readonly virtualTime: Record<PriorityClass, number> = { interactive: 0, standard: 0, batch: 0 };
  private readonly lastTag = new Map<string, number>();
  private credits: Credits = zeroCredits();
  private readonly ids = new Set<string>();

  constructor(private readonly reserves: ClassShares = DEFAULT_RESERVES) {}

  /** false when the id is already known (the caller decides whether that is an attach or a conflict). */
  submit(item: {
    id: string;
    tenant: string;
    weight: number;
    cls: PriorityClass;
    cost?: number;
    deadline?: number;
  }): boolean {
    if (this.ids.has(item.id)) return false;
    this.ids.add(item.id);
    const key = `${item.cls}:${item.tenant}`;
    const tag = finishTag(
      this.virtualTime[item.cls],
      this.lastTag.get(key) ?? 0,
      tagIncrement(item.cost ?? 1, item.weight),
    );
    this.lastTag.set(key, tag);
    insertSorted(this.ready[item.cls], {
      id: item.id,
      tenant: item.tenant,
      cls: item.cls,
      tag,
      deadline: item.deadline,
    });
    return true;
  }

  /** Up to n items in hand-out order; items whose deadline is <= now are dropped, never handed out. */
  take(n: number, now: number): MemoryItem[] {
    for (const c of PRIORITY_CLASSES) {
      const live = this.ready[c].filter((i) => i.deadline === undefined || i.deadline > now);
      this.ready[c].splice(0, this.ready[c].length, ...live);
    }
    const out: MemoryItem[] = [];
    while (out.length < n) {
      const waiting = {
        interactive: this.ready.interactive.length > 0,
        standard: this.ready.standard.length > 0,
        batch: this.ready.batch.length > 0,
      };
      const pick = pickClass(this.credits, waiting, this.reserves);
      if (!pick) break;
      this.credits = pick.credits;
      const item = this.ready[pick.cls].shift();
      if (!item) break;
      this.virtualTime[pick.cls] = item.tag;
      out.push(item);
    }
    return out;
  }

  cancel(id: string): boolean {
    for (const c of PRIORITY_CLASSES) {
      const i = this.ready[c].findIndex((x) => x.id === id);
      if (i >= 0) {
        this.ready[c].splice(i, 1);
        return true;
      }
    }
    return false;
  }

  get depth(): number {
    return this.ready.interactive.length + this.ready.standard.length + this.ready.batch.length;
  }
}

/** Ascending (tag, id), the order of a Redis sorted set (ties by member bytes; ids are ASCII). */
function insertSorted(list: MemoryItem[], item: MemoryItem): void {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const m = list[mid] as MemoryItem;
    if (m.tag < item.tag || (m.tag === item.tag && m.id < item.id)) lo = mid + 1;
    else hi = mid;
  }
  list.splice(lo, 0, item);
}
