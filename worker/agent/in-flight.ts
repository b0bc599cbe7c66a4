/**
 * Counts Generate calls in flight and closes the door on drain: once closed, new calls are refused
 * (UNAVAILABLE, so the controller retries elsewhere) while running ones finish, up to the drain timeout.
 */

export class InFlight {
  private count = 0;
  private open = true;
  private idleWaiters: Array<() => void> = [];

  get size(): number {
    return this.count;
  }

  get accepting(): boolean {
    return this.open;
  }

  /** Returns a release function, or undefined when draining. */
  enter(): (() => void) | undefined {
    if (!this.open) return undefined;
    this.count += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.count -= 1;
      if (this.count === 0) for (const w of this.idleWaiters.splice(0)) w();
    };
  }

  close(): void {
    this.open = false;
  }

  /** Resolves true when nothing is in flight, false if `timeoutMs` passed first. */
  idle(timeoutMs: number): Promise<boolean> {
    if (this.count === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.idleWaiters = this.idleWaiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.idleWaiters.push(done);
    });
  }
}
