/** The clock every decision reads, injected so tests and the cluster simulator run in virtual time. */
export interface Clock {
  /** Milliseconds since the epoch (or since the simulation began). */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock moved by hand, for tests and virtual time. */
export class ManualClock implements Clock {
  constructor(private t = 0) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
  set(ms: number): void {
    this.t = ms;
  }
}
