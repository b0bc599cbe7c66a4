/**
 * The simulator's clock: a binary min-heap of events ordered by (time, insertion order). Two events at the same
 * virtual time fire in the order they were scheduled, so a run is a deterministic function of its inputs.
 */

interface Entry<E> {
  at: number;
  seq: number;
  event: E;
}

export class EventQueue<E> {
  private readonly heap: Entry<E>[] = [];
  private seq = 0;
  private clock = 0;

  /** Virtual time of the event last popped (ms). */
  get now(): number {
    return this.clock;
  }

  get size(): number {
    return this.heap.length;
  }

  schedule(at: number, event: E): void {
    if (!(at >= this.clock)) throw new RangeError(`event at ${at} ms is before now (${this.clock} ms)`);
    const h = this.heap;
    h.push({ at, seq: this.seq++, event });
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(h[i] as Entry<E>, h[parent] as Entry<E>)) break;
      [h[i], h[parent]] = [h[parent] as Entry<E>, h[i] as Entry<E>];
      i = parent;
    }
  }

  /** The next event, advancing the clock to its time; undefined when none is left. */
  pop(): E | undefined {
    const h = this.heap;
    const top = h[0];
    if (!top) return undefined;
    const last = h.pop() as Entry<E>;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l] as Entry<E>, h[m] as Entry<E>)) m = l;
        if (r < h.length && before(h[r] as Entry<E>, h[m] as Entry<E>)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m] as Entry<E>, h[i] as Entry<E>];
        i = m;
      }
    }
    this.clock = top.at;
    return top.event;
  }

  peekTime(): number | undefined {
    return this.heap[0]?.at;
  }
}

function before<E>(a: Entry<E>, b: Entry<E>): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
