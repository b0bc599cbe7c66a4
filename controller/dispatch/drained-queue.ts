/**
 * What a dispatcher knows between takes of whether its queue holds anything ready. A run ending opens room, but
 * when the last take or submit here left nothing ready and no arrival was heard since, a take would come back
 * empty: skipping it saves a Redis round trip per request at a steady load. Pure: the dispatcher reports what
 * it saw (the arrival generation a take was sent at, what the take left ready) and asks before each take.
 *
 * The knowledge ends with anything that may have queued a request: an arrival heard (the generation moved),
 * forget() (a submit here left a request waiting, a request handed back here, a lease reclaimed), and it
 * lapses after maxAgeMs, so a PUBLISH this replica missed (its subscriber reconnecting) costs at most that long,
 * as it does an idle dispatcher.
 */
export class DrainedQueue {
  private known: { generation: number; at: number } | undefined;

  constructor(private readonly maxAgeMs: number) {}

  /** A take or submit here, sent at arrival generation `generation`, came back at `at` with `readyLeft` ready. */
  saw(generation: number, at: number, readyLeft: number): void {
    this.known = readyLeft === 0 ? { generation, at } : undefined;
  }

  /** Something may have queued a request. */
  forget(): void {
    this.known = undefined;
  }

  /** Nothing is ready in the queue, as far as this replica can tell at `now` with `generation` heard. */
  nothingReady(generation: number, now: number): boolean {
    const k = this.known;
    if (k && generation === k.generation && now - k.at < this.maxAgeMs) return true;
    this.known = undefined;
    return false;
  }
}
