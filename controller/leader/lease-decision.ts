/**
 * Leader election over a lease (pure): what one controller replica believes about leadership after each attempt
 * to acquire or renew the lease, and until when that belief holds. The store (Redis here) grants the lease for
 * leaseMs from the moment it executes the call, which is after `sentAt` by this replica's clock; so a leader
 * counts its term from sentAt, minus a margin for clock-rate drift:
 *
 *   validUntil = sentAt + leaseMs - marginMs      (the store's key outlives it: no two replicas lead at once)
 *
 * A leader renews every renewMs (about leaseMs / 3, so two renewals may fail before the term ends); a follower
 * tries to acquire at the same rate, so a dead leader is replaced within leaseMs + renewMs. Each acquisition
 * gets a higher epoch from the store: the fencing token carried by every directive.
 *
 * States:
 *   follower  another replica leads (`leader` as last read), or nobody is known to lead
 *   leader    this replica leads term `epoch` until `validUntil` unless a renewal extends it
 */

export interface LeasePolicy {
  leaseMs: number;
  renewMs: number;
  /** Subtracted from every term: the store's clock may run slightly faster than ours. */
  marginMs: number;
}

export const DEFAULT_LEASE_POLICY: LeasePolicy = { leaseMs: 3000, renewMs: 1000, marginMs: 200 };

export interface LeaseHolder {
  id: string;
  epoch: number;
}

export type LeaseState =
  | { t: 'follower'; leader: LeaseHolder | undefined }
  | { t: 'leader'; epoch: number; validUntil: number };

/** What the store answered to one attempt (acquire when following, renew when leading). */
export type LeaseReply =
  | { t: 'acquired'; epoch: number }
  | { t: 'renewed' }
  /** Someone else holds the lease (holder undefined: it expired between the check and the read). */
  | { t: 'held'; holder: LeaseHolder | undefined }
  /** The store did not answer (unreachable, timeout): nothing learned. */
  | { t: 'error'; message: string };

export type LeaseChange =
  | { t: 'elected'; epoch: number }
  | { t: 'deposed'; epoch: number; by: LeaseHolder | undefined }
  | { t: 'expired'; epoch: number; why: string };

export interface LeaseStep {
  state: LeaseState;
  change?: LeaseChange;
}

export const INITIAL_LEASE_STATE: LeaseState = { t: 'follower', leader: undefined };

/** The call to make next: renew our term, or try to take the lease. */
export function nextAttempt(state: LeaseState): 'acquire' | 'renew' {
  return state.t === 'leader' ? 'renew' : 'acquire';
}

export function afterReply(
  state: LeaseState,
  reply: LeaseReply,
  sentAt: number,
  now: number,
  policy: LeasePolicy,
): LeaseStep {
  const term = sentAt + policy.leaseMs - policy.marginMs;
  if (state.t === 'follower') {
    switch (reply.t) {
      case 'acquired':
        return {
          state: { t: 'leader', epoch: reply.epoch, validUntil: term },
          change: { t: 'elected', epoch: reply.epoch },
        };
      case 'held':
        return { state: { t: 'follower', leader: reply.holder } };
      case 'renewed':
        // A renewal answered after this replica already stepped down: the term it extended is not ours to use.
        return { state };
      case 'error':
        return { state: { t: 'follower', leader: undefined } };
    }
  }
  switch (reply.t) {
    case 'renewed':
      return { state: { ...state, validUntil: Math.max(state.validUntil, term) } };
    case 'held':
      return {
        state: { t: 'follower', leader: reply.holder },
        change: { t: 'deposed', epoch: state.epoch, by: reply.holder },
      };
    case 'acquired':
      // Only a follower acquires; an answer to an acquire sent before we led is stale.
      return { state };
    case 'error':
      return expire(state, now, `lease store unreachable (${reply.message})`);
  }
}

/** A leader whose term ran out without a renewal steps down (the store has let another replica in). */
export function expire(state: LeaseState, now: number, why = 'no renewal within the lease'): LeaseStep {
  if (state.t !== 'leader' || now < state.validUntil) return { state };
  return {
    state: { t: 'follower', leader: undefined },
    change: { t: 'expired', epoch: state.epoch, why },
  };
}

/** The epoch this replica may act under at `now`, or undefined when it must not send directives. */
export function leadingEpoch(state: LeaseState, now: number): number | undefined {
  return state.t === 'leader' && now < state.validUntil ? state.epoch : undefined;
}
