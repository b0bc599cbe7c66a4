/** Timers in virtual time for pure models that take injected timers: runUntil(t) fires due callbacks in order. */
import type { ManualClock } from '../../common/clock.ts';

export class VirtualTimers {
  private seq = 0;
  private readonly pending = new Map<number, { at: number; fn: () => void }>();
  constructor(private readonly clock: ManualClock) {}

  set(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.pending.set(id, { at: this.clock.now() + ms, fn });
    return id;
  }

  clear(h: unknown): void {
    this.pending.delete(h as number);
  }

  /** Fires every callback due by t (including ones they set), advancing the clock to each, then to t. */
  runUntil(t: number): void {
    this.fireDue(t, true);
    this.clock.set(t);
  }

  /**
   * A host whose event loop was blocked until t: the clock jumps to t, then every callback due by t fires late,
   * at t, in the order they were due (including ones they set).
   */
  runLate(t: number): void {
    this.clock.set(t);
    this.fireDue(t, false);
  }

  private fireDue(t: number, onTime: boolean): void {
    for (;;) {
      let next: [number, { at: number }] | undefined;
      for (const e of this.pending) if (e[1].at <= t && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      const [id, p] = next as [number, { at: number; fn: () => void }];
      this.pending.delete(id);
      if (onTime) this.clock.set(p.at);
      p.fn();
    }
  }
}
