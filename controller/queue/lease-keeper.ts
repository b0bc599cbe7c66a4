/**
 * Keeps the leases of the requests one controller replica is running alive: renews them all in one script
 * call every leaseMs/3 (so two renewals may fail before a lease lapses), and tells the dispatcher which
 * requests it lost (its lease ran out and another replica took the request over: stop writing to it) and
 * which its clients cancelled (abort the engine request).
 *
 * renewNow() does one round and is what tests drive with a ManualClock; start() only schedules it.
 *
 * take() is the queue's take with leases that start when it returns: a take sent while Redis is unreachable
 * runs when Redis answers again, with its leases counted from when it was sent, so they may be about to lapse
 * (and another replica reclaims the request, costing an attempt). A slow take is renewed at once.
 */
import type { Clock } from '../../common/clock.ts';
import type { Logger } from '../../common/log.ts';
import type { RequestQueue, TakenRequest } from './request-queue.ts';

/** A take slower than leaseMs / SLOW_TAKE_DIVISOR renews its leases before they are used. */
const SLOW_TAKE_DIVISOR = 10;

export interface LeaseEvents {
  /** No longer ours: another replica may already be continuing it. */
  lost(id: string): void;
  /** The client cancelled: abort the engine request, then settle it. Reported once. */
  cancelRequested(id: string): void;
}

export class LeaseKeeper {
  private readonly held = new Set<string>();
  private readonly cancelSeen = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly queue: RequestQueue,
    private readonly owner: string,
    private readonly events: LeaseEvents,
    private readonly log: Logger,
  ) {}

  /** Start renewing a request take() handed to this owner. */
  hold(id: string): void {
    this.held.add(id);
  }

  /** Stop renewing (after finish/fail/release, or when lost). */
  drop(id: string): void {
    this.held.delete(id);
    this.cancelSeen.delete(id);
  }

  get size(): number {
    return this.held.size;
  }

  /**
   * Up to n requests for this owner, with at least ~90% of a lease left each. Does not hold them (the caller
   * does, for those it runs). Requests lost during a slow take (their lease ran out meanwhile and another
   * replica took them over) are left out.
   */
  async take(n: number, clock: Clock): Promise<TakenRequest[]> {
    const sent = clock.now();
    const taken = await this.queue.take(this.owner, n);
    return this.renewIfSlow(taken, clock.now() - sent);
  }

  /**
   * What a take (or a submit that took, RequestQueue.submit with takeFor) that answered after tookMs handed
   * out, with the leases of a slow one renewed and the requests lost meanwhile left out (see take()).
   */
  async renewIfSlow(taken: TakenRequest[], tookMs: number): Promise<TakenRequest[]> {
    if (taken.length === 0 || tookMs <= this.queue.leaseMs / SLOW_TAKE_DIVISOR) return taken;
    const { lost } = await this.queue.renew(
      this.owner,
      taken.map((t) => t.id),
    );
    this.log.warn('slow take: renewed its leases before dispatch', { tookMs, taken: taken.length, lost });
    if (lost.length === 0) return taken;
    const gone = new Set(lost);
    return taken.filter((t) => !gone.has(t.id));
  }

  async renewNow(): Promise<void> {
    if (this.held.size === 0) return;
    const ids = [...this.held];
    const { lost, cancelRequested } = await this.queue.renew(this.owner, ids);
    for (const id of lost) {
      // settled meanwhile by this replica (drop() ran while the renewal was in flight): not a loss
      if (!this.held.has(id)) continue;
      this.drop(id);
      this.events.lost(id);
    }
    for (const id of cancelRequested) {
      if (this.cancelSeen.has(id) || !this.held.has(id)) continue;
      this.cancelSeen.add(id);
      this.events.cancelRequested(id);
    }
  }

  start(): void {
    if (this.timer) return;
    const every = Math.max(50, Math.floor(this.queue.leaseMs / 3));
    this.timer = setInterval(() => {
      if (this.running) return; // a slow Redis must not pile up renewals
      this.running = this.renewNow()
        .catch((e: unknown) =>
          this.log.warn('lease renewal failed', { error: e as Error, held: this.held.size }),
        )
        .finally(() => {
          this.running = undefined;
        });
    }, every);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
