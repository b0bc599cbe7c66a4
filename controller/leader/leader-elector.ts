/**
 * Runs the lease decisions (lease-decision.ts) against a lease store on a timer: one attempt every renewMs,
 * never two at once, so a slow store cannot pile up calls. The group applier asks `epoch()` before every
 * directive: it is undefined unless this replica holds an unexpired term, checked against the clock at that
 * moment (a leader whose renewals stalled stops acting when its term ends, even between two ticks).
 */
import type { Clock } from '../../common/clock.ts';
import type { Logger } from '../../common/log.ts';
import {
  afterReply,
  expire,
  INITIAL_LEASE_STATE,
  type LeaseChange,
  type LeaseHolder,
  type LeasePolicy,
  type LeaseState,
  type LeaseStep,
  leadingEpoch,
  nextAttempt,
} from './lease-decision.ts';
import type { LeaseStore } from './redis-lease.ts';

/** What the rest of the controller reads of the election. */
export interface Leadership {
  /** This replica's id (what `corral status` shows as the leader). */
  readonly id: string;
  /** The epoch this replica may send directives under now; undefined while it follows. */
  epoch(): number | undefined;
  /** The leader as this replica last saw it (itself while it leads). */
  leader(): LeaseHolder | undefined;
  onChange(listener: (change: LeaseChange) => void): void;
}

/** A controller started without a lease store is the only replica: it always leads, under epoch 0. */
export function soleLeadership(id: string): Leadership {
  return { id, epoch: () => 0, leader: () => ({ id, epoch: 0 }), onChange: () => undefined };
}

export class LeaderElector implements Leadership {
  private state: LeaseState = INITIAL_LEASE_STATE;
  private readonly listeners: Array<(c: LeaseChange) => void> = [];
  private timer: NodeJS.Timeout | undefined;
  private attempt: Promise<void> | undefined;
  private stopped = false;
  /** The highest epoch any reply showed: a new term must exceed it even if the store lost its counter. */
  private seenEpoch = 0;

  constructor(
    private readonly deps: {
      id: string;
      store: LeaseStore;
      policy: LeasePolicy;
      clock: Clock;
      log: Logger;
    },
  ) {}

  get id(): string {
    return this.deps.id;
  }

  start(): void {
    if (this.timer || this.stopped) return;
    this.timer = setInterval(() => void this.tick(), this.deps.policy.renewMs);
    void this.tick();
  }

  /** One acquire-or-renew round; start() schedules it, tests may call it directly. */
  tick(): Promise<void> {
    if (this.attempt || this.stopped) return this.attempt ?? Promise.resolve();
    this.attempt = this.round().finally(() => {
      this.attempt = undefined;
    });
    return this.attempt;
  }

  epoch(): number | undefined {
    const now = this.deps.clock.now();
    this.apply(expire(this.state, now));
    return leadingEpoch(this.state, now);
  }

  leader(): LeaseHolder | undefined {
    const epoch = this.epoch();
    if (epoch !== undefined) return { id: this.deps.id, epoch };
    return this.state.t === 'follower' ? this.state.leader : undefined;
  }

  onChange(listener: (change: LeaseChange) => void): void {
    this.listeners.push(listener);
  }

  /** Stops campaigning; a leader releases the lease so a follower takes over at its next attempt. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.attempt;
    const s = this.state;
    this.state = INITIAL_LEASE_STATE;
    if (s.t !== 'leader') return;
    this.emit({ t: 'expired', epoch: s.epoch, why: 'replica stopping' });
    await this.deps.store
      .release(this.deps.id, s.epoch)
      .catch((e: unknown) => this.deps.log.warn('could not release the leader lease', { error: e as Error }));
  }

  private async round(): Promise<void> {
    const { store, policy, clock, id } = this.deps;
    this.apply(expire(this.state, clock.now()));
    const sentAt = clock.now();
    const s = this.state;
    const reply =
      nextAttempt(s) === 'renew' && s.t === 'leader'
        ? await store.renew(id, s.epoch, policy.leaseMs)
        : await store.acquire(id, policy.leaseMs, this.seenEpoch);
    if (this.stopped) return;
    if (reply.t === 'acquired') this.seenEpoch = Math.max(this.seenEpoch, reply.epoch);
    if (reply.t === 'held' && reply.holder) this.seenEpoch = Math.max(this.seenEpoch, reply.holder.epoch);
    if (reply.t === 'error')
      this.deps.log.warn('leader lease store did not answer', { error: reply.message });
    this.apply(afterReply(this.state, reply, sentAt, clock.now(), policy));
  }

  private apply(step: LeaseStep): void {
    this.state = step.state;
    if (step.change) this.emit(step.change);
  }

  private emit(c: LeaseChange): void {
    const log = this.deps.log;
    if (c.t === 'elected') log.info('elected leader of the group reconciler', { epoch: c.epoch });
    else if (c.t === 'deposed')
      log.warn('deposed: another replica holds the leader lease', {
        epoch: c.epoch,
        ...(c.by ? { leader: c.by.id, leaderEpoch: c.by.epoch } : {}),
      });
    else log.warn('leader term ended', { epoch: c.epoch, why: c.why });
    for (const l of this.listeners) {
      try {
        l(c);
      } catch (e) {
        log.error('leadership listener failed', { error: e instanceof Error ? e : String(e) });
      }
    }
  }
}
