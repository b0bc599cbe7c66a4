/**
 * Wakes an idle dispatcher when a request becomes queued on any replica, instead of polling take().
 * The queue's scripts PUBLISH on B:wake (keys.ts); this holds one subscriber connection per deployment.
 *
 * Use with the generation counter, so an arrival between an empty take() and the wait is not missed:
 *
 *   const seen = signal.generation;
 *   const got = await queue.take(owner, room);
 *   if (got.length === 0) await signal.after(seen, 1000);   // returns at once if something arrived meanwhile
 *
 * It also relays cancels of dispatched requests (B:cancel) to onCancel listeners, so the owner aborts the
 * engine request at once; the cancel flag stays in Redis and LeaseKeeper reports it at the next renewal too,
 * in case this message was lost.
 *
 * Pub/sub is fire-and-forget: a message lost while the connection reconnects costs at most one timeout,
 * because the dispatcher still calls take() after `timeoutMs` (the poll is the safety net, not the path).
 */
import type { Redis } from 'ioredis';
import { queueBase } from './keys.ts';

export class ArrivalSignal {
  private gen = 0;
  private waiters = new Set<() => void>();
  private readonly sub: Redis;
  private readonly channel: string;
  private readonly cancelChannel: string;
  private readonly cancelListeners = new Set<(id: string) => void>();

  private constructor(redis: Redis, prefix: string, deployment: string) {
    this.channel = `${queueBase(prefix, deployment)}:wake`;
    this.cancelChannel = `${queueBase(prefix, deployment)}:cancel`;
    this.sub = redis.duplicate();
    // ioredis reconnects and resubscribes by itself; take() polling covers what was missed meanwhile.
    this.sub.on('error', () => {});
    this.sub.on('message', (channel: string, message: string) => {
      if (channel === this.cancelChannel) for (const l of this.cancelListeners) l(message);
      if (channel !== this.channel) return;
      this.gen += 1;
      const waiters = this.waiters;
      this.waiters = new Set();
      for (const w of waiters) w();
    });
  }

  /** Subscribed and ready: arrivals from now on are seen. */
  static async open(redis: Redis, deployment: string, prefix = 'corral'): Promise<ArrivalSignal> {
    const s = new ArrivalSignal(redis, prefix, deployment);
    await s.sub.subscribe(s.channel, s.cancelChannel);
    return s;
  }

  /** Called with the id of every dispatched request of this deployment that a client cancels. */
  onCancel(listener: (id: string) => void): () => void {
    this.cancelListeners.add(listener);
    return () => this.cancelListeners.delete(listener);
  }

  /** Counts the arrivals seen so far. */
  get generation(): number {
    return this.gen;
  }

  /** Resolves when an arrival after `generation` was seen, or after timeoutMs. true: an arrival. */
  after(generation: number, timeoutMs: number): Promise<boolean> {
    if (this.gen > generation) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(done);
        resolve(false);
      }, timeoutMs);
      this.waiters.add(done);
    });
  }

  async close(): Promise<void> {
    for (const w of this.waiters) w();
    this.waiters.clear();
    await this.sub.quit().catch(() => this.sub.disconnect());
  }
}
