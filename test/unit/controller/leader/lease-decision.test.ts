import { describe, expect, it } from 'vitest';
import {
  afterReply,
  expire,
  INITIAL_LEASE_STATE,
  type LeasePolicy,
  type LeaseState,
  leadingEpoch,
  nextAttempt,
} from '../../../../controller/leader/lease-decision.ts';

const policy: LeasePolicy = { leaseMs: 3000, renewMs: 1000, marginMs: 200 };
const leader = (epoch: number, validUntil: number): LeaseState => ({ t: 'leader', epoch, validUntil });

describe('lease decisions', () => {
  it('a follower that acquires leads from the moment it sent the attempt, minus the margin', () => {
    expect(nextAttempt(INITIAL_LEASE_STATE)).toBe('acquire');
    const step = afterReply(INITIAL_LEASE_STATE, { t: 'acquired', epoch: 7 }, 1000, 1250, policy);
    expect(step.state).toEqual(leader(7, 3800));
    expect(step.change).toEqual({ t: 'elected', epoch: 7 });
    expect(nextAttempt(step.state)).toBe('renew');
    expect(leadingEpoch(step.state, 3799)).toBe(7);
    expect(leadingEpoch(step.state, 3800)).toBeUndefined();
  });

  it('a follower that finds the lease held remembers the holder and does not lead', () => {
    const step = afterReply(
      INITIAL_LEASE_STATE,
      { t: 'held', holder: { id: 'ctl-b', epoch: 3 } },
      0,
      10,
      policy,
    );
    expect(step.state).toEqual({ t: 'follower', leader: { id: 'ctl-b', epoch: 3 } });
    expect(step.change).toBeUndefined();
    expect(leadingEpoch(step.state, 10)).toBeUndefined();
  });

  it('a renewal extends the term from its send time; a late answer never shortens it', () => {
    expect(afterReply(leader(2, 3800), { t: 'renewed' }, 2000, 2100, policy).state).toEqual(leader(2, 4800));
    expect(afterReply(leader(2, 4800), { t: 'renewed' }, 1500, 2100, policy).state).toEqual(leader(2, 4800));
  });

  it('a leader that finds another holder is deposed at once', () => {
    const by = { id: 'ctl-b', epoch: 5 };
    const step = afterReply(leader(4, 9000), { t: 'held', holder: by }, 2000, 2001, policy);
    expect(step.state).toEqual({ t: 'follower', leader: by });
    expect(step.change).toEqual({ t: 'deposed', epoch: 4, by });
  });

  it('a leader that cannot reach the store keeps its term until it ends, then steps down', () => {
    const unreachable = { t: 'error', message: 'connect ECONNREFUSED' } as const;
    const kept = afterReply(leader(4, 3800), unreachable, 2000, 2500, policy);
    expect(kept.state).toEqual(leader(4, 3800));
    expect(kept.change).toBeUndefined();
    const ended = afterReply(leader(4, 3800), unreachable, 3000, 3900, policy);
    expect(ended.state).toEqual({ t: 'follower', leader: undefined });
    expect(ended.change).toEqual({
      t: 'expired',
      epoch: 4,
      why: 'lease store unreachable (connect ECONNREFUSED)',
    });
  });

  it('a term with no renewal expires at validUntil, not before', () => {
    expect(expire(leader(1, 3800), 3799).state).toEqual(leader(1, 3800));
    expect(expire(leader(1, 3800), 3800).change).toEqual({
      t: 'expired',
      epoch: 1,
      why: 'no renewal within the lease',
    });
    expect(expire(INITIAL_LEASE_STATE, 1e9)).toEqual({ state: INITIAL_LEASE_STATE });
  });

  it('answers to an attempt made in a previous role are ignored', () => {
    const follower: LeaseState = { t: 'follower', leader: undefined };
    // renewed after we already stepped down: still a follower
    expect(afterReply(follower, { t: 'renewed' }, 0, 1, policy)).toEqual({ state: follower });
    expect(afterReply(leader(3, 5000), { t: 'acquired', epoch: 9 }, 0, 1, policy)).toEqual({
      state: leader(3, 5000),
    });
  });
});
